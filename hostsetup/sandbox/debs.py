"""The apt side's packages: staging and building .deb files, checking their ELF binaries, signed apt indexes."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hostsetup.host.versions import compare_versions, sort_newest_first
from hostsetup.sandbox.buildtools import MirrorBuildError, run_tool
from hostsetup.sandbox.debversions import parse_relations
from hostsetup.sandbox.engine import Progress
from hostsetup.sandbox.layout import COMPONENT, REPO_PATH
from hostsetup.sandbox.signing import Signer

# These two feed the mirror's recipe hash (hostsetup.sandbox.mirror.make_recipe).
MAINTAINER = "hostsetup test sandbox <sandbox@hostsetup.invalid>"
DEB_COMPRESSION = ("-Zgzip", "-z6")

# Shared libraries whose packages may appear in Depends (soname -> package).
SONAME_PACKAGES = {
    "libc.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
    "libm.so.6": "libc6", "librt.so.1": "libc6", "libresolv.so.2": "libc6",
    "libsystemd.so.0": "libsystemd0", "libdevmapper.so.1.02.1": "libdevmapper1.02.1",
    "libseccomp.so.2": "libseccomp2",
}


# --- data model ----------------------------------------------------------------

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
                raise MirrorBuildError(f"{spec.name} {spec.version}: {payload.dest} needs {soname}, "
                                  f"which Depends ({depends}) does not cover")
        if glibc and compare_versions(glibc, target_glibc) > 0:
            raise MirrorBuildError(f"{spec.name} {spec.version}: {payload.dest} needs GLIBC_{glibc}, "
                              f"{spec.codename} has {target_glibc}")
        libc_min = declared.get("libc6", "")[2:].strip()
        if glibc and libc_min and compare_versions(glibc, libc_min) > 0:
            raise MirrorBuildError(f"{spec.name}: {payload.dest} needs GLIBC_{glibc} but Depends "
                              f"says libc6 (>= {libc_min})")


# --- build steps ---------------------------------------------------------------------

def _installed_size(tree: Path) -> int:
    total = 0
    for path in tree.rglob("*"):
        if "DEBIAN" in path.relative_to(tree).parts[:1]:
            continue
        total += 1 if path.is_dir() or path.is_symlink() else -(-path.stat().st_size // 1024)
    return total


def index_repo(repo: Path, suite: str, component: str, arch: str, pool: str,
               labels: tuple[str, str], signer: Signer) -> None:
    """Packages(.gz) for ``pool`` plus a signed Release/InRelease for ``suite``."""
    dist = repo / "dists" / suite
    bindir = dist / component / f"binary-{arch}"
    bindir.mkdir(parents=True, exist_ok=True)
    packages = run_tool(["apt-ftparchive", "packages", pool], "apt-ftparchive packages",
                        cwd=repo).stdout
    if not packages.strip():
        raise MirrorBuildError(f"apt-ftparchive found no packages in {repo / pool}")
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


def extract_debs(debs: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    """Unpack each ``.deb`` into ``dest/<its key>``; return the trees by key."""
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
                raise MirrorBuildError(f"{payload.source} has no {payload.member}")
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


def build_packages(specs: list[DebSpec], trees: Mapping[str, Path], work: Path,
                   root: Path, arch: str, glibc: Mapping[str, str], progress: Progress) -> None:
    """Stage, check (ELF) and build every package of ``specs`` into its codename's pool under ``root``."""
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

