"""Sandbox hosts: systemd + sshd containers on a private docker network.

Every object the sandbox creates carries the label ``hostsetup.sandbox=<name>``,
so ``down`` removes exactly what ``up`` started. Hosts are reached only through
SSH ports published on 127.0.0.1; host keys are pinned in a known_hosts file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hostsetup.sandbox.engine import Progress, SandboxError, docker, ensure_engine, ensure_tools
from hostsetup.sandbox.images import SANDBOX_USER, ensure_image

if TYPE_CHECKING:
    from hostsetup.sandbox.mirror import Mirror

LABEL = "hostsetup.sandbox"
MIRROR_ALIAS = "mirror.sandbox.internal"

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

    url: str
    build: Mirror


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
        self.network = f"hostsetup-{name}"

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
        if docker("network", "inspect", self.network, check=False).returncode != 0:
            docker("network", "create", "--label", self.label, self.network)

    def up(self, count: int = 1, flavors: tuple[str, ...] = ("debian12",)) -> list[SandboxHost]:
        """Start ``count`` hosts (flavors taken in turn) and return all hosts."""
        if count < 1:
            raise SandboxError("--hosts must be at least 1")
        self.prepare()
        wanted = [flavors[i % len(flavors)] for i in range(count)]
        self.start_hosts(wanted)
        return self.hosts()

    def start_hosts(self, flavors: list[str]) -> list[SandboxHost]:
        """Start one new host per entry of ``flavors``; wait until each accepts SSH."""
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
        for name, flavor in names:
            self._run_container(name, flavor, tags[flavor])
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(lambda n: self._await_boot(n[0]), names))
        started = {n for n, _ in names}
        self._write_ssh_files()
        return [h for h in self.hosts() if h.name in started]

    def _run_container(self, name: str, flavor: str, tag: str) -> None:
        volume = f"{name}-docker"
        docker("volume", "create", "--label", self.label, volume)
        hostname = name.removeprefix(f"hs-{self.name}-")
        docker("run", "-d", "--name", name, "--hostname", f"{flavor}-{hostname}",
               "--label", self.label, "--label", f"hostsetup.flavor={flavor}",
               "--network", self.network, "--network-alias", f"{flavor}-{hostname}",
               *SYSTEMD_RUN_OPTIONS, "-v", f"{volume}:/var/lib/docker",
               "-p", "127.0.0.1::22", tag, "/sbin/init")

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
        install = (f"set -e; for h in /root /home/{SANDBOX_USER}; do "
                   "install -d -m 700 $h/.ssh; cat /tmp/key > $h/.ssh/authorized_keys; "
                   "chmod 600 $h/.ssh/authorized_keys; done; "
                   f"chown -R {SANDBOX_USER}: /home/{SANDBOX_USER}/.ssh; rm /tmp/key")
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
        from hostsetup.sandbox.mirror import build_mirror

        self.prepare()
        built = build_mirror(self.cache / "mirror", progress=self.progress)
        name = f"hs-{self.name}-mirror"
        running = docker("inspect", "-f", "{{.State.Running}} {{range .Mounts}}{{.Source}}{{end}}",
                         name, check=False).stdout.split()
        if running != ["true", str(built.root)]:
            docker("rm", "-f", name, check=False)
            docker("run", "-d", "--name", name, "--label", self.label,
                   "--network", self.network, "--network-alias", MIRROR_ALIAS,
                   "-v", f"{built.root}:/srv/mirror:ro",
                   ensure_image("debian12", self.cache / "build", self.progress),
                   "python3", "-m", "http.server", "80", "--directory", "/srv/mirror")
        deadline = time.monotonic() + 30
        while docker("exec", name, "curl", "-fsS", "-o", "/dev/null", "http://localhost/",
                     check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise SandboxError("the sandbox mirror did not start serving")
            time.sleep(0.3)
        return SandboxMirror(url=f"http://{MIRROR_ALIAS}", build=built)

    def remove_hosts(self, hosts: list[SandboxHost]) -> None:
        """Remove the given hosts and their docker volumes."""
        if not hosts:
            return
        docker("rm", "-f", "-v", *[h.name for h in hosts])
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
        if docker("network", "inspect", self.network, check=False).returncode == 0:
            docker("network", "rm", self.network)
            removed.append(f"network {self.network}")
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
        found = []
        for info in json.loads(docker("inspect", *ids).stdout):
            ports = (info["NetworkSettings"]["Ports"] or {}).get("22/tcp") or []
            net = info["NetworkSettings"]["Networks"].get(self.network, {})
            found.append(SandboxHost(
                name=info["Name"].lstrip("/"),
                hostname=info["Config"]["Hostname"],
                flavor=info["Config"]["Labels"].get("hostsetup.flavor", ""),
                port=int(ports[0]["HostPort"]) if ports else 0,
                address=net.get("IPAddress", ""),
            ))
        return sorted(found, key=lambda h: (len(h.name), h.name))
