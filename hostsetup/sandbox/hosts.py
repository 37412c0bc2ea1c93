"""Sandbox hosts: systemd + sshd containers on an internal docker network.

Every object the sandbox creates carries the label ``hostsetup.sandbox=<name>``,
so ``down`` removes exactly what ``up`` started.

The hosts' network is ``--internal``: no route leaves it, and the engine publishes
no ports on it. Each host is reached through its own SSH gateway, a relay on that
network and on a publishing one (IP masquerading off) whose port 22 the engine
publishes on 127.0.0.1 only; host keys are pinned in a known_hosts file.

The mirror container answers on the network under its own name and under the
host name of every repository preset (``download.docker.com``, the mirrors'),
over HTTPS with a certificate from the sandbox's own CA, which every host trusts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from fabric import Config, Connection
from paramiko import RejectPolicy

from hostsetup.connection import connect
from hostsetup.mirrors import PRESETS
from hostsetup.sandbox import forward, serve
from hostsetup.sandbox.engine import (
    Progress,
    SandboxError,
    StaleEndpoints,
    docker,
    engine_answers,
    ensure_engine,
    ensure_inotify_instances,
    ensure_tools,
    remove_network,
    restart_own_engine,
)
from hostsetup.sandbox.images import SANDBOX_USER, ensure_image
from hostsetup.sandbox.layout import Mirror
from hostsetup.sandbox.mirror import build_mirror
from hostsetup.sandbox.registries import (
    HUB,
    HUB_IMAGES,
    PRIVATE,
    PRIVATE_PORT,
    PRIVATE_USER,
    REGISTRY_MIRROR,
    SandboxRegistries,
    SandboxRegistry,
    htpasswd_line,
    image_sources,
    new_password,
    registry_binary,
    registry_config,
    wait_serving,
    write_repository,
)
from hostsetup.sandbox.tls import SandboxTls, ensure_tls
from hostsetup.smoke import smoke_image

LABEL = "hostsetup.sandbox"
GATEWAY_LABEL = "hostsetup.gateway-for"
MIRROR_ALIAS = "mirror.sandbox.internal"
CA_ON_HOSTS = "/usr/local/share/ca-certificates/hostsetup-sandbox-ca.crt"


def preset_vhosts() -> dict[str, str]:
    """Host name -> path prefix of every repository preset, as the mirror serves them over HTTPS."""
    vhosts = {MIRROR_ALIAS: ""}
    for url in PRESETS.values():
        parsed = urlparse(url)
        if parsed.hostname:
            vhosts[parsed.hostname] = parsed.path.rstrip("/")
    return vhosts

# `docker run --privileged` fails on these machines ("unable to apply caps");
# this set boots systemd and lets a dockerd run inside.
SYSTEMD_RUN_OPTIONS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    # A writable /proc/sys: Docker 26 inside sets per-interface IPv6 sysctls.
    "--security-opt", "systempaths=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3",
)


FILES_HOST = "files.sandbox.internal"


def files_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (absolute path -> content, with their directories) for ``docker cp -``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directories = sorted({str(parent) for path in files for parent in PurePosixPath(path).parents
                              if str(parent) != "/"})
        for directory in directories:
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def boot_wave_size() -> int:
    """How many sandbox hosts boot at once: 5 per core (10 on 2 cores boot in about 30 s)."""
    return 5 * (os.cpu_count() or 1)


def default_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(os.environ.get("HOSTSETUP_SANDBOX_HOME", Path(base) / "hostsetup" / "sandbox"))


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("HOSTSETUP_CACHE", Path(base) / "hostsetup"))


@dataclass(frozen=True)
class SandboxHost:
    """One running sandbox host, as seen from this machine."""

    name: str       # container name
    hostname: str   # name inside the sandbox network
    flavor: str     # image flavor, e.g. "debian12"
    port: int       # SSH port published on 127.0.0.1
    address: str    # address on the sandbox network

    def target(self, user: str = SANDBOX_USER) -> str:
        """The Fabric ``-H`` string for ``user``."""
        return f"{user}@127.0.0.1:{self.port}"


@dataclass(frozen=True)
class SandboxMirror:
    """The running docker-ce mirror: its base URL as the hosts see it, and its content."""

    url: str          # the plain-http URL mirror (``--mirror URL --insecure-mirror``)
    build: Mirror
    container: str    # its container, whose log has one line per request

    def requests(self) -> list[str]:
        """Every request the mirror served so far: ``<scheme> <host> <method> <path> <status>``."""
        return docker("logs", self.container).stderr.splitlines()

    def set_faults(self, faults: Mapping[str, int | bytes], host: str = "*") -> None:
        """Make the mirror misbehave from the next request on, for real HTTP clients: each
        ``pattern`` (an ``fnmatch`` glob over the path in the mirror tree, e.g.
        ``/linux/*/gpg``, the same under every preset's host name) answers with that status
        code, or serves those bytes instead of its file; only under the host names matching
        ``host`` (a glob, e.g. ``mirrors.aliyun.com``). Replaces the faults set before."""
        rules = [serve.Fault(pattern, body=answer, host=host) if isinstance(answer, bytes)
                 else serve.Fault(pattern, answer, host=host) for pattern, answer in faults.items()]
        text = serve.faults_json(rules)
        serve.parse_faults(text)  # a rule the server would refuse fails here, not as 500s there
        # Renamed into place: a request never reads half a file.
        docker("exec", "-i", self.container, "sh", "-c",
               f"cat > {serve.FAULTS_FILE}.new && mv -f {serve.FAULTS_FILE}.new {serve.FAULTS_FILE}",
               input=text.encode())

    def clear_faults(self) -> None:
        """Serve the mirror tree as it is again."""
        docker("exec", self.container, "rm", "-f", serve.FAULTS_FILE)

    @contextmanager
    def faults(self, faults: Mapping[str, int | bytes], host: str = "*") -> Iterator[None]:
        """``set_faults`` for the ``with`` block; cleared however it ends."""
        self.set_faults(faults, host)
        try:
            yield
        finally:
            self.clear_faults()


class Sandbox:
    """A named set of sandbox hosts plus the local docker-ce mirror they use."""

    def __init__(self, name: str = "default", home: Path | None = None,
                 cache: Path | None = None, progress: Progress = print) -> None:
        if not name.replace("-", "").isalnum():
            raise SandboxError(f"sandbox name {name!r} may hold only letters, digits and '-'")
        self.name = name
        self.home = (home or default_home()) / name
        self.cache = cache or default_cache()
        self.progress = progress
        self.network = f"hostsetup-{name}"            # internal: hosts, mirror, gateways
        self.publish_network = f"hostsetup-{name}-ssh"  # gateways only: publishing on 127.0.0.1

    # -- files the user needs ------------------------------------------------
    @property
    def key_path(self) -> Path:
        return self.home / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.home / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.home / "ssh_config"

    @property
    def label(self) -> str:
        return f"{LABEL}={self.name}"

    @property
    def tls(self) -> SandboxTls:
        return SandboxTls(self.home / "tls")

    @property
    def ca_path(self) -> Path:
        """The sandbox CA's certificate (what the hosts trust)."""
        return self.tls.ca_cert

    def connection(self, host: SandboxHost, user: str = SANDBOX_USER,
                   overrides: dict[str, object] | None = None) -> Connection:
        """A new SSH session to ``host`` as ``user``; only the pinned host key is accepted."""
        config = Config(overrides={"known_hosts": [str(self.known_hosts_path)], "run": {"in_stream": False},
                                   **(overrides or {})})
        conn = connect(host.target(user), config, connect_kwargs={"key_filename": [str(self.key_path)]})
        conn.client.set_missing_host_key_policy(RejectPolicy())
        return conn

    def engine_running(self) -> bool:
        """Whether a Docker engine answers here (none: no sandbox can be running)."""
        return engine_answers()

    # -- lifecycle -------------------------------------------------------------
    def prepare(self) -> None:
        """Engine, key pair and network: everything a host needs before it starts."""
        ensure_engine(self.cache, self.progress)
        ensure_tools(self.progress)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key_path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            f"hostsetup-sandbox-{self.name}", "-f", str(self.key_path)],
                           check=True, timeout=30)
        ensure_tls(self.tls.directory, [*preset_vhosts(), HUB, REGISTRY_MIRROR], self.name)
        if docker("network", "inspect", self.network, check=False).returncode != 0:
            docker("network", "create", "--internal", "--label", self.label, self.network)
        if docker("network", "inspect", self.publish_network, check=False).returncode != 0:
            docker("network", "create", "--label", self.label,
                   "-o", "com.docker.network.bridge.enable_ip_masquerade=false", self.publish_network)

    def up(self, count: int = 1, flavors: tuple[str, ...] = ("debian12",)) -> list[SandboxHost]:
        """Start ``count`` hosts (flavors taken in turn) and return all hosts."""
        if count < 1:
            raise SandboxError("--hosts must be at least 1")
        self.prepare()
        wanted = [flavors[i % len(flavors)] for i in range(count)]
        self.start_hosts(wanted)
        return self.hosts()

    def start_hosts(self, flavors: list[str], files: list[Mapping[str, bytes]] | None = None
                    ) -> list[SandboxHost]:
        """Start one new host per entry of ``flavors``; wait until each accepts SSH. ``files`` (one mapping
        per host, path -> content) are put into a host before it boots: a NoCloud seed, for one."""
        self.prepare()
        tags = {f: ensure_image(f, self.cache / "build", self.progress) for f in set(flavors)}
        taken = {h.name for h in self.hosts(all_states=True)}
        names: list[tuple[str, str]] = []
        index = 1
        for flavor in flavors:
            while f"hs-{self.name}-{index}" in taken:
                index += 1
            taken.add(f"hs-{self.name}-{index}")
            names.append((f"hs-{self.name}-{index}", flavor))
        # Booting systemd is CPU work: many hosts at once on a small machine overrun the boot limit
        # (50 at once on 2 cores did), so they start in waves of a size the machine boots in time.
        # every sandbox's hosts on this machine count against one limit
        running = docker("ps", "-q", "--filter", "label=hostsetup.flavor").stdout.split()
        ensure_inotify_instances(len(running) + len(names), self.progress)
        wave = boot_wave_size()
        for first in range(0, len(names), wave):
            batch = names[first:first + wave]
            if len(names) > wave:
                self.progress(f"starting hosts {first + 1}-{first + len(batch)} of {len(names)}")
            for name, flavor in batch:
                index = names.index((name, flavor))
                self._run_container(name, flavor, tags[flavor], files[index] if files else {})
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                list(pool.map(lambda n: self._await_boot(n[0]), batch))
        started = {n for n, _ in names}
        self._write_ssh_files()
        return [h for h in self.hosts() if h.name in started]

    def _run_container(self, name: str, flavor: str, tag: str, files: Mapping[str, bytes]) -> None:
        volume = f"{name}-docker"
        docker("volume", "create", "--label", self.label, volume)
        hostname = f"{flavor}-{name.removeprefix(f'hs-{self.name}-')}"
        # Names the engine's DNS does not know go to the mirror's name server ("no such name", at
        # once), not to the machine's resolver (unreachable from an internal network: 20 s a lookup).
        # A sandbox with no mirror (an offline one): no name server at all, so a lookup fails at once.
        mirror = self._address(f"hs-{self.name}-mirror") or "127.0.0.1"
        docker("create", "--name", name, "--hostname", hostname,
               "--label", self.label, "--label", f"hostsetup.flavor={flavor}",
               "--network", self.network, "--network-alias", hostname, "--dns", mirror,
               *SYSTEMD_RUN_OPTIONS, "-v", f"{volume}:/var/lib/docker", tag, "/sbin/init")
        if files:
            docker("cp", "-", f"{name}:/", input=files_tar(files))
        docker("start", name)
        # The relay targets the host's address, not its name: a name the engine's DNS does not
        # know (a stopped host) would be asked of the machine's upstream resolver.
        address = self._address(name)
        gateway = f"{name}-ssh"
        docker("create", "--name", gateway, "--label", self.label, "--label", f"{GATEWAY_LABEL}={name}",
               "--network", self.publish_network, "-p", "127.0.0.1::22",
               tag, "python3", "-c", Path(forward.__file__).read_text(), address, "22")
        docker("network", "connect", self.network, gateway)
        docker("start", gateway)

    def _address(self, container: str) -> str:
        """The container's address on the sandbox network ("" when it is not there)."""
        return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}',
                      container, check=False).stdout.strip()

    def _await_boot(self, name: str, timeout: float = 120) -> None:
        """Wait for systemd, install our public key, and wait for sshd."""
        deadline = time.monotonic() + timeout
        state = ""
        # Right after start the bus is not up yet and systemctl fails at once.
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                jobs = docker("exec", name, "systemctl", "list-jobs", "--no-pager", check=False, timeout=30).stdout
                raise SandboxError(f"host {name} did not boot within {timeout:.0f}s: systemd says {state!r}; "
                                   f"pending jobs:\n{jobs.strip()}")
            time.sleep(0.3)
            state = docker("exec", name, "systemctl", "is-system-running", check=False, timeout=30).stdout.strip()
        public_key = self.key_path.with_suffix(".pub").read_bytes()
        ca = b64encode(self.ca_path.read_bytes()).decode()
        install = (f"set -e; for h in /root /home/{SANDBOX_USER}; do "
                   "install -d -m 700 $h/.ssh; cat /tmp/key > $h/.ssh/authorized_keys; "
                   "chmod 600 $h/.ssh/authorized_keys; done; "
                   f"chown -R {SANDBOX_USER}: /home/{SANDBOX_USER}/.ssh; rm /tmp/key; "
                   f"echo {ca} | base64 -d > {CA_ON_HOSTS}; update-ca-certificates >/dev/null")
        docker("exec", "-i", name, "sh", "-c", f"cat > /tmp/key; {install}", input=public_key)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if docker("exec", name, "systemctl", "is-active", "--quiet", "ssh",
                      check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise SandboxError(f"sshd did not start on host {name}")

    def _write_ssh_files(self) -> None:
        """Pin every host's key in known_hosts and write an ssh_config for them."""
        known, config = [], []
        for host in self.hosts():
            key = docker("exec", host.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout
            key_type, key_data = key.split()[:2]
            known.append(f"[127.0.0.1]:{host.port} {key_type} {key_data}")
            config.append(
                f"Host {host.hostname}\n  HostName 127.0.0.1\n  Port {host.port}\n"
                f"  User {SANDBOX_USER}\n  IdentityFile {self.key_path}\n"
                f"  IdentitiesOnly yes\n  UserKnownHostsFile {self.known_hosts_path}\n"
                "  StrictHostKeyChecking yes\n")
        self.known_hosts_path.write_text("".join(line + "\n" for line in known))
        self.ssh_config_path.write_text("\n".join(config))

    def start_mirror(self) -> SandboxMirror:
        """Build (once per recipe) and serve the local docker-ce mirror on the network."""
        self.prepare()
        built = build_mirror(self.cache / "mirror", progress=self.progress)
        name = f"hs-{self.name}-mirror"
        vhosts = preset_vhosts()
        script = Path(serve.__file__).read_text()
        config = hashlib.sha256(json.dumps([str(built.root), script, vhosts, self.tls.fingerprint()])
                                .encode()).hexdigest()[:16]
        running = docker("inspect", "-f", '{{.State.Running}} {{index .Config.Labels "hostsetup.mirror"}}',
                         name, check=False).stdout.split()
        if running != ["true", config]:
            docker("rm", "-f", name, check=False)
            aliases = [arg for host in vhosts for arg in ("--network-alias", host)]
            docker("run", "-d", "--name", name, "--label", self.label, "--label", f"hostsetup.mirror={config}",
                   "--network", self.network, *aliases,
                   "-v", f"{built.root}:/srv/mirror:ro", *(arg for f in (self.tls.server_cert, self.tls.server_key,
                                                                         self.tls.ca_cert)
                                                          for arg in ("-v", f"{f}:/srv/tls/{f.name}:ro")),
                   ensure_image("debian12", self.cache / "build", self.progress),
                   "python3", "-c", script, "/srv/mirror", "/srv/tls/server.crt", "/srv/tls/server.key",
                   *(f"{host}={prefix}" for host, prefix in vhosts.items()))
        deadline = time.monotonic() + 30
        probe = (f"curl -fsS -o /dev/null http://localhost/ && curl -fsS -o /dev/null --cacert /srv/tls/ca.crt "
                 f"--resolve {MIRROR_ALIAS}:443:127.0.0.1 https://{MIRROR_ALIAS}/")
        while docker("exec", name, "sh", "-c", probe, check=False).returncode != 0:
            if time.monotonic() > deadline:
                logs = docker("logs", "--tail", "5", name, check=False)
                raise SandboxError(f"the sandbox mirror did not start serving: {logs.stderr.strip()}")
            time.sleep(0.3)
        return SandboxMirror(url=f"http://{MIRROR_ALIAS}", build=built, container=name)

    def publish_mirror(self) -> str:
        """The mirror's plain-HTTP tree as this machine reaches it: ``http://127.0.0.1:PORT``, through a
        relay like the SSH gateways (the mirror itself stays on the internal network only)."""
        mirror = self._address(f"hs-{self.name}-mirror")
        if not mirror:
            raise SandboxError("the sandbox mirror is not running (start_mirror first)")
        relay = f"hs-{self.name}-mirror-http"
        running = docker("inspect", "-f", "{{.State.Running}} {{index .Config.Labels \"hostsetup.relay\"}}",
                         relay, check=False).stdout.split()
        if running != ["true", mirror]:
            docker("rm", "-f", relay, check=False)
            docker("create", "--name", relay, "--label", self.label, "--label", f"hostsetup.relay={mirror}",
                   "--network", self.publish_network, "-p", "127.0.0.1::80",
                   ensure_image("debian12", self.cache / "build", self.progress),
                   "python3", "-c", Path(forward.__file__).read_text(), mirror, "80")
            docker("network", "connect", self.network, relay)
            docker("start", relay)
        port = docker("port", relay, "80/tcp").stdout.split()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=5):
                    return url
            except OSError:
                if time.monotonic() > deadline:
                    raise SandboxError(f"the mirror's relay on {url} does not answer") from None
                time.sleep(0.3)

    def serve_files(self, directory: Path, name: str = FILES_HOST) -> str:
        """Serve ``directory`` (read-only, plain HTTP) to the hosts as ``http://<name>``: where a user's
        servers fetch the hostsetup artifact at first boot. The URL the hosts use is returned."""
        container = f"hs-{self.name}-files"
        config = hashlib.sha256(f"{directory.resolve()} {name}".encode()).hexdigest()[:16]
        running = docker("inspect", "-f", '{{.State.Running}} {{index .Config.Labels "hostsetup.files"}}',
                         container, check=False).stdout.split()
        if running != ["true", config]:
            docker("rm", "-f", container, check=False)
            docker("run", "-d", "--name", container, "--label", self.label, "--label", f"hostsetup.files={config}",
                   "--network", self.network, "--network-alias", name,
                   "-v", f"{directory.resolve()}:/srv/files:ro",
                   ensure_image("debian12", self.cache / "build", self.progress),
                   "python3", "-m", "http.server", "--directory", "/srv/files", "80")
            deadline = time.monotonic() + 30
            probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1/', timeout=2)"
            while docker("exec", container, "python3", "-c", probe, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise SandboxError(f"the sandbox file server {name} did not start serving")
                time.sleep(0.2)
        return f"http://{name}"

    @property
    def private_tls(self) -> SandboxTls:
        """The private registry's own CA and certificate (a CA the hosts do not trust)."""
        return SandboxTls(self.home / "private-registry-ca")

    @property
    def registry_password_file(self) -> Path:
        return self.home / "registry-password"

    def start_registries(self) -> SandboxRegistries:
        """Start (or keep) the hub stand-in, the pull-through mirror and the private registry."""
        self.prepare()
        built = build_mirror(self.cache / "mirror", progress=self.progress)
        binary = registry_binary(self.cache, self.progress)
        ensure_tls(self.private_tls.directory, [PRIVATE], f"{self.name}, private registry")
        if not self.registry_password_file.exists():
            self.registry_password_file.write_text(new_password() + "\n")
            self.registry_password_file.chmod(0o600)
        password = self.registry_password_file.read_text().strip()
        tiny = built.tiny_image if built.tiny_image.is_absolute() else built.root / built.tiny_image
        images = image_sources(tiny.read_bytes(), smoke_image())
        image = ensure_image("debian12", self.cache / "build", self.progress)
        dns = self._address(f"hs-{self.name}-mirror")
        specs = (("hub", HUB, 443, self.tls, "", HUB_IMAGES),
                 ("mirror", REGISTRY_MIRROR, 443, self.tls, f"https://{HUB}", ()),
                 ("private", f"{PRIVATE}:{PRIVATE_PORT}", PRIVATE_PORT, self.private_tls, "", ("team/tiny:1",)))
        started = {}
        for kind, address, port, tls, proxy, refs in specs:
            name = f"hs-{self.name}-registry-{kind}"
            data = self.home / "registries" / kind
            htpasswd = "/srv/registry/htpasswd" if kind == "private" else ""
            config = registry_config("/srv/tls", "/srv/registry/storage", port, proxy, htpasswd)
            digest = hashlib.sha256(json.dumps([str(binary), config, tls.fingerprint(), refs,
                                                hashlib.sha256(password.encode()).hexdigest()]).encode())
            label = digest.hexdigest()[:16]
            running = docker("inspect", "-f", '{{.State.Running}} {{index .Config.Labels "hostsetup.registry"}}',
                             name, check=False).stdout.split()
            if running != ["true", label]:
                docker("rm", "-f", name, check=False)
                shutil.rmtree(data, ignore_errors=True)
                (data / "storage").mkdir(parents=True)
                (data / "config.yml").write_text(config)
                if htpasswd:
                    (data / "htpasswd").write_text(htpasswd_line(PRIVATE_USER, password))
                for ref in refs:
                    write_repository(data / "storage", ref, images[ref])
                docker("run", "-d", "--name", name, "--label", self.label, "--label", f"hostsetup.registry={label}",
                       "--network", self.network, "--network-alias", address.split(":")[0],
                       *(["--dns", dns] if dns else []), "-e", "SSL_CERT_FILE=/srv/tls/ca.crt",
                       "-v", f"{binary}:/usr/local/bin/docker-registry:ro", "-v", f"{data}:/srv/registry",
                       *(arg for f in (tls.server_cert, tls.server_key) for arg in ("-v", f"{f}:/srv/tls/{f.name}:ro")),
                       "-v", f"{self.tls.ca_cert}:/srv/tls/ca.crt:ro",
                       image, "/usr/local/bin/docker-registry", "serve", "/srv/registry/config.yml")
            started[kind] = SandboxRegistry(kind, address, name)
        for kind, _address, port, *_ in specs:
            wait_serving(started[kind].container, port, kind)
        return SandboxRegistries(hub=started["hub"], mirror=started["mirror"], private=started["private"],
                                 username=PRIVATE_USER, password_file=self.registry_password_file,
                                 private_ca=self.private_tls.ca_cert)

    def registries_running(self) -> bool:
        return bool(docker("ps", "-q", "--filter", f"label={self.label}", "--filter", "label=hostsetup.registry"
                           ).stdout.split())

    def remove_hosts(self, hosts: list[SandboxHost]) -> None:
        """Remove the given hosts and their docker volumes."""
        if not hosts:
            return
        docker("rm", "-f", "-v", *[h.name for h in hosts], *[f"{h.name}-ssh" for h in hosts])
        docker("volume", "rm", "-f", *[f"{h.name}-docker" for h in hosts], check=False)
        self._write_ssh_files()

    def down(self) -> list[str]:
        """Remove every container, volume and network of this sandbox; keep cached images."""
        removed: list[str] = []
        if not self.home.exists() and docker("network", "inspect", self.network,
                                              check=False).returncode != 0:
            return removed
        ids = docker("ps", "-aq", "--filter", f"label={self.label}").stdout.split()
        if ids:
            names = docker("inspect", "-f", "{{.Name}}", *ids).stdout.split()
            docker("rm", "-f", "-v", *ids)
            removed += [n.lstrip("/") for n in names]
        volumes = docker("volume", "ls", "-q", "--filter", f"label={self.label}").stdout.split()
        if volumes:
            docker("volume", "rm", "-f", *volumes)
        stale = []
        for network in (self.network, self.publish_network):
            try:
                if remove_network(network):
                    removed.append(f"network {network}")
            except StaleEndpoints:
                stale.append(network)
        if stale and restart_own_engine(self.cache, self.progress):
            for network in stale:
                remove_network(network)
                removed.append(f"network {network}")
        elif stale:
            self.progress(f"left network(s) {', '.join(stale)}: the engine keeps stale endpoints on them (a Docker "
                          "bug; no container uses them); they go with the engine's next restart")
        shutil.rmtree(self.home, ignore_errors=True)
        return removed

    # -- queries ---------------------------------------------------------------
    def hosts(self, all_states: bool = False) -> list[SandboxHost]:
        """The sandbox's hosts (running ones unless ``all_states``), in name order."""
        args = ["ps", "-q", "--filter", f"label={self.label}",
                "--filter", "label=hostsetup.flavor"]
        if all_states:
            args.insert(1, "-a")
        ids = docker(*args).stdout.split()
        if not ids:
            return []
        gateways = docker("ps", "-aq", "--filter", f"label={self.label}", "--filter", f"label={GATEWAY_LABEL}"
                          ).stdout.split()
        ports: dict[str, int] = {}
        for info in json.loads(docker("inspect", *gateways).stdout) if gateways else []:
            published = (info["NetworkSettings"]["Ports"] or {}).get("22/tcp") or []
            if published:
                ports[info["Config"]["Labels"][GATEWAY_LABEL]] = int(published[0]["HostPort"])
        found = []
        for info in json.loads(docker("inspect", *ids).stdout):
            name = info["Name"].lstrip("/")
            net = info["NetworkSettings"]["Networks"].get(self.network, {})
            found.append(SandboxHost(
                name=name,
                hostname=info["Config"]["Hostname"],
                flavor=info["Config"]["Labels"].get("hostsetup.flavor", ""),
                port=ports.get(name, 0),
                address=net.get("IPAddress", ""),
            ))
        return sorted(found, key=lambda h: (len(h.name), h.name))
