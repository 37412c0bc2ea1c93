"""The sandbox's registries: real ``docker-registry`` (distribution 2.8, Debian's package)
containers on the sandbox network, each over HTTPS.

- ``hub.sandbox.internal``: a Docker Hub stand-in holding ``library/tiny`` and
  ``library/hello-world`` (the hosts cannot reach it as Docker Hub: ``registry-1.docker.io``
  does not resolve on the sandbox network, so a pull with no mirror fails, as on a server
  that cannot reach the Hub);
- ``registry-mirror.sandbox.internal``: a pull-through cache (``proxy.remoteurl`` = the hub
  stand-in), the registry mirror hosts are configured with;
- ``registry.sandbox.internal:5000``: a private registry with htpasswd authentication, holding
  ``team/tiny:1``, whose certificate comes from a CA of its own that the hosts do NOT trust
  (a company's internal CA): pulls fail until its CA is installed in ``/etc/docker/certs.d``.

The images are written straight into each registry's storage (the filesystem driver's
layout), from the mirror's tiny image and hostsetup's bundled smoke image: no push, no
download. Every request each registry serves is in its container log.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt  # paramiko's dependency (not one of hostsetup's own): only the sandbox needs it

from hostsetup.sandbox import debarchive
from hostsetup.sandbox.engine import Progress, SandboxError, docker
from hostsetup.smoke import deterministic_tar

HUB = "hub.sandbox.internal"
REGISTRY_MIRROR = "registry-mirror.sandbox.internal"
PRIVATE = "registry.sandbox.internal"
PRIVATE_PORT = 5000
PRIVATE_USER = "deploy"
HUB_IMAGES = ("library/tiny:latest", "library/hello-world:latest",
              *(f"portainer/{n}:{v}" for n in ("portainer-ce", "agent") for v in ("2.21.4", "2.21.5")))
PRIVATE_IMAGE = "team/tiny:1"
REGISTRY_PACKAGE = "docker-registry"
REGISTRY_SUITE = "bookworm"
BINARY = "usr/bin/docker-registry"

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class ImageParts:
    """One single-platform image: its config JSON and its layers (uncompressed tars)."""

    config: bytes
    layers: tuple[bytes, ...]


def parts_from_archive(archive: bytes) -> ImageParts:
    """The config and layers of the first image of a ``docker save`` archive."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            if member is None:
                raise SandboxError(f"image archive: {name} is not a file")
            return member.read()
        manifest = json.loads(read("manifest.json"))[0]
        return ImageParts(read(manifest["Config"]), tuple(read(layer) for layer in manifest["Layers"]))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_repository(root: Path, reference: str, image: ImageParts) -> str:
    """Store ``image`` as ``reference`` (``name:tag``) in a registry's filesystem storage under
    ``root`` (the driver's ``rootdirectory``); return the manifest digest."""
    name, _, tag = reference.rpartition(":")
    v2 = root / "docker" / "registry" / "v2"
    repo = v2 / "repositories" / name

    def blob(data: bytes) -> str:
        digest = _digest(data)
        hexa = digest.split(":", 1)[1]
        _write(v2 / "blobs" / "sha256" / hexa[:2] / hexa / "data", data)
        return digest

    layers = []
    for layer in image.layers:
        packed = _gzip(layer)
        digest = blob(packed)
        _write(repo / "_layers" / "sha256" / digest.split(":", 1)[1] / "link", digest.encode())
        layers.append({"mediaType": LAYER_GZIP, "size": len(packed), "digest": digest})
    config = blob(image.config)
    _write(repo / "_layers" / "sha256" / config.split(":", 1)[1] / "link", config.encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_V2,
                           "config": {"mediaType": CONFIG_V1, "size": len(image.config), "digest": config},
                           "layers": layers}, indent=3).encode()
    digest = blob(manifest)
    hexa = digest.split(":", 1)[1]
    manifests = repo / "_manifests"
    _write(manifests / "revisions" / "sha256" / hexa / "link", digest.encode())
    _write(manifests / "tags" / tag / "current" / "link", digest.encode())
    _write(manifests / "tags" / tag / "index" / "sha256" / hexa / "link", digest.encode())
    return digest


def registry_config(tls_dir: str, storage: str, port: int, proxy: str = "", htpasswd: str = "") -> str:
    """The registry's config.yml (JSON is YAML)."""
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": False}},
        "http": {"addr": f":{port}", "tls": {"certificate": f"{tls_dir}/server.crt",
                                             "key": f"{tls_dir}/server.key"}},
    }
    if proxy:
        config["proxy"] = {"remoteurl": proxy}
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "hostsetup sandbox", "path": htpasswd}}
    return json.dumps(config, indent=2) + "\n"


def htpasswd_line(user: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash (the only kind the registry accepts)."""
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"


@dataclass(frozen=True)
class SandboxRegistry:
    """One running registry: what the hosts call it and the container that logs its requests."""

    name: str         # hub, mirror or private
    address: str      # host[:port] as the hosts reach it
    container: str

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    def requests(self) -> list[str]:
        """The request lines of its log (``GET /v2/library/tiny/manifests/latest`` ...)."""
        logs = docker("logs", self.container, check=False)
        return [line for line in (logs.stdout + logs.stderr).splitlines() if '"GET /v2/' in line
                or '"HEAD /v2/' in line or "http.request.uri" in line]


@dataclass(frozen=True)
class SandboxRegistries:
    """The three registries and what a test or a user needs to talk to them."""

    hub: SandboxRegistry
    mirror: SandboxRegistry
    private: SandboxRegistry
    username: str
    password_file: Path     # the private registry's password (0600, on this machine only)
    private_ca: Path        # the private registry's CA certificate (not trusted by the hosts)

    @property
    def private_image(self) -> str:
        return f"{self.private.address}/{PRIVATE_IMAGE}"

    def all(self) -> tuple[SandboxRegistry, ...]:
        return (self.hub, self.mirror, self.private)


def registry_binary(cache: Path, progress: Progress) -> Path:
    """Debian's docker-registry binary (downloaded and checked once, then cached)."""
    debs = debarchive.fetch_packages(REGISTRY_SUITE, debarchive.dpkg_arch(), [REGISTRY_PACKAGE], cache / "debian")
    deb = debs[REGISTRY_PACKAGE]
    tree = cache / "registry" / deb.stem
    binary = tree / BINARY
    if not binary.is_file():
        progress(f"unpacking {deb.name}")
        tmp = tree.with_name(tree.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True, timeout=120)
        shutil.rmtree(tree, ignore_errors=True)
        tmp.rename(tree)
    return binary


def wait_serving(container: str, port: int, name: str, timeout: float = 30) -> None:
    """Until the registry answers ``/v2/`` over TLS (200, or 401 when it wants a login)."""
    probe = (f"curl -ks -o /dev/null -w '%{{http_code}}' https://localhost:{port}/v2/ "
             "| grep -qE '^(200|401)$'")
    deadline = time.monotonic() + timeout
    while docker("exec", container, "sh", "-c", probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "5", container, check=False)
            raise SandboxError(f"the sandbox registry {name} did not start serving: "
                               f"{(logs.stderr or logs.stdout).strip()}")
        time.sleep(0.2)


def new_password() -> str:
    return secrets.token_urlsafe(18)


# --- Portainer stand-ins ------------------------------------------------------------------------------
# No Portainer image can be downloaded here. The Hub stand-in serves, under Portainer's names, an image
# that is NOT Portainer: busybox plus this machine's own openssl (and the libraries it links), whose
# entry point makes a self-signed certificate in /data (the named volume) once and answers HTTPS on the
# port Portainer uses (9443; the agent's 9001) with `openssl s_server -www`. It records the arguments it
# was started with in /data/args. What is under test is hostsetup's part: the pull through the mirror,
# the container's options, idempotence, upgrade, removal, the checks.
PORTAINER_VERSIONS = ("2.21.4", "2.21.5")
STANDIN_SCRIPT = """#!/bin/sh
# hostsetup sandbox stand-in for {name} (not Portainer): answers HTTPS on {port}
/bin/busybox mkdir -p /data
echo "$@" > /data/args
[ -f /data/standin.crt ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\
  -keyout /data/standin.key -out /data/standin.crt -days 3650 -subj /CN={name}-standin 2>/dev/null
openssl s_server -quiet -accept {port} -www -cert /data/standin.crt -key /data/standin.key &
pid=$!
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
wait $pid
"""
OPENSSL_CONF = "[req]\ndistinguished_name = dn\n[dn]\n"


def _tar_layer(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A deterministic layer: ``path -> (content, mode)``, with each parent directory."""
    dirs = {"/".join(p.split("/")[:i]) + "/" for p in files for i in range(1, p.count("/") + 1)}
    entries: dict[str, tuple[bytes | None, int]] = {d: (None, 0o755) for d in dirs}
    return deterministic_tar({**entries, **files})


def openssl_files() -> dict[str, tuple[bytes, int]]:
    """This machine's openssl and every library ``ldd`` says it loads (the loader too)."""
    binary = shutil.which("openssl")
    if binary is None:
        raise SandboxError("the Portainer stand-in needs openssl on this machine")
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True, timeout=30).stdout
    files = {"usr/bin/openssl": (Path(binary).read_bytes(), 0o755)}
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts and parts[0].startswith("/") else ""
        if path.startswith("/"):
            files[path.lstrip("/")] = (Path(path).resolve().read_bytes(), 0o755)
    return files


def standin_image(busybox_layer: bytes, tools: bytes, name: str, port: int, version: str) -> ImageParts:
    """The stand-in ``name`` at ``version``: busybox, openssl, and its entry script."""
    script = STANDIN_SCRIPT.format(name=name, port=port).encode()
    own = _tar_layer({"portainer": (script, 0o755),
                      "etc/hostsetup-standin-openssl.cnf": (OPENSSL_CONF.encode(), 0o644)})
    layers = (busybox_layer, tools, own)
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Entrypoint": ["/portainer"], "ExposedPorts": {f"{port}/tcp": {}},
                         "Env": ["PATH=/usr/bin:/bin", "OPENSSL_CONF=/etc/hostsetup-standin-openssl.cnf"],
                         "Labels": {"org.hostsetup.standin": name, "org.opencontainers.image.version": version}},
              "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
              "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"hostsetup sandbox: {name} stand-in"}]}
    return ImageParts(json.dumps(config, sort_keys=True).encode(), layers)


def image_sources(tiny_archive: bytes, smoke_archive: bytes) -> Mapping[str, ImageParts]:
    tiny, smoke = parts_from_archive(tiny_archive), parts_from_archive(smoke_archive)
    images = {"library/tiny:latest": tiny, "library/hello-world:latest": smoke, PRIVATE_IMAGE: tiny}
    tools = _tar_layer(openssl_files())
    for version in PORTAINER_VERSIONS:
        images[f"portainer/portainer-ce:{version}"] = standin_image(tiny.layers[0], tools, "portainer-ce", 9443,
                                                                     version)
        images[f"portainer/agent:{version}"] = standin_image(tiny.layers[0], tools, "agent", 9001, version)
    return images
