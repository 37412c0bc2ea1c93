"""Debian version maths for the repacked packages: docker-ce's version forms and Depends relations (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hostsetup.host.versions import compare_versions, upstream_version
from hostsetup.sandbox import debarchive

DEBIAN_RELEASE = {"bookworm": "12", "trixie": "13"}


# --- Debian versions (pure) ----------------------------------------------------

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

