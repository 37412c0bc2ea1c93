"""A local, signed docker-ce package mirror for the test sandbox.

The tree has the layout of Docker's official apt repository
(``linux/debian/...``), so hostsetup installs from it exactly as from the
real one. The packages (``docker-ce``,
``docker-ce-cli``, ``containerd.io``, ``docker-buildx-plugin``,
``docker-compose-plugin``) are repacked from the real binaries of Debian's own
packages, and their versions say which upstream release those binaries are:

* bookworm: docker-ce/-cli ``5:20.10.24-1~debian.12~bookworm`` (bookworm's
  docker.io) and ``5:20.10.5-1~debian.12~bookworm`` (bullseye's docker.io: its
  binaries need GLIBC_2.4 at most plus libdevmapper.so.1.02.1 and
  libsystemd.so.0, all in bookworm); containerd.io from bookworm's containerd +
  runc.
* trixie: docker-ce/-cli from trixie's docker.io/docker-cli, containerd.io from
  trixie's containerd + runc.
* Both codenames get docker-buildx-plugin and docker-compose-plugin made from
  trixie's docker-buildx and docker-compose. Those Go binaries need GLIBC_2.34
  at most and bookworm has glibc 2.36, so they run on bookworm. The choice is
  checked twice: at plan time against the libc6 versions in the signed indexes
  (a plugin that needs a newer glibc is left out of that codename), and at build
  time against the symbol versions that ``readelf`` reports (a mismatch fails
  the build).

Next to it, ``debian-fixtures/`` is a repository of Debian's own unmodified
bookworm ``docker.io``, ``containerd``, ``runc`` and ``tini``, so tests can
pre-install the package that conflicts with docker-ce. ``images/tiny.tar`` is
a tiny image in ``docker save`` format made from ``busybox-static`` without
Docker. Both repositories are signed with a throwaway key made for the build.
``hostsetup.sandbox.rpmrepo`` adds Docker's yum layout (``linux/centos``,
``linux/rhel``) and ``el-fixtures/`` for the EL rehearsal hosts, from the same
bookworm packages and signed with the same key (``Mirror.rpm``).

A mirror is built once per recipe hash into ``cache_dir/mirror-<hash12>/``
(``root/`` is what to serve over HTTP; ``gnupg/`` holds the key and is not
served), written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hostsetup.errors import HostsetupError
from hostsetup.sandbox import debarchive
from hostsetup.sandbox.debarchive import SuiteIndex
from hostsetup.versions import compare_versions, sort_newest_first, split_version

if TYPE_CHECKING:
    from hostsetup.sandbox.rpmrepo import RpmRepo

Progress = Callable[[str], None]

# --- recipe constants (all of them feed the recipe hash) -------------------

RECIPE_FORMAT = 1  # bump when the build code changes in a way the recipe does not show
REPO_PATH = "linux/debian"
KEY_PATH = f"{REPO_PATH}/gpg"
COMPONENT = "stable"
FIXTURES_PATH = "debian-fixtures"
FIXTURES_SUITE = "bookworm"
# Debian's docker.io and the packages it needs beyond a base system (its lsb-base
# dependency is provided by bookworm's essential sysvinit-utils); libdevmapper1.02.1, which docker-ce
# needs from the distribution, for reference hosts (``hostsetup bundle --from``).
FIXTURES_PACKAGES = ("docker.io", "containerd", "runc", "tini", "libdevmapper1.02.1")
TINY_IMAGE = "images/tiny.tar"
TINY_IMAGE_REF = "hostsetup/tiny:1"
TINY_IMAGE_OUTPUT = "hello from hostsetup tiny image"
TINY_SUITE = "bookworm"
KEY_UID = "hostsetup sandbox mirror (throwaway test key) <sandbox@hostsetup.invalid>"
KEY_ALGO = "ed25519"
MAINTAINER = "hostsetup test sandbox <sandbox@hostsetup.invalid>"
DEB_COMPRESSION = ("-Zgzip", "-z6")
RELEASE_ORIGIN = "Docker"
RELEASE_LABEL = "Docker CE (hostsetup sandbox)"
FIXTURES_ORIGIN = "hostsetup"
FIXTURES_LABEL = "Debian packages for hostsetup tests"

DEBIAN_RELEASE = {"bookworm": "12", "trixie": "13"}
PLUGIN_SUITE = "trixie"  # docker-buildx and docker-compose exist from trixie on


@dataclass(frozen=True)
class EngineSource:
    """Where the binaries of one docker-ce/docker-ce-cli version come from."""

    suite: str                 # Debian suite whose docker.io is repacked
    cli_package: str = "docker.io"  # trixie moved the CLI to docker-cli


# Newest first is not required here: versions are sorted when reported.
ENGINES: dict[str, tuple[EngineSource, ...]] = {
    "bookworm": (EngineSource("bookworm"), EngineSource("bullseye")),
    "trixie": (EngineSource("trixie", "docker-cli"),),
}
CONTAINERD_SUITE = {"bookworm": "bookworm", "trixie": "trixie"}
CONTAINERD_BINARIES = ("containerd", "containerd-shim", "containerd-shim-runc-v1",
                       "containerd-shim-runc-v2", "ctr")
PLUGINS = {"docker-buildx-plugin": "docker-buildx", "docker-compose-plugin": "docker-compose"}

# Shared libraries whose packages may appear in Depends (soname -> package).
SONAME_PACKAGES = {
    "libc.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
    "libm.so.6": "libc6", "librt.so.1": "libc6", "libresolv.so.2": "libc6",
    "libsystemd.so.0": "libsystemd0", "libdevmapper.so.1.02.1": "libdevmapper1.02.1",
    "libseccomp.so.2": "libseccomp2",
}

DOCKER_SERVICE = """\
[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
# the default is not to use systemd for cgroups because the delegate issues still
# exists and systemd currently does not support the cgroup feature set required
# for containers run by docker
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always

# Note that StartLimit* options were moved from "Service" to "Unit" in systemd 229.
# Both the old, and new location are accepted by systemd 229 and up, so using the old location
# to make them work for either version of systemd.
StartLimitBurst=3

# Note that StartLimitInterval was renamed to StartLimitIntervalSec in systemd 230.
# Both the old, and new name are accepted by systemd 230 and up, so using the old name to make
# this option work for either version of systemd.
StartLimitInterval=60s

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not support it.
# Only systemd 226 and above support this option.
TasksMax=infinity

# set delegate yes so that systemd does not reset the cgroups of docker containers
Delegate=yes

# kill only the docker process, not all processes in the cgroup
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
"""

DOCKER_SOCKET = """\
[Unit]
Description=Docker Socket for the API

[Socket]
# If /var/run is not implemented as a symlink to /run, you may need to
# specify ListenStream=/var/run/docker.sock instead.
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
"""

CONTAINERD_SERVICE = """\
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""

CONTAINERD_CONFIG = """\
#   Configuration shipped by containerd.io (hostsetup sandbox repack).
#   See containerd-config.toml(5); `containerd config default` prints all options.

disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0

#[debug]
#  address = "/run/containerd/debug.sock"
#  uid = 0
#  gid = 0
#  level = "info"
"""

DOCKER_GROUP_SNIPPET = """\
	if [ -z "$2" ] && ! getent group docker >/dev/null; then
		groupadd --system docker
	fi
"""


def postinst_script(units: tuple[str, ...], restart: str, pre: str = "") -> str:
    """postinst: ``pre`` on configure, then enable (fresh install) and start the units.

    Starting needs a running systemd (``/run/systemd/system``); enabling also works
    offline (e.g. in a chroot) when systemctl exists. Nothing here fails the
    install when systemd is absent or a unit does not start.
    """
    names = " ".join(units)
    return f"""#!/bin/sh
set -e

if [ "$1" = configure ]; then
{pre}	if [ -z "$2" ] && command -v systemctl >/dev/null 2>&1; then
		systemctl enable {names} >/dev/null 2>&1 || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
		if [ -n "$2" ]; then
			systemctl restart {restart} >/dev/null 2>&1 || true
		fi
		systemctl start {names} >/dev/null 2>&1 || true
	fi
fi

exit 0
"""


def prerm_script(units: tuple[str, ...]) -> str:
    """prerm: stop the units when the package is removed (not on upgrade)."""
    names = " ".join(reversed(units))
    return f"""#!/bin/sh
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl stop {names} >/dev/null 2>&1 || true
fi

exit 0
"""


def postrm_script(units: tuple[str, ...]) -> str:
    """postrm: forget the units' enablement on purge; reload a running systemd."""
    links = " ".join(f"/etc/systemd/system/*.wants/{unit}" for unit in units)
    return f"""#!/bin/sh
set -e

if [ "$1" = purge ]; then
	rm -f {links}
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

exit 0
"""


DOCKER_UNITS = ("docker.socket", "docker.service")
CONTAINERD_UNITS = ("containerd.service",)


# --- data model ----------------------------------------------------------------

class MirrorError(HostsetupError):
    """The sandbox package mirror could not be built."""


@dataclass(frozen=True)
class Payload:
    """One file of a repacked package: a member of a Debian package, or literal text."""

    dest: str                  # absolute path inside the package
    mode: int = 0o755
    source: str = ""           # "<suite>/<debian package>" when copied from a .deb
    member: str = ""           # path inside that .deb
    text: str | None = None    # literal content instead of a copied member


@dataclass(frozen=True)
class DebSpec:
    """A package to build into one codename's repository."""

    codename: str
    name: str
    version: str
    fields: tuple[tuple[str, str], ...]
    files: tuple[Payload, ...]
    conffiles: tuple[str, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version.split(':', 1)[-1]}"

    @property
    def sources(self) -> set[str]:
        return {f.source for f in self.files if f.source}


@dataclass(frozen=True)
class Mirror:
    """A built mirror; serve ``root`` at ``/`` with any static HTTP server."""

    root: Path
    key_fingerprint: str
    versions: dict[str, list[str]]
    tiny_image: Path
    tiny_image_ref: str
    tiny_image_output: str
    recipe_hash: str = ""
    arch: str = ""
    packages: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fixtures: dict[str, str] = field(default_factory=dict)
    repo_path: str = REPO_PATH
    key_path: str = KEY_PATH
    fixtures_path: str = FIXTURES_PATH
    fixtures_suite: str = FIXTURES_SUITE
    rpm: RpmRepo | None = None   # the EL rehearsal RPM repositories (hostsetup.sandbox.rpmrepo)


# --- Debian versions (pure) ----------------------------------------------------

def upstream_version(debian_version: str) -> str:
    """The upstream release in a Debian version: ``20.10.24+dfsg1-1+deb12u1+b6`` -> ``20.10.24``."""
    _, upstream, _ = split_version(debian_version)
    return re.split(r"[+~]", upstream, maxsplit=1)[0]


def docker_version(debian_version: str, codename: str) -> str:
    """docker-ce's official form: ``5:20.10.24-1~debian.12~bookworm``."""
    return f"5:{upstream_version(debian_version)}-1~debian.{DEBIAN_RELEASE[codename]}~{codename}"


def plugin_version(debian_version: str, codename: str) -> str:
    """Plugin packages' official form: ``0.13.1-1~debian.12~bookworm``."""
    return f"{upstream_version(debian_version)}-1~debian.{DEBIAN_RELEASE[codename]}~{codename}"


def containerd_version(debian_version: str) -> str:
    """containerd.io's official form: ``1.6.20-1``."""
    return f"{upstream_version(debian_version)}-1"


# --- Depends (pure) -------------------------------------------------------------

def parse_relations(text: str) -> list[tuple[str, str]]:
    """``a (>= 1), b | c`` -> ``[("a", ">= 1"), ("b", "")]`` (first of alternatives)."""
    result = []
    for item in text.split(","):
        first = item.split("|")[0].strip()
        match = re.match(r"^([a-z0-9][a-z0-9+.-]*)(?::\S+)?\s*(?:\(([^)]*)\))?", first)
        if match:
            result.append((match.group(1), " ".join((match.group(2) or "").split())))
    return result


def shlib_depends(depends_fields: Iterable[str], libs: Iterable[str]) -> list[str]:
    """The strongest ``>=`` relation per library package in ``libs``, as in Debian's Depends."""
    wanted = set(libs)
    best: dict[str, str] = {}
    for text in depends_fields:
        for name, rel in parse_relations(text):
            if name not in wanted:
                continue
            version = rel[2:].strip() if rel.startswith(">=") else ""
            old = best.get(name)
            if old is None or (version and (not old or compare_versions(version, old) > 0)):
                best[name] = version
    return [f"{n} (>= {v})" if v else n for n, v in sorted(best.items())]


def libc_minimum(pkg: debarchive.BinaryPackage) -> str:
    """The libc6 version a Debian binary package declares it needs ('' if none)."""
    for name, rel in parse_relations(pkg.depends):
        if name == "libc6" and rel.startswith(">="):
            return rel[2:].strip()
    return ""


def runs_on(pkg: debarchive.BinaryPackage, target_libc6: str) -> bool:
    """True when ``pkg``'s libc6 requirement is met by ``target_libc6`` (a Debian version)."""
    need = libc_minimum(pkg)
    return not need or compare_versions(upstream_version(target_libc6), need) >= 0


# --- control text (pure) --------------------------------------------------------

def control_text(spec: DebSpec, arch: str, installed_size: int) -> str:
    """The DEBIAN/control file for ``spec``."""
    head = [("Package", spec.name), ("Version", spec.version), ("Architecture", arch),
            ("Maintainer", MAINTAINER), ("Installed-Size", str(installed_size))]
    lines = []
    for key, value in [*head, *spec.fields]:
        if key == "Description":
            summary, _, body = value.partition("\n")
            lines.append(f"Description: {summary}")
            lines += [f" {ln}" if ln else " ." for ln in body.splitlines()]
        elif value:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


# --- the plan (pure, given the indexes) ----------------------------------------

def index_names() -> dict[str, set[str]]:
    """Debian packages to look up per suite."""
    names: dict[str, set[str]] = {}
    for codename, engines in ENGINES.items():
        names.setdefault(codename, set()).add("libc6")
        for eng in engines:
            names.setdefault(eng.suite, set()).update({"docker.io", eng.cli_package, "tini"})
        names.setdefault(CONTAINERD_SUITE[codename], set()).update({"containerd", "runc"})
    names.setdefault(PLUGIN_SUITE, set()).update(PLUGINS.values())
    names.setdefault(FIXTURES_SUITE, set()).update(FIXTURES_PACKAGES)
    names.setdefault(TINY_SUITE, set()).add("busybox-static")
    return names


def _describe(summary: str, body: str,
              sources: Iterable[tuple[debarchive.BinaryPackage, str]]) -> str:
    origin = ", ".join(f"{pkg.name} {pkg.version} ({suite})" for pkg, suite in sources)
    return f"{summary}\n{body}\n\nRepacked for the hostsetup test sandbox from Debian's {origin}."


def plan_engine(codename: str, eng: EngineSource, indexes: Mapping[str, SuiteIndex],
                plugins: list[str]) -> list[DebSpec]:
    """docker-ce and docker-ce-cli for one engine source."""
    ix = indexes[eng.suite]
    dockerio, cli, tini = ix.get("docker.io"), ix.get(eng.cli_package), ix.get("tini")
    version = docker_version(dockerio.version, codename)
    if docker_version(cli.version, codename) != version:
        raise MirrorError(f"{eng.suite}: docker.io {dockerio.version} and {cli.name} "
                          f"{cli.version} are different releases")
    src = f"{eng.suite}/docker.io"
    engine_libs = shlib_depends([dockerio.depends],
                                ("libc6", "libdevmapper1.02.1", "libsystemd0"))
    docker_ce = DebSpec(
        codename=codename, name="docker-ce", version=version,
        fields=(
            ("Section", "admin"), ("Priority", "optional"),
            ("Depends", ", ".join(["containerd.io (>= 1.4.1)", "docker-ce-cli", "iptables",
                                   "libseccomp2 (>= 2.3.0)", *engine_libs])),
            ("Conflicts", "docker (<< 1.5~), docker-engine, docker.io"),
            ("Replaces", "docker (<< 1.5~), docker-engine, docker.io"),
            ("Homepage", "https://www.docker.com"),
            ("Description", _describe(
                "Docker: the open-source application container engine",
                "The Docker daemon (dockerd), docker-proxy and docker-init.",
                [(dockerio, eng.suite), (tini, eng.suite)])),
        ),
        files=(
            Payload("/usr/bin/dockerd", source=src, member="usr/sbin/dockerd"),
            Payload("/usr/bin/docker-proxy", source=src, member="usr/sbin/docker-proxy"),
            Payload("/usr/bin/docker-init", source=f"{eng.suite}/tini",
                    member="usr/bin/tini-static"),
            Payload("/lib/systemd/system/docker.service", 0o644, text=DOCKER_SERVICE),
            Payload("/lib/systemd/system/docker.socket", 0o644, text=DOCKER_SOCKET),
        ),
        scripts=(("postinst", postinst_script(DOCKER_UNITS, "docker.service",
                                              DOCKER_GROUP_SNIPPET)),
                 ("prerm", prerm_script(DOCKER_UNITS)), ("postrm", postrm_script(DOCKER_UNITS))),
    )
    docker_cli = DebSpec(
        codename=codename, name="docker-ce-cli", version=version,
        fields=(
            ("Section", "admin"), ("Priority", "optional"),
            ("Depends", ", ".join(shlib_depends([cli.depends], ("libc6",)))),
            ("Recommends", ", ".join(plugins)),
            ("Conflicts", "docker (<< 1.5~), docker-engine, docker.io"),
            ("Replaces", "docker-ce (<< 5:0)"),
            ("Breaks", "docker-ce (<< 5:0)"),
            ("Homepage", "https://www.docker.com"),
            ("Description", _describe(
                "Docker CLI: the open-source application container engine",
                "The docker command line client.", [(cli, eng.suite)])),
        ),
        files=(Payload("/usr/bin/docker", source=f"{eng.suite}/{cli.name}",
                       member="usr/bin/docker"),),
    )
    return [docker_ce, docker_cli]


def plan_containerd(codename: str, indexes: Mapping[str, SuiteIndex]) -> DebSpec:
    """containerd.io from Debian's containerd + runc."""
    suite = CONTAINERD_SUITE[codename]
    containerd, runc = indexes[suite].get("containerd"), indexes[suite].get("runc")
    files = [Payload(f"/usr/bin/{b}", source=f"{suite}/containerd", member=f"usr/bin/{b}")
             for b in CONTAINERD_BINARIES]
    files += [
        Payload("/usr/bin/runc", source=f"{suite}/runc", member="usr/sbin/runc"),
        Payload("/lib/systemd/system/containerd.service", 0o644, text=CONTAINERD_SERVICE),
        Payload("/etc/containerd/config.toml", 0o644, text=CONTAINERD_CONFIG),
    ]
    return DebSpec(
        codename=codename, name="containerd.io", version=containerd_version(containerd.version),
        fields=(
            ("Section", "devel"), ("Priority", "optional"),
            ("Depends", ", ".join(shlib_depends([containerd.depends, runc.depends],
                                                ("libc6", "libseccomp2")))),
            ("Provides", "containerd, runc"),
            ("Conflicts", "containerd, runc"),
            ("Replaces", "containerd, runc"),
            ("Homepage", "https://containerd.io"),
            ("Description", _describe(
                "An open and reliable container runtime",
                "containerd, its shims, ctr and runc.",
                [(containerd, suite), (runc, suite)])),
        ),
        files=tuple(files),
        conffiles=("/etc/containerd/config.toml",),
        scripts=(("postinst", postinst_script(CONTAINERD_UNITS, "containerd.service")),
                 ("prerm", prerm_script(CONTAINERD_UNITS)),
                 ("postrm", postrm_script(CONTAINERD_UNITS))),
    )


def plan_plugin(codename: str, name: str, indexes: Mapping[str, SuiteIndex]) -> DebSpec:
    """A CLI plugin package from Debian's package of the same tool."""
    deb = indexes[PLUGIN_SUITE].get(PLUGINS[name])
    tool = PLUGINS[name]
    relations: tuple[tuple[str, str], ...] = (("Replaces", "docker-ce-cli"),)
    if name == "docker-compose-plugin":
        relations = (("Recommends", "docker-buildx-plugin"), ("Conflicts", "docker-compose"),
                     ("Replaces", "docker-compose"), ("Breaks", "docker-compose"))
    path = f"usr/libexec/docker/cli-plugins/{tool}"
    return DebSpec(
        codename=codename, name=name, version=plugin_version(deb.version, codename),
        fields=(
            ("Section", "admin"), ("Priority", "optional"),
            ("Depends", ", ".join(shlib_depends([deb.depends], ("libc6",)))),
            *relations,
            ("Enhances", "docker-ce-cli"),
            ("Homepage", f"https://github.com/docker/{tool.removeprefix('docker-')}"),
            ("Description", _describe(
                f"Docker {tool.removeprefix('docker-').capitalize()} cli plugin.",
                f"This plugin provides the 'docker {tool.removeprefix('docker-')}' subcommand.",
                [(deb, PLUGIN_SUITE)])),
        ),
        files=(Payload(f"/{path}", source=f"{PLUGIN_SUITE}/{tool}", member=path),),
    )


def plan_packages(indexes: Mapping[str, SuiteIndex]) -> list[DebSpec]:
    """Every package of every codename, from the signed Debian indexes."""
    specs: list[DebSpec] = []
    for codename, engines in ENGINES.items():
        libc6 = indexes[codename].get("libc6").version
        plugins = [name for name, tool in PLUGINS.items()
                   if runs_on(indexes[PLUGIN_SUITE].get(tool), libc6)]
        for eng in engines:
            specs += plan_engine(codename, eng, indexes, plugins)
        specs.append(plan_containerd(codename, indexes))
        specs += [plan_plugin(codename, name, indexes) for name in plugins]
    return specs


def make_recipe(indexes: Mapping[str, SuiteIndex], arch: str) -> dict[str, object]:
    """Everything the mirror is made from, as plain JSON-able data."""
    specs = plan_packages(indexes)
    used = {s for spec in specs for s in spec.sources}
    used |= {f"{FIXTURES_SUITE}/{n}" for n in FIXTURES_PACKAGES}
    used.add(f"{TINY_SUITE}/busybox-static")
    sources = {}
    for ref in sorted(used):
        suite, name = ref.split("/", 1)
        pkg = indexes[suite].get(name)
        sources[ref] = {"version": pkg.version, "sha256": pkg.sha256}
    return {
        "format": RECIPE_FORMAT, "arch": arch, "sources": sources,
        "packages": [asdict(spec) for spec in specs],
        "fixtures": {"path": FIXTURES_PATH, "suite": FIXTURES_SUITE,
                     "packages": list(FIXTURES_PACKAGES),
                     "origin": FIXTURES_ORIGIN, "label": FIXTURES_LABEL},
        "repo": {"path": REPO_PATH, "component": COMPONENT, "origin": RELEASE_ORIGIN,
                 "label": RELEASE_LABEL, "compression": list(DEB_COMPRESSION),
                 "maintainer": MAINTAINER},
        "tiny": {"path": TINY_IMAGE, "ref": TINY_IMAGE_REF, "output": TINY_IMAGE_OUTPUT,
                 "suite": TINY_SUITE},
        "key": {"uid": KEY_UID, "algo": KEY_ALGO},
    }


def recipe_hash(recipe: Mapping[str, object]) -> str:
    """SHA256 (hex) of the canonical JSON of a recipe."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --- ELF checks ---------------------------------------------------------------------

def parse_needed(readelf_dynamic: str) -> list[str]:
    """Sonames from ``readelf -d`` output."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf_dynamic)


def max_glibc(readelf_versions: str) -> str:
    """The highest ``GLIBC_x.y`` symbol version in ``readelf -V`` output ('' if none)."""
    found = re.findall(r"Name: GLIBC_([0-9][0-9.]*)", readelf_versions)
    return sort_newest_first(found)[0] if found else ""


def _elf_needs(path: Path) -> tuple[list[str], str]:
    with path.open("rb") as fh:
        if fh.read(4) != b"\x7fELF":
            return [], ""
    dyn = run_tool(["readelf", "-dW", str(path)], "readelf").stdout
    ver = run_tool(["readelf", "-VW", str(path)], "readelf").stdout
    return parse_needed(dyn), max_glibc(ver)


def check_binaries(spec: DebSpec, tree: Path, depends: str, target_glibc: str) -> None:
    """Fail unless every ELF file's libraries are in Depends and its glibc is new enough."""
    declared = dict(parse_relations(depends))
    for payload in spec.files:
        needed, glibc = _elf_needs(tree / payload.dest.lstrip("/"))
        for soname in needed:
            pkg = SONAME_PACKAGES.get(soname, "libc6" if soname.startswith("ld-linux") else "")
            if pkg not in declared:
                raise MirrorError(f"{spec.name} {spec.version}: {payload.dest} needs {soname}, "
                                  f"which Depends ({depends}) does not cover")
        if glibc and compare_versions(glibc, target_glibc) > 0:
            raise MirrorError(f"{spec.name} {spec.version}: {payload.dest} needs GLIBC_{glibc}, "
                              f"{spec.codename} has {target_glibc}")
        libc_min = declared.get("libc6", "")[2:].strip()
        if glibc and libc_min and compare_versions(glibc, libc_min) > 0:
            raise MirrorError(f"{spec.name}: {payload.dest} needs GLIBC_{glibc} but Depends "
                              f"says libc6 (>= {libc_min})")


# --- tiny image (docker save format) --------------------------------------------

def _tar_info(name: str, kind: bytes, size: int = 0, mode: int = 0o644,
              link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size, mode, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def layer_tar(busybox: bytes) -> bytes:
    """A root filesystem layer: /bin/busybox plus sh and echo symlinks (deterministic)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_tar_info("bin/", tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_tar_info("bin/busybox", tarfile.REGTYPE, len(busybox), 0o755),
                    io.BytesIO(busybox))
        for applet in ("echo", "sh"):
            tar.addfile(_tar_info(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777,
                                  link="busybox"))
    return buf.getvalue()


def image_files(layer: bytes, ref: str, output: str, arch: str) -> dict[str, bytes]:
    """The members of a ``docker save`` archive for a one-layer image."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    created = "1970-01-01T00:00:00Z"
    config = {
        "architecture": arch, "os": "linux", "created": created,
        "config": {"Cmd": ["/bin/echo", output],
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "hostsetup mirror: busybox-static"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_id = hashlib.sha256(f"{diff_id} {config_name}".encode()).hexdigest()
    repo, _, tag = ref.rpartition(":")
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{layer_id}/layer.tar"]}]
    legacy = {"id": layer_id, "created": created, "os": "linux", "architecture": arch,
              "config": config["config"]}
    return {
        f"{layer_id}/VERSION": b"1.0",
        f"{layer_id}/json": json.dumps(legacy, sort_keys=True).encode(),
        f"{layer_id}/layer.tar": layer,
        config_name: config_bytes,
        "manifest.json": json.dumps(manifest, sort_keys=True).encode(),
        "repositories": json.dumps({repo: {tag: layer_id}}, sort_keys=True).encode(),
    }


def write_image(dest: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` as an uncompressed tar with directories first (deterministic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dirs = sorted({name.split("/")[0] for name in files if "/" in name})
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tar:
        for d in dirs:
            tar.addfile(_tar_info(f"{d}/", tarfile.DIRTYPE, mode=0o755))
        for name in sorted(files):
            tar.addfile(_tar_info(name, tarfile.REGTYPE, len(files[name])),
                        io.BytesIO(files[name]))


# --- helpers -----------------------------------------------------------------------

def run_tool(cmd: list[str], what: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run a build tool; MirrorError with its last output lines when it fails."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
    except OSError as exc:
        raise MirrorError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise MirrorError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{tail}")
    return proc


def _installed_size(tree: Path) -> int:
    total = 0
    for path in tree.rglob("*"):
        if "DEBIAN" in path.relative_to(tree).parts[:1]:
            continue
        total += 1 if path.is_dir() or path.is_symlink() else -(-path.stat().st_size // 1024)
    return total


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- build steps ---------------------------------------------------------------------

class _Signer:
    """A throwaway GPG key in a private GNUPGHOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True)
        self._gpg("--quick-gen-key", KEY_UID, KEY_ALGO, "sign", "never")
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                                if line.startswith("fpr:")).upper()

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tool(["gpg", "--homedir", str(self.home), "--batch", "--yes",
                     "--pinentry-mode", "loopback", "--passphrase", "", *args], "gpg")

    def export(self, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(self._gpg("--armor", "--export", self.fingerprint).stdout)

    def sign_release(self, dist: Path) -> None:
        common = ("--local-user", self.fingerprint, "--digest-algo", "SHA512")
        self._gpg(*common, "--clearsign", "--output", str(dist / "InRelease"),
                  str(dist / "Release"))
        self._gpg(*common, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"),
                  str(dist / "Release"))

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       capture_output=True, check=False)
        for sock in self.home.glob("S.*"):
            sock.unlink(missing_ok=True)


def _gnupg_home(build: Path) -> Path:
    """GNUPGHOME inside the build dir, unless its agent socket path would be too long."""
    home = build / "gnupg"
    if len(str(home)) < 80:
        return home
    return Path(tempfile.mkdtemp(prefix="hs-gpg-")) / "gnupg"


def _index_repo(repo: Path, suite: str, component: str, arch: str, pool: str,
                labels: tuple[str, str], signer: _Signer) -> None:
    """Packages(.gz) for ``pool`` plus a signed Release/InRelease for ``suite``."""
    dist = repo / "dists" / suite
    bindir = dist / component / f"binary-{arch}"
    bindir.mkdir(parents=True, exist_ok=True)
    packages = run_tool(["apt-ftparchive", "packages", pool], "apt-ftparchive packages",
                    cwd=repo).stdout
    if not packages.strip():
        raise MirrorError(f"apt-ftparchive found no packages in {repo / pool}")
    (bindir / "Packages").write_text(packages)
    (bindir / "Packages.gz").write_bytes(gzip.compress(packages.encode(), 9, mtime=0))
    origin, label = labels
    opts = {"Origin": origin, "Label": label, "Suite": suite, "Codename": suite,
            "Architectures": arch, "Components": component,
            "Description": f"{label} for {suite}"}
    cmd = ["apt-ftparchive"]
    for key, value in opts.items():
        cmd += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
    release = run_tool([*cmd, "release", "."], "apt-ftparchive release", cwd=dist).stdout
    (dist / "Release").write_text(release)
    signer.sign_release(dist)


def _extract_sources(debs: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    trees = {}
    for ref, deb in debs.items():
        tree = dest / ref
        tree.mkdir(parents=True)
        run_tool(["dpkg-deb", "-x", str(deb), str(tree)], f"unpacking {deb.name}")
        trees[ref] = tree
    return trees


def _stage(spec: DebSpec, trees: Mapping[str, Path], dest: Path, arch: str) -> Path:
    tree = dest / f"{spec.codename}-{spec.filename}"
    for payload in spec.files:
        target = tree / payload.dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if payload.text is not None:
            target.write_text(payload.text)
        else:
            src = trees[payload.source] / payload.member
            if not src.is_file():
                raise MirrorError(f"{payload.source} has no {payload.member}")
            shutil.copyfile(src, target)
        target.chmod(payload.mode)
    control = tree / "DEBIAN"
    control.mkdir()
    for dirpath in [tree, *(p for p in tree.rglob("*") if p.is_dir())]:
        dirpath.chmod(0o755)
    for name, text in spec.scripts:
        (control / name).write_text(text)
        (control / name).chmod(0o755)
    if spec.conffiles:
        (control / "conffiles").write_text("".join(f"{c}\n" for c in spec.conffiles))
    (control / "control").write_text(control_text(spec, arch, _installed_size(tree)))
    return tree


def _build_deb(tree: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool(["dpkg-deb", "--root-owner-group", *DEB_COMPRESSION, "--build", str(tree), str(out)],
         f"dpkg-deb --build {out.name}", env={"SOURCE_DATE_EPOCH": "0"})
    return out


def _build_packages(specs: list[DebSpec], trees: Mapping[str, Path], work: Path,
                    root: Path, arch: str, glibc: Mapping[str, str], progress: Progress) -> None:
    jobs = []
    for spec in specs:
        tree = _stage(spec, trees, work / "stage", arch)
        check_binaries(spec, tree, dict(spec.fields).get("Depends", ""), glibc[spec.codename])
        pool = root / REPO_PATH / "dists" / spec.codename / "pool" / COMPONENT / arch
        jobs.append((tree, pool / f"{spec.filename}_{arch}.deb"))
    progress(f"building {len(jobs)} packages")
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool_exec:
        list(pool_exec.map(lambda job: _build_deb(*job), jobs))
    for tree, _ in jobs:
        shutil.rmtree(tree)


def _build_fixtures(debs: Mapping[str, Path], root: Path, arch: str, signer: _Signer) -> None:
    repo = root / FIXTURES_PATH
    pool = repo / "pool" / "main"
    pool.mkdir(parents=True)
    for name in FIXTURES_PACKAGES:
        src = debs[f"{FIXTURES_SUITE}/{name}"]
        shutil.copyfile(src, pool / src.name)
    _index_repo(repo, FIXTURES_SUITE, "main", arch, "pool/main",
                (FIXTURES_ORIGIN, FIXTURES_LABEL), signer)


def _build_tiny_image(trees: Mapping[str, Path], root: Path, arch: str) -> None:
    tree = trees[f"{TINY_SUITE}/busybox-static"]
    busybox = next((p for p in (tree / "bin/busybox", tree / "usr/bin/busybox") if p.is_file()),
                   None)
    if busybox is None:
        raise MirrorError("busybox-static has no busybox binary")
    layer = layer_tar(busybox.read_bytes())
    write_image(root / TINY_IMAGE, image_files(layer, TINY_IMAGE_REF, TINY_IMAGE_OUTPUT, arch))


# --- entry point ----------------------------------------------------------------------

def _load_indexes(debian_cache: Path, arch: str, archive: str | None,
                  refresh: bool) -> dict[str, SuiteIndex]:
    return {suite: debarchive.load_index(suite, arch, sorted(names), debian_cache,
                                         archive, refresh)
            for suite, names in index_names().items()}


def _fetch_all(indexes: Mapping[str, SuiteIndex], refs: Iterable[str],
               debian_cache: Path) -> dict[str, Path]:
    debs = {}
    for ref in sorted(set(refs)):
        suite, name = ref.split("/", 1)
        debs.update({f"{suite}/{n}": p for n, p in
                     debarchive.fetch_debs(indexes[suite], [name], debian_cache).items()})
    return debs


def _mirror_from_json(out: Path) -> Mirror:
    data = json.loads((out / "mirror.json").read_text())
    data["root"] = out / data["root"]
    data["tiny_image"] = Path(data["tiny_image"])
    return Mirror(**data)


def _build(out: Path, recipe: dict[str, object], specs: list[DebSpec],
           indexes: Mapping[str, SuiteIndex], debian_cache: Path, progress: Progress) -> Mirror:
    arch = str(recipe["arch"])
    sources = recipe["sources"]
    assert isinstance(sources, dict)
    progress(f"downloading {len(sources)} Debian packages (cached after the first run)")
    debs = _fetch_all(indexes, sources, debian_cache)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    signer: _Signer | None = None
    try:
        root, work = tmp / "root", tmp / "work"
        trees = _extract_sources(debs, work / "src")
        signer = _Signer(_gnupg_home(tmp))
        glibc = {c: upstream_version(indexes[c].get("libc6").version) for c in ENGINES}
        _build_packages(specs, trees, work, root, arch, glibc, progress)
        for codename in ENGINES:
            _index_repo(root / REPO_PATH, codename, COMPONENT, arch,
                        f"dists/{codename}/pool/{COMPONENT}/{arch}",
                        (RELEASE_ORIGIN, RELEASE_LABEL), signer)
        progress("writing debian-fixtures and the tiny image")
        _build_fixtures(debs, root, arch, signer)
        _build_tiny_image(trees, root, arch)
        signer.export(root / KEY_PATH)
        signer.close()
        if signer.home.parent != tmp:
            shutil.copytree(signer.home, tmp / "gnupg")
            shutil.rmtree(signer.home.parent)
        shutil.rmtree(work)
        _write_description(tmp, specs, recipe, signer.fingerprint, indexes)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True))
        tmp.chmod(0o755)
        if out.exists():  # a leftover without mirror.json (we hold the lock)
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        if signer is not None:
            signer.close()
            if signer.home.parent != tmp:
                shutil.rmtree(signer.home.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(out)
    return _mirror_from_json(out)


def _prune(keep: Path) -> None:
    """Remove mirrors of older recipes and leftovers of interrupted builds."""
    for old in [*keep.parent.glob("mirror-*"), *keep.parent.glob(".mirror-*")]:
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _write_description(tmp: Path, specs: list[DebSpec], recipe: Mapping[str, object],
                       fingerprint: str, indexes: Mapping[str, SuiteIndex]) -> None:
    packages: dict[str, dict[str, list[str]]] = {}
    for spec in specs:
        packages.setdefault(spec.codename, {}).setdefault(spec.name, []).append(spec.version)
    packages = {c: {n: sort_newest_first(v) for n, v in sorted(p.items())}
                for c, p in packages.items()}
    data = {
        "root": "root", "key_fingerprint": fingerprint,
        "versions": {c: p["docker-ce"] for c, p in packages.items()},
        "tiny_image": TINY_IMAGE, "tiny_image_ref": TINY_IMAGE_REF,
        "tiny_image_output": TINY_IMAGE_OUTPUT,
        "recipe_hash": recipe_hash(recipe), "arch": recipe["arch"], "packages": packages,
        "fixtures": {n: indexes[FIXTURES_SUITE].get(n).version for n in FIXTURES_PACKAGES},
        "repo_path": REPO_PATH, "key_path": KEY_PATH, "fixtures_path": FIXTURES_PATH,
        "fixtures_suite": FIXTURES_SUITE,
    }
    (tmp / "mirror.json").write_text(json.dumps(data, indent=1, sort_keys=True))


def build_mirror(cache_dir: Path, archive: str | None = None,
                 progress: Progress = print) -> Mirror:
    """The sandbox mirror for the current recipe, built on first use (then instant).

    ``archive`` is the Debian archive base URL; by default it is read from
    this machine's apt sources. Debian downloads are cached in
    ``cache_dir/debian``; building a new mirror removes those of older recipes.
    """
    cache_dir = Path(cache_dir).resolve()
    try:
        built = _build_mirror(cache_dir, archive, progress, refresh=False)
    except debarchive.PoolFileMissing as exc:
        progress(f"cached Debian index is stale ({exc}); refreshing it")
        built = _build_mirror(cache_dir, archive, progress, refresh=True)
    return _with_rpm_repo(built, cache_dir / "debian", archive, progress)


def _with_rpm_repo(built: Mirror, debian_cache: Path, archive: str | None, progress: Progress) -> Mirror:
    """Add the EL rehearsal RPM repositories, unless the tools to build them cannot be had."""
    from hostsetup.sandbox import rpmrepo

    if rpmrepo.ENGINE_SUITE not in built.packages:  # nothing to repack (e.g. a test's stand-in mirror)
        return built
    try:
        return replace(built, rpm=rpmrepo.ensure_rpm_repo(built, debian_cache, archive, progress))
    except rpmrepo.RpmToolsMissing as exc:
        progress(f"the mirror has no EL rehearsal RPM repositories: {exc}")
        return built


def _build_mirror(cache_dir: Path, archive: str | None, progress: Progress,
                  refresh: bool) -> Mirror:
    arch = debarchive.dpkg_arch()
    debian_cache = cache_dir / "debian"
    indexes = _load_indexes(debian_cache, arch, archive, refresh)
    recipe = make_recipe(indexes, arch)
    digest = recipe_hash(recipe)
    out = cache_dir / f"mirror-{digest[:12]}"
    if (out / "mirror.json").is_file():
        return _mirror_from_json(out)
    with _locked(cache_dir / ".mirror.lock"):
        if (out / "mirror.json").is_file():
            return _mirror_from_json(out)
        progress(f"building the docker-ce mirror {out.name} (recipe changed or first run)")
        return _build(out, recipe, plan_packages(indexes), indexes, debian_cache, progress)
