"""EL rehearsal RPM repositories on the sandbox mirror, for the ``rocky9``/``centos7`` hosts.

Next to the apt tree, the mirror serves Docker's yum repository layout
(``linux/{centos,rhel}/{7,9}/<basearch>/stable/`` with ``createrepo_c``
repodata, and the signing key at ``linux/{centos,rhel}/gpg``), so that
hostsetup's unchanged RHEL-family code installs from it with real ``dnf`` and
``rpm``. Its RPMs are built with ``rpmbuild`` and signed with ``rpmsign`` using
the mirror's throwaway key. They carry exactly the files of the mirror's
bookworm ``.deb`` packages (Debian's real engine binaries and our units), under
the names and version forms of Docker's RPMs: ``docker-ce-3:20.10.24-1.el9``,
``docker-ce-cli-1:20.10.24-1.el9``, ``containerd.io-1.6.20-3.1.el9``, plugins
without an epoch. Their scriptlets are the real specs' with the systemd macros
expanded: ``%post`` runs ``systemctl preset`` (EL's preset leaves the units
off) and creates the ``docker`` group; nothing starts the service. Their
dependencies are the real specs' minus what no rehearsal host has
(``container-selinux``, ``libcgroup``, ``docker-ce-rootless-extras``), plus
what ``rpmbuild`` finds in the binaries; the hosts' ``el-rehearsal-base``
package declares what their Debian userland provides.

``el-fixtures/{7,9}/<basearch>/`` stands in for the distribution's own
repositories, signed with a second throwaway key
(``el-fixtures/RPM-GPG-KEY-el-fixtures``): packages named like the ones that
conflict with docker-ce (``docker``, ``docker-common``, ``podman``, ``runc``:
stubs, no engine inside) and the versionlock plugin
(``python3-dnf-plugin-versionlock`` on 9, ``yum-plugin-versionlock`` on 7),
which is Debian's real dnf plugin file.

The tree is built once per recipe hash into ``<mirror>/root/rpm-<hash12>/``
(a base URL of its own) and linked as ``root/linux/centos``,
``root/linux/rhel`` and ``root/el-fixtures``, so the mirror's own base URL
serves it; its description is ``<mirror>/rpm-<hash12>.json``. The apt side of
the mirror is not touched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from hostsetup.host.versions import upstream_version
from hostsetup.sandbox import debarchive
from hostsetup.sandbox.buildtools import MirrorBuildError, locked, recipe_hash, run_tool
from hostsetup.sandbox.debs import extract_debs
from hostsetup.sandbox.engine import Progress, SandboxError, ensure_tools
from hostsetup.sandbox.layout import COMPONENT, REPO_PATH, Mirror, RpmRepo
from hostsetup.sandbox.signing import Gpg

# --- recipe constants (all of them feed the recipe hash) -------------------------------

RPM_FORMAT = 1  # bump when the build code changes in a way the recipe does not show
ENGINE_SUITE = "bookworm"  # the apt codename whose packages are repacked: the hosts' userland
RELEASEVERS = {"7": "el7", "9": "el9"}
REPO_DISTROS = ("centos", "rhel")
KEY_PATH = "linux/centos/gpg"
FIXTURES_PATH = "el-fixtures"
FIXTURES_KEY_PATH = f"{FIXTURES_PATH}/RPM-GPG-KEY-el-fixtures"
FIXTURES_KEY_UID = "hostsetup EL rehearsal fixtures (throwaway test key) <el-fixtures@hostsetup.invalid>"
PLUGINS_DEB = "dnf-plugins-core"  # Debian package whose versionlock plugin el-fixtures carries
PLUGIN_FILE = "usr/lib/python3/dist-packages/dnf-plugins/versionlock.py"
PAYLOAD = "w6.gzdio"
PACKAGER = "hostsetup test sandbox <sandbox@hostsetup.invalid>"
BUILDHOST = "el-rehearsal.invalid"
RPM_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "ppc64el": "ppc64le", "s390x": "s390x"}
RPM_TOOLS = {"rpmbuild": "rpm", "rpmsign": "rpm", "createrepo_c": "createrepo-c", "dpkg-deb": "dpkg",
             "gpg": "gnupg"}


# --- scriptlets: the real specs' systemd macros, expanded as on EL 7/8 ------------------

def systemd_post(unit: str) -> str:
    """``%systemd_post``: apply the preset on first install (EL's preset: disabled)."""
    return (f"if [ $1 -eq 1 ] ; then\n"
            f"    systemctl --no-reload preset {unit} >/dev/null 2>&1 || :\nfi\n")


def systemd_preun(unit: str) -> str:
    """``%systemd_preun``: stop and disable on removal, not on upgrade."""
    return (f"if [ $1 -eq 0 ] ; then\n"
            f"    systemctl --no-reload disable --now {unit} >/dev/null 2>&1 || :\nfi\n")


def systemd_postun_with_restart(unit: str) -> str:
    """``%systemd_postun_with_restart``: restart a running unit after an upgrade."""
    return ("systemctl daemon-reload >/dev/null 2>&1 || :\n"
            f"if [ $1 -ge 1 ] ; then\n    systemctl try-restart {unit} >/dev/null 2>&1 || :\nfi\n")


GROUPADD = "if ! getent group docker > /dev/null; then\n    groupadd --system docker\nfi\n"


def service_scripts(unit: str, post_extra: str = "") -> tuple[tuple[str, str], ...]:
    return (("post", systemd_post(unit) + post_extra), ("preun", systemd_preun(unit)),
            ("postun", systemd_postun_with_restart(unit)))


# --- data model -----------------------------------------------------------------------

class RpmToolsMissing(MirrorBuildError):
    """The tools that build RPMs are missing and cannot be installed here."""


@dataclass(frozen=True)
class RpmFile:
    """One file of a package: a member of a ``.deb`` (``source``) or literal ``text``."""

    dest: str
    mode: int = 0o644
    source: str = ""          # "<deb key>/<member path>"
    text: str | None = None
    config: bool = False


@dataclass(frozen=True)
class RpmSpec:
    """A package to build with rpmbuild."""

    name: str
    version: str
    release: str               # with the dist tag, e.g. 1.el9
    summary: str
    description: str
    epoch: int | None = None
    noarch: bool = True
    license: str = "ASL 2.0"
    url: str = ""
    requires: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    obsoletes: tuple[str, ...] = ()
    files: tuple[RpmFile, ...] = ()
    payload: str = ""          # deb key whose every file the package carries
    scripts: tuple[tuple[str, str], ...] = ()
    auto_deps: bool = True     # rpmbuild adds what the files need (elfdeps, interpreters)
    repo: str = ""             # "stable" or FIXTURES_PATH
    releasever: str = ""

    @property
    def evr(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{epoch}{self.version}-{self.release}"


# --- versions (pure) -----------------------------------------------------------------------

def deb_key(name: str, version: str) -> str:
    """How the apt mirror names a package file (without ``_<arch>.deb``)."""
    return f"{name}_{version.split(':', 1)[-1]}"


def version_key(evr: str) -> tuple[int, ...]:
    """Sort key for an RPM version by its upstream numbers (``3:20.10.5-1.el9`` -> 20, 10, 5)."""
    return tuple(int(n) for n in re.findall(r"\d+", evr.split(":", 1)[-1].split("-", 1)[0]))


def newest_first(evrs: Iterable[str]) -> list[str]:
    return sorted(set(evrs), key=version_key, reverse=True)


# --- the plan (pure) ---------------------------------------------------------------------

def _describe(what: str, source: str) -> str:
    return (f"{what}\n\nEL rehearsal package of the hostsetup test sandbox: the files of the sandbox "
            f"mirror's {source} (Debian's own binaries), packaged the way Docker's RPM is.")


def engine_rpms(deb_version: str, releasever: str) -> list[RpmSpec]:
    """docker-ce (epoch 3) and docker-ce-cli (epoch 1) for one engine version."""
    version, release = upstream_version(deb_version), f"1.{RELEASEVERS[releasever]}"
    engine = RpmSpec(
        name="docker-ce", epoch=3, version=version, release=release, noarch=False, url="https://www.docker.com",
        repo="stable", releasever=releasever, summary="The open-source application container engine",
        description=_describe("dockerd, docker-proxy, docker-init and the docker units. Not required "
                              "here, unlike the real package: libcgroup, docker-ce-rootless-extras; "
                              "container-selinux only recommended (el-fixtures has a stand-in: a host with "
                              "the distribution's repository gets it, one without still installs).",
                              deb_key("docker-ce", deb_version)),
        requires=("/usr/sbin/groupadd", "docker-ce-cli", "libseccomp >= 2.3", "systemd", "iptables",
                  "containerd.io >= 1.4.1", "tar", "xz"),
        recommends=("container-selinux",),
        conflicts=("docker", "docker-io", "docker-engine-cs", "docker-ee"),
        obsoletes=("docker-ce-selinux", "docker-engine-selinux", "docker-engine"),
        payload=deb_key("docker-ce", deb_version),
        scripts=service_scripts("docker.service", GROUPADD))
    cli = RpmSpec(
        name="docker-ce-cli", epoch=1, version=version, release=release, noarch=False, url="https://www.docker.com",
        repo="stable", releasever=releasever, summary="The open-source application container engine",
        description=_describe("The docker command line client.", deb_key("docker-ce-cli", deb_version)),
        requires=("/bin/sh", "/usr/sbin/groupadd"),
        recommends=("docker-buildx-plugin", "docker-compose-plugin"),
        conflicts=("docker", "docker-io"), payload=deb_key("docker-ce-cli", deb_version),
        scripts=(("post", GROUPADD),))
    return [engine, cli]


def containerd_rpm(deb_version: str, releasever: str) -> RpmSpec:
    """containerd.io, which provides and obsoletes runc like the real one."""
    return RpmSpec(
        name="containerd.io", version=upstream_version(deb_version), release=f"3.1.{RELEASEVERS[releasever]}",
        noarch=False, url="https://containerd.io", summary="An industry-standard container runtime",
        description=_describe("containerd, its shims, ctr and runc.", deb_key("containerd.io", deb_version)),
        provides=("containerd", "runc"), obsoletes=("containerd", "runc"), conflicts=("containerd", "runc"),
        payload=deb_key("containerd.io", deb_version), scripts=service_scripts("containerd.service"),
        repo="stable", releasever=releasever)


def plugin_rpm(name: str, deb_version: str, releasever: str) -> RpmSpec:
    """docker-buildx-plugin or docker-compose-plugin (no epoch)."""
    tool = name.removesuffix("-plugin").removeprefix("docker-")
    return RpmSpec(
        name=name, version=upstream_version(deb_version), release=f"1.{RELEASEVERS[releasever]}", noarch=False,
        url=f"https://github.com/docker/{tool}", summary=f"Docker {tool.capitalize()} cli plugin.",
        description=_describe(f"The 'docker {tool}' subcommand.", deb_key(name, deb_version)),
        payload=deb_key(name, deb_version), repo="stable", releasever=releasever)


def _stub(name: str) -> str:
    return (f"#!/bin/sh\necho 'el-rehearsal fixture named like {name}: not the real program' >&2\n"
            "exit 1\n")


def _fixture(name: str, version: str, releasever: str, files: tuple[RpmFile, ...],
             requires: tuple[str, ...] = ()) -> RpmSpec:
    readme = RpmFile(f"/usr/share/doc/{name}/README.el-rehearsal", text=(
        f"This package is a fixture of the hostsetup EL rehearsal, named like the distribution's "
        f"{name} package so that hostsetup's removal of conflicting packages is exercised.\n"))
    return RpmSpec(
        name=name, version=version, release=f"0.fixture.{RELEASEVERS[releasever]}",
        summary=f"EL rehearsal fixture named like {name} (no real {name} inside)",
        description=f"A stand-in for the distribution's {name} package; its programs are stubs.",
        license="MIT", requires=requires, files=(*files, readme), repo=FIXTURES_PATH, releasever=releasever)


def fixture_rpms(releasever: str) -> list[RpmSpec]:
    """Packages named like those that conflict with docker-ce, with real-looking file overlaps, and the
    distribution package docker-ce recommends."""
    return [
        _fixture("docker", "1.13.1", releasever, (RpmFile("/usr/bin/dockerd-current", 0o755, text=_stub("docker")),),
                 ("docker-common",)),
        _fixture("docker-common", "1.13.1", releasever,
                 (RpmFile("/etc/sysconfig/docker", text="# el-rehearsal fixture\nOPTIONS=''\n", config=True),)),
        _fixture("podman", "4.9.4", releasever, (RpmFile("/usr/bin/podman", 0o755, text=_stub("podman")),),
                 ("runc",)),
        _fixture("runc", "1.1.12", releasever, (RpmFile("/usr/bin/runc", 0o755, text=_stub("runc")),)),
        # What docker-ce wants from the distribution's AppStream (a reference host fetches it: bundle --from).
        _fixture("container-selinux", "2.229.0", releasever,
                 (RpmFile("/usr/share/container-selinux/README.stub", text="no SELinux policy inside\n"),)),
    ]


def versionlock_rpm(plugins_version: str, releasever: str) -> RpmSpec:
    """The versionlock plugin as EL ships it apart from dnf: Debian's real plugin file."""
    requires: tuple[str, ...] = ()
    if releasever == "7":
        name, conf_dir = "yum-plugin-versionlock", "/etc/yum/pluginconf.d"
    else:
        name, conf_dir, requires = "python3-dnf-plugin-versionlock", "/etc/dnf/plugins", ("dnf",)
    source = deb_key(PLUGINS_DEB, plugins_version)
    conf = f"[main]\nenabled = 1\nlocklist = {conf_dir}/versionlock.list\n"
    return RpmSpec(
        name=name, version=upstream_version(plugins_version), release=f"1.{RELEASEVERS[releasever]}",
        summary="Version Lock Plugin (Debian's dnf versionlock plugin, for the EL rehearsal)",
        description=(f"The versionlock plugin file of Debian's {PLUGINS_DEB} {plugins_version}, with its "
                     f"configuration where {name} keeps it."),
        license="GPL-2.0-or-later", requires=requires, repo=FIXTURES_PATH, releasever=releasever,
        files=(RpmFile(f"/{PLUGIN_FILE}", source=f"{source}/{PLUGIN_FILE}"),
               RpmFile(f"{conf_dir}/versionlock.conf", text=conf, config=True),
               RpmFile(f"{conf_dir}/versionlock.list", text="", config=True)))


def plan_rpms(debs: Mapping[str, list[str]], plugins_version: str) -> list[RpmSpec]:
    """Every package for every releasever, from the apt mirror's bookworm packages (name -> versions)."""
    specs: list[RpmSpec] = []
    for releasever in RELEASEVERS:
        for version in debs["docker-ce"]:
            if version not in debs["docker-ce-cli"]:
                raise MirrorBuildError(f"the apt mirror has docker-ce {version} but no docker-ce-cli of it")
            specs += engine_rpms(version, releasever)
        specs += [containerd_rpm(v, releasever) for v in debs["containerd.io"]]
        specs += [plugin_rpm(n, v, releasever) for n in ("docker-buildx-plugin", "docker-compose-plugin")
                  for v in debs.get(n, [])]
        specs += [*fixture_rpms(releasever), versionlock_rpm(plugins_version, releasever)]
    return specs


def make_recipe(mirror: Mirror, specs: list[RpmSpec], plugins: debarchive.BinaryPackage) -> dict[str, object]:
    """Everything the RPM tree is made from, as plain JSON-able data."""
    return {
        "format": RPM_FORMAT, "mirror": mirror.recipe_hash, "arch": mirror.arch,
        "plugins_deb": {"version": plugins.version, "sha256": plugins.sha256},
        "specs": [asdict(s) for s in specs], "payload": PAYLOAD, "packager": PACKAGER,
        "buildhost": BUILDHOST, "layout": {"distros": list(REPO_DISTROS), "key": KEY_PATH,
                                           "fixtures": FIXTURES_PATH, "fixtures_key": FIXTURES_KEY_PATH},
        "fixtures_key_uid": FIXTURES_KEY_UID,
    }


# --- spec files (pure) ------------------------------------------------------------------------

def _escape(text: str) -> str:
    return text.replace("%", "%%")


def spec_text(spec: RpmSpec, sources: Mapping[str, str], files: Iterable[RpmFile] = ()) -> str:
    """The .spec for ``spec``; ``sources`` maps each file's dest to the path holding its content."""
    every = [*files, *spec.files]
    lines = ["%global debug_package %{nil}",
             "# Keep the binaries exactly as Debian built them: no strip, no build-id links.",
             "%global __os_install_post %{nil}", "%global _build_id_links none",
             f"%global _binary_payload {PAYLOAD}",
             f"Name: {spec.name}"]
    if spec.epoch is not None:
        lines.append(f"Epoch: {spec.epoch}")
    lines += [f"Version: {spec.version}", f"Release: {spec.release}", f"Summary: {_escape(spec.summary)}",
              f"License: {spec.license}", f"Packager: {PACKAGER}"]
    lines += [f"URL: {spec.url}"] if spec.url else []
    lines += ["BuildArch: noarch"] if spec.noarch else []
    lines += [] if spec.auto_deps else ["AutoReqProv: no"]
    for tag, values in (("Requires", spec.requires), ("Recommends", spec.recommends),
                        ("Provides", spec.provides), ("Conflicts", spec.conflicts),
                        ("Obsoletes", spec.obsoletes)):
        lines += [f"{tag}: {v}" for v in values]
    lines += ["", "%description", _escape(spec.description), "", "%install"]
    lines += [f"install -D -m {f.mode:04o} {shlex.quote(sources[f.dest])} %{{buildroot}}{shlex.quote(f.dest)}"
              for f in every]
    lines += ["", "%files"]
    lines += [f"{'%config(noreplace) ' if f.config else ''}%attr({f.mode:04o},root,root) {f.dest}"
              for f in every]
    for name, body in spec.scripts:
        lines += ["", f"%{name}", body.rstrip("\n")]
    return "\n".join(lines) + "\n"


# --- helpers ------------------------------------------------------------------------------------

def ensure_rpm_tools(progress: Progress = print) -> None:
    """Install Debian's rpm and createrepo-c when missing (as root on Debian), or refuse."""
    try:
        ensure_tools(progress, RPM_TOOLS, "the EL rehearsal RPM repository")
    except SandboxError as exc:
        raise RpmToolsMissing(str(exc)) from None


class _Keys(Gpg):
    """A short-lived GNUPGHOME with the mirror's key and a new el-fixtures key."""

    def __init__(self, mirror_gnupg: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hs-elgpg-"))
        super().__init__(self.tmp / "gnupg")
        shutil.copytree(mirror_gnupg, self.home, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*"))
        self.home.chmod(0o700)
        self.mirror_fpr = self.secret_fingerprint()
        self.gpg("--quick-gen-key", FIXTURES_KEY_UID, "ed25519", "sign", "never")
        self.fixtures_fpr = self.secret_fingerprint(FIXTURES_KEY_UID)

    def sign(self, rpms: list[Path], fingerprint: str) -> None:
        if not rpms:
            return
        gpg = shutil.which("gpg") or "gpg"
        run_tool(["rpmsign", "--addsign", "--define", f"_gpg_name {fingerprint}", "--define", f"__gpg {gpg}",
              "--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
              *map(str, rpms)], "rpmsign", env={"GNUPGHOME": str(self.home)})

    def close(self) -> None:
        self.stop_agent()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- build steps ------------------------------------------------------------------------------------

def payload_files(tree: Path, key: str) -> list[RpmFile]:
    """Every regular file of an unpacked deb; ``/lib/...`` goes to ``/usr/lib/...`` as on EL."""
    files = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()):
        member = path.relative_to(tree).as_posix()
        dest = "/" + (f"usr/{member}" if member.startswith("lib/") else member)
        files.append(RpmFile(dest, path.stat().st_mode & 0o7777, source=f"{key}/{member}",
                             config=member.startswith("etc/")))
    return files


def _write_spec(spec: RpmSpec, trees: Mapping[str, Path], work: Path) -> Path:
    """Write the spec (and any literal file contents) under ``work``; return the spec path."""
    work.mkdir(parents=True)
    extra = payload_files(trees[spec.payload], spec.payload) if spec.payload else []
    sources: dict[str, str] = {}
    for index, f in enumerate([*extra, *spec.files]):
        if f.text is not None:
            content = work / "content" / str(index)
            content.parent.mkdir(exist_ok=True)
            content.write_text(f.text)
            sources[f.dest] = str(content)
        else:
            key, _, member = f.source.partition("/")
            sources[f.dest] = str(trees[key] / member)
    path = work / f"{spec.name}.spec"
    path.write_text(spec_text(spec, sources, extra))
    return path


def _rpmbuild(spec_file: Path, arch: str) -> Path:
    top = spec_file.parent / "top"
    run_tool(["rpmbuild", "-bb", "--quiet", "--target", arch, "--define", f"_topdir {top}",
          "--define", f"_buildhost {BUILDHOST}", "--define", "use_source_date_epoch_as_buildtime 1",
          "--define", "clamp_mtime_to_source_date_epoch 1", str(spec_file)],
         f"rpmbuild {spec_file.stem}", env={"SOURCE_DATE_EPOCH": "1700000000"})
    (built,) = list((top / "RPMS").rglob("*.rpm"))
    return built


def _build_rpms(specs: list[RpmSpec], trees: Mapping[str, Path], work: Path, arch: str,
                progress: Progress) -> list[tuple[RpmSpec, Path]]:
    spec_files = [_write_spec(spec, trees, work / f"{i:02d}-{spec.name}") for i, spec in enumerate(specs)]
    progress(f"building {len(specs)} RPMs with rpmbuild")
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        built = list(pool.map(lambda path: _rpmbuild(path, arch), spec_files))
    return list(zip(specs, built, strict=True))


def _repo_dirs(spec: RpmSpec, tree: Path, arch: str) -> list[Path]:
    if spec.repo == FIXTURES_PATH:
        return [tree / FIXTURES_PATH / spec.releasever / arch]
    return [tree / "linux" / d / spec.releasever / arch / "stable" for d in REPO_DISTROS]


def _place(built: list[tuple[RpmSpec, Path]], tree: Path, arch: str) -> set[Path]:
    """Put each RPM into its repositories (hard links); return the repository directories."""
    repos = set()
    for spec, rpm in built:
        for repo in _repo_dirs(spec, tree, arch):
            (repo / "Packages").mkdir(parents=True, exist_ok=True)
            target = repo / "Packages" / rpm.name
            if not target.exists():
                os.link(rpm, target)
            repos.add(repo)
    return repos


def _describe_repo(tree_name: str, digest: str, arch: str, keys: _Keys,
                   built: list[tuple[RpmSpec, Path]]) -> RpmRepo:
    packages: dict[str, dict[str, list[str]]] = {}
    fixtures: dict[str, dict[str, str]] = {}
    for spec, _ in built:
        if spec.repo == FIXTURES_PATH:
            fixtures.setdefault(spec.releasever, {})[spec.name] = spec.evr
        else:
            packages.setdefault(spec.releasever, {}).setdefault(spec.name, []).append(spec.evr)
    packages = {rv: {n: newest_first(v) for n, v in sorted(p.items())} for rv, p in sorted(packages.items())}
    return RpmRepo(tree=tree_name, recipe_hash=digest, arch=arch, key_fingerprint=keys.mirror_fpr,
                   fixtures_key_fingerprint=keys.fixtures_fpr,
                   versions={rv: p["docker-ce"] for rv, p in packages.items()},
                   packages=packages, fixtures=fixtures, key_path=KEY_PATH, fixtures_path=FIXTURES_PATH,
                   fixtures_key_path=FIXTURES_KEY_PATH)


def _build_tree(mirror: Mirror, specs: list[RpmSpec], debs: Mapping[str, Path], digest: str,
                progress: Progress) -> RpmRepo:
    arch = RPM_ARCH.get(mirror.arch, mirror.arch)
    tree_name = f"rpm-{digest[:12]}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{tree_name}.", dir=mirror.root))
    work = Path(tempfile.mkdtemp(prefix=".rpm-work.", dir=mirror.root.parent))
    keys = _Keys(mirror.root.parent / "gnupg")
    try:
        trees = extract_debs(debs, work / "src")
        built = _build_rpms(specs, trees, work / "specs", arch, progress)
        for name in (FIXTURES_PATH, "stable"):
            keys.sign([rpm for spec, rpm in built if spec.repo == name],
                      keys.fixtures_fpr if name == FIXTURES_PATH else keys.mirror_fpr)
        progress("writing the RPM repositories (createrepo_c)")
        for repo in sorted(_place(built, tmp, arch)):
            run_tool(["createrepo_c", "--quiet", "--no-database", str(repo)], f"createrepo_c {repo}")
        for distro in REPO_DISTROS:
            keys.export(keys.mirror_fpr, tmp / "linux" / distro / "gpg")
        keys.export(keys.fixtures_fpr, tmp / FIXTURES_KEY_PATH)
        repo_info = _describe_repo(tree_name, digest, arch, keys, built)
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.replace(tmp, mirror.root / tree_name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        keys.close()
        shutil.rmtree(work, ignore_errors=True)
    (mirror.root.parent / f"{tree_name}.json").write_text(json.dumps(asdict(repo_info), indent=1, sort_keys=True))
    return repo_info


def _link(root: Path, tree_name: str) -> None:
    """Serve the tree under the mirror's own base URL: root/linux/{centos,rhel}, root/el-fixtures."""
    links = {root / "linux" / d: Path("..") / tree_name / "linux" / d for d in REPO_DISTROS}
    links[root / FIXTURES_PATH] = Path(tree_name) / FIXTURES_PATH
    for link, target in links.items():
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.exists() and not link.is_symlink():
            raise MirrorBuildError(f"{link} exists and is not the EL rehearsal tree's link")
        tmp = link.with_name(f".{link.name}.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)


def _prune(root: Path, keep: str) -> None:
    """Remove RPM trees of older recipes and leftovers of interrupted builds."""
    for old in [*root.glob("rpm-*"), *root.glob(".rpm-*"), *root.parent.glob(".rpm-work.*")]:
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    for old in root.parent.glob("rpm-*.json"):
        if old.stem != keep:
            old.unlink(missing_ok=True)


# --- entry point ---------------------------------------------------------------------------------------

def _plugins_deb(mirror: Mirror, debian_cache: Path, archive: str | None,
                 refresh: bool = False) -> tuple[debarchive.SuiteIndex, debarchive.BinaryPackage]:
    index = debarchive.load_index(ENGINE_SUITE, mirror.arch, [PLUGINS_DEB], debian_cache, archive, refresh)
    return index, index.get(PLUGINS_DEB)


def _fetch_debs(mirror: Mirror, index: debarchive.SuiteIndex, debian_cache: Path,
                specs: list[RpmSpec]) -> dict[str, Path]:
    """The apt mirror's own package files, and Debian's dnf-plugins-core (verified download)."""
    pool = mirror.root / REPO_PATH / "dists" / ENGINE_SUITE / "pool" / COMPONENT / mirror.arch
    debs = {s.payload: pool / f"{s.payload}_{mirror.arch}.deb" for s in specs if s.payload}
    missing = [str(p) for p in debs.values() if not p.is_file()]
    if missing:
        raise MirrorBuildError(f"the apt mirror lacks {', '.join(missing)}")
    plugins = index.get(PLUGINS_DEB)
    debs[deb_key(PLUGINS_DEB, plugins.version)] = debarchive.fetch_debs(index, [PLUGINS_DEB],
                                                                        debian_cache)[PLUGINS_DEB]
    return debs


def ensure_rpm_repo(mirror: Mirror, debian_cache: Path, archive: str | None = None,
                    progress: Progress = print) -> RpmRepo:
    """The EL rehearsal repositories inside ``mirror``, built on first use (then instant)."""
    try:
        index, plugins = _plugins_deb(mirror, debian_cache, archive)
    except debarchive.PoolFileMissing:
        index, plugins = _plugins_deb(mirror, debian_cache, archive, refresh=True)
    specs = plan_rpms(mirror.packages[ENGINE_SUITE], plugins.version)
    digest = recipe_hash(make_recipe(mirror, specs, plugins))
    tree_name = f"rpm-{digest[:12]}"
    description = mirror.root.parent / f"{tree_name}.json"
    with locked(mirror.root.parent / ".rpm.lock"):
        if not description.is_file():
            ensure_rpm_tools(progress)
            progress(f"building the EL rehearsal RPM repositories {tree_name} (recipe changed or first run)")
            try:
                debs = _fetch_debs(mirror, index, debian_cache, specs)
            except debarchive.PoolFileMissing:
                index, _ = _plugins_deb(mirror, debian_cache, archive, refresh=True)
                debs = _fetch_debs(mirror, index, debian_cache, specs)
            _build_tree(mirror, specs, debs, digest, progress)
            _prune(mirror.root, tree_name)
        _link(mirror.root, tree_name)
    return RpmRepo(**json.loads(description.read_text()))
