"""Versions, read and ordered in one place: package versions (dpkg/rpm order), their upstream release,
and the engine's version as dockerd and docker report it.

Package versions are compared the way the package managers compare them.

dpkg's algorithm (epoch, then upstream version, then revision; ``~`` sorts before anything, letters
before other signs, digit runs as numbers). rpm's ``rpmvercmp`` orders the versions Docker publishes
(``3:24.0.7-1.el9``, ``1.6.20-3.1.el9``) the same way, so one comparison serves both families.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cmp_to_key


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isdigit() or not ch:
        return 0
    return ord(ch) if ch.isalpha() else ord(ch) + 256


def _compare_fragment(a: str, b: str) -> int:
    """dpkg's verrevcmp on one part (upstream version or revision)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        na = re.match(r"\d*", a[i:]).group()  # type: ignore[union-attr]
        nb = re.match(r"\d*", b[j:]).group()  # type: ignore[union-attr]
        if int(na or 0) != int(nb or 0):
            return int(na or 0) - int(nb or 0)
        i, j = i + len(na), j + len(nb)
    return 0


def split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Compare two Debian versions like ``dpkg --compare-versions`` (<0, 0, >0)."""
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return ea - eb
    return _compare_fragment(ua, ub) or _compare_fragment(ra, rb)


def sort_newest_first(versions: Iterable[str]) -> list[str]:
    """Package versions, newest first."""
    return sorted(versions, key=newest_key, reverse=True)


newest_key = cmp_to_key(compare_versions)   # for max() / sorted() over package versions


def upstream_version(version: str) -> str:
    """The release a package version carries: epoch, revision and ``+``/``~`` suffixes dropped.

    ``5:20.10.24-1~debian.12~bookworm`` -> ``20.10.24``; ``3:24.0.7-1.el9`` -> ``24.0.7``;
    ``20.10.24+dfsg1-1+deb12u1+b6`` -> ``20.10.24``."""
    return re.split(r"[+~]", split_version(version)[1], maxsplit=1)[0]


def version_key(version: str) -> tuple[int, ...]:
    """The numbers of a version's release, for ordering releases (``24.0`` < ``24.0.7`` < ``25.0``)."""
    return tuple(int(part) for part in re.findall(r"\d+", upstream_version(version)))


_ENGINE = re.compile(r"(?:docker version\s+)?(?:\d+:)?v?(\d+)\.(\d+)(?:\.(\d+))?", re.IGNORECASE)


def engine_version(text: str) -> str:
    """``Docker version 26.1.5+dfsg1, build 411e817`` (or just the version) -> ``26.1.5+dfsg1``; "" if none."""
    match = re.search(r"\b(\d+\.\d+(?:\.\d+)?[^\s,]*)", text)
    return match.group(1) if match else ""


def parse_engine_version(text: str) -> tuple[int, ...] | None:
    """``Docker version 20.10.24+dfsg1, build 5d6db84``, ``26.1.5`` or ``5:20.10.24-1~debian.12~bookworm``
    -> ``(20, 10, 24)``; ``None`` when no version is found."""
    match = _ENGINE.match(text.strip())
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())
