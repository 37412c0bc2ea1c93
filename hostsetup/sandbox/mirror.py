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

This module holds the recipe (what the mirror holds, and its hash) and runs the build; the jobs are
done by ``debs`` (.deb packages, their ELF checks, signed apt indexes), ``signing`` (the throwaway
key), ``imagetar`` (the tiny image), ``debversions`` (version maths) and ``rpmrepo`` (the yum side);
``layout`` has the records a built mirror is read back into.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from hostsetup.host.versions import sort_newest_first, upstream_version
from hostsetup.sandbox import debarchive, rpmrepo
from hostsetup.sandbox.buildtools import MirrorBuildError, locked, recipe_hash
from hostsetup.sandbox.debarchive import SuiteIndex
from hostsetup.sandbox.debs import (
    DEB_COMPRESSION,
    MAINTAINER,
    DebSpec,
    Payload,
    build_packages,
    extract_debs,
    index_repo,
)
from hostsetup.sandbox.debversions import (
    containerd_version,
    docker_version,
    plugin_version,
    runs_on,
    shlib_depends,
)
from hostsetup.sandbox.engine import Progress
from hostsetup.sandbox.imagetar import image_files, layer_tar, write_image
from hostsetup.sandbox.layout import COMPONENT, FIXTURES_PATH, FIXTURES_SUITE, KEY_PATH, REPO_PATH, Mirror
from hostsetup.sandbox.signing import KEY_ALGO, KEY_UID, Signer, gnupg_home

# --- recipe constants (all of them feed the recipe hash) -------------------

RECIPE_FORMAT = 1  # bump when the build code changes in a way the recipe does not show
# Also in the recipe: layout's apt paths, signing's KEY_UID/KEY_ALGO, debs' MAINTAINER/DEB_COMPRESSION.

# Debian's docker.io and the packages it needs beyond a base system (its lsb-base
# dependency is provided by bookworm's essential sysvinit-utils); libdevmapper1.02.1, which docker-ce
# needs from the distribution, for reference hosts (``hostsetup bundle --from``).
FIXTURES_PACKAGES = ("docker.io", "containerd", "runc", "tini", "libdevmapper1.02.1")
TINY_IMAGE = "images/tiny.tar"
TINY_IMAGE_REF = "hostsetup/tiny:1"
TINY_IMAGE_OUTPUT = "hello from hostsetup tiny image"
TINY_SUITE = "bookworm"
RELEASE_ORIGIN = "Docker"
RELEASE_LABEL = "Docker CE (hostsetup sandbox)"
FIXTURES_ORIGIN = "hostsetup"
FIXTURES_LABEL = "Debian packages for hostsetup tests"

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
        raise MirrorBuildError(f"{eng.suite}: docker.io {dockerio.version} and {cli.name} "
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


# --- build steps ---------------------------------------------------------------------

def _build_fixtures(debs: Mapping[str, Path], root: Path, arch: str, signer: Signer) -> None:
    repo = root / FIXTURES_PATH
    pool = repo / "pool" / "main"
    pool.mkdir(parents=True)
    for name in FIXTURES_PACKAGES:
        src = debs[f"{FIXTURES_SUITE}/{name}"]
        shutil.copyfile(src, pool / src.name)
    index_repo(repo, FIXTURES_SUITE, "main", arch, "pool/main",
               (FIXTURES_ORIGIN, FIXTURES_LABEL), signer)


def _build_tiny_image(trees: Mapping[str, Path], root: Path, arch: str) -> None:
    tree = trees[f"{TINY_SUITE}/busybox-static"]
    busybox = next((p for p in (tree / "bin/busybox", tree / "usr/bin/busybox") if p.is_file()),
                   None)
    if busybox is None:
        raise MirrorBuildError("busybox-static has no busybox binary")
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
    signer: Signer | None = None
    try:
        root, work = tmp / "root", tmp / "work"
        trees = extract_debs(debs, work / "src")
        signer = Signer(gnupg_home(tmp))
        glibc = {c: upstream_version(indexes[c].get("libc6").version) for c in ENGINES}
        build_packages(specs, trees, work, root, arch, glibc, progress)
        for codename in ENGINES:
            index_repo(root / REPO_PATH, codename, COMPONENT, arch,
                       f"dists/{codename}/pool/{COMPONENT}/{arch}",
                       (RELEASE_ORIGIN, RELEASE_LABEL), signer)
        progress("writing debian-fixtures and the tiny image")
        _build_fixtures(debs, root, arch, signer)
        _build_tiny_image(trees, root, arch)
        signer.export(signer.fingerprint, root / KEY_PATH)
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
    with locked(cache_dir / ".mirror.lock"):
        if (out / "mirror.json").is_file():
            return _mirror_from_json(out)
        progress(f"building the docker-ce mirror {out.name} (recipe changed or first run)")
        return _build(out, recipe, plan_packages(indexes), indexes, debian_cache, progress)
