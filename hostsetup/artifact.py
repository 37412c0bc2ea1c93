"""The hostsetup artifact: hostsetup and every package it imports, installed for one Python version and
machine type into one directory tree, as a reproducible tar.gz. A server unpacks it and runs
``PYTHONPATH=<dir>/site python3 -m hostsetup ... --local``, with nothing else from the network (cloud-init's
first boot, a packer build, a server with no pip). Not a zipapp: cryptography, bcrypt and PyNaCl (under
Fabric's paramiko) are compiled modules, which Python cannot import from inside a zip file.

Layout: ``hostsetup-artifact.json`` (what it holds: hostsetup's version, the Python version and platform it
was built for, each package's version) and ``site/`` (the import tree)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import hostsetup
from hostsetup import __version__
from hostsetup.errors import HostsetupError
from hostsetup.render import templates_directory

MANIFEST = "hostsetup-artifact.json"
SITE = "site"
# Python versions hostsetup supports (pyproject's requires-python) and the machine types it is built for.
PYTHONS = ("3.11", "3.12", "3.13")
ARCHES = ("x86_64", "aarch64")
# glibc of the oldest supported server: EL 9 ships 2.34 (Debian 12: 2.36, Ubuntu 22.04: 2.35).
GLIBC = (2, 34)


class ArtifactError(HostsetupError):
    """The artifact cannot be built or read."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int
    python: str
    arch: str
    packages: dict[str, str]


def check_python(value: str) -> str:
    text = value.strip()
    if text not in PYTHONS:
        raise ArtifactError(f"--python: {value!r}: choose one of {', '.join(PYTHONS)} (the server's python3 -V; "
                            "hostsetup needs 3.11 or newer)")
    return text


def check_arch(value: str) -> str:
    text = {"amd64": "x86_64", "arm64": "aarch64"}.get(value.strip(), value.strip())
    if text not in ARCHES:
        raise ArtifactError(f"--arch: {value!r}: choose x86_64 (amd64) or aarch64 (arm64)")
    return text


def platform_tags(arch: str) -> list[str]:
    """pip's --platform tags for a server of this machine type with glibc ``GLIBC`` or newer."""
    major, newest = GLIBC
    return [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 16, -1)] + [f"manylinux2014_{arch}"]


def requirements() -> list[str]:
    """hostsetup's own dependencies, pinned to the versions this machine runs (the tested combination)."""
    pinned = []
    for requirement in metadata.requires("hostsetup") or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(requirement.split(";")[0].strip())
    return pinned


def constraints() -> str:
    """Every package installed here, pinned: the dependencies' own dependencies resolve to what runs here."""
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "hostsetup":
            lines.add(f"{name}=={dist.version}")
    return "\n".join(sorted(lines)) + "\n"


def copy_package(site: Path) -> None:
    """hostsetup's own modules and templates into ``site`` (from a wheel install or a checkout alike)."""
    package = Path(hostsetup.__file__).resolve().parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(package, site / "hostsetup", ignore=ignore)
    templates = templates_directory()
    if templates.resolve() != (package / "templates").resolve():
        shutil.copytree(templates, site / "hostsetup" / "templates", ignore=ignore, dirs_exist_ok=True)


def _tar_bytes(tree: Path) -> bytes:
    """A tar of ``tree`` that depends only on its contents: sorted, owner root, one fixed time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            if path.is_symlink():
                raise ArtifactError(f"the artifact tree holds a link: {path.relative_to(tree)}")
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tree)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() or info.mode & 0o111 else 0o644
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def build_artifact(out: Path, python: str, arch: str, progress: Callable[[str], None] = print) -> Artifact:
    """Build the artifact at ``out`` with pip (from the package index pip is configured for)."""
    python, arch = check_python(python), check_arch(arch)
    with tempfile.TemporaryDirectory(prefix="hostsetup-artifact-") as tmp:
        work = Path(tmp)
        site = work / SITE
        site.mkdir()
        pins = requirements()
        (work / "constraints.txt").write_text(constraints())
        progress(f"downloading {len(pins)} packages and their dependencies for Python {python} on {arch} with pip")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(site), "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
               *(arg for tag in platform_tags(arch) for arg in ("--platform", tag)),
               "-c", str(work / "constraints.txt"), *pins]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            tail = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
            raise ArtifactError(f"pip could not get hostsetup's packages for Python {python} on {arch}: {tail}")
        for stale in site.glob("bin"):
            shutil.rmtree(stale)
        packages = {}
        for info in sorted(site.glob("*.dist-info")):
            name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
            packages[name] = version
        copy_package(site)
        manifest = {"format": 1, "hostsetup": __version__, "python": python, "arch": arch,
                    "glibc": ".".join(map(str, GLIBC)), "packages": packages}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (work / "constraints.txt").unlink()
        data = gzip.compress(_tar_bytes(work), compresslevel=9, mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(data)
    partial.replace(out)
    return Artifact(out, hashlib.sha256(data).hexdigest(), len(data), python, arch, packages)
