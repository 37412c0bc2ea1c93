"""Verified downloads from the machine's own Debian archive.

The archive base URL is read from the local apt sources (never hard-coded).
Each suite's ``InRelease`` is checked with ``gpgv`` against
``debian-archive-keyring``; the ``Packages.xz`` index and every ``.deb`` are
then checked against the SHA256 sums that the signed file vouches for.
Everything is cached on disk, so repeated calls make no network traffic.

Keyring note: bookworm's ``debian-archive-keyring`` (2023.3+deb12u2 and later)
carries the bullseye, bookworm and trixie archive keys, which is all that is
needed for those three suites. An older keyring fails loudly in
:func:`verify_inrelease` with a hint to upgrade the package.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from hostsetup.errors import HostsetupError
from hostsetup.repoindex import SignatureError, Stanza, parse_deb822, release_sha256, sha256_file, verify_clearsigned

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")
HTTP_TIMEOUT = 120.0
_CODENAME = re.compile(r"^[a-z]+$")  # "bookworm", not "bookworm-updates"/"-security"
_SCHEMES = ("http://", "https://", "file:/")



class ArchiveError(HostsetupError):
    """The Debian archive could not be found, reached or trusted."""


class PoolFileMissing(ArchiveError):
    """A file named by a (cached) index is gone from the archive: the index is stale."""


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry of the apt sources."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    types: tuple[str, ...] = ("deb",)
    enabled: bool = True


@dataclass(frozen=True)
class BinaryPackage:
    """A binary package as described by a signed Packages index."""

    name: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int
    fields: Mapping[str, str]

    @property
    def depends(self) -> str:
        return self.fields.get("Depends", "")


# --- apt sources --------------------------------------------------------------

def parse_sources_deb822(text: str) -> list[AptSource]:
    """Sources from a ``*.sources`` file (deb822 format)."""
    result = []
    for st in parse_deb822(text):
        if "URIs" not in st or "Suites" not in st:
            continue
        result.append(AptSource(
            uris=tuple(st["URIs"].split()),
            suites=tuple(st["Suites"].split()),
            components=tuple(st.get("Components", "").split()),
            types=tuple(st.get("Types", "deb").split()),
            enabled=st.get("Enabled", "yes").strip().lower() not in ("no", "false", "0"),
        ))
    return result


def parse_sources_list(text: str) -> list[AptSource]:
    """Sources from a one-line-format ``sources.list``."""
    result = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop "[arch=... signed-by=...]"
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        result.append(AptSource(uris=(words[1],), suites=(words[2],),
                                components=tuple(words[3:]), types=(words[0],)))
    return result


def pick_archive(sources: Iterable[AptSource]) -> str | None:
    """The base URL of the first enabled ``deb`` source for a plain codename with ``main``."""
    for src in sources:
        if not src.enabled or "deb" not in src.types or "main" not in src.components:
            continue
        if not any(_CODENAME.match(suite) for suite in src.suites):
            continue
        for uri in src.uris:
            if uri.startswith(_SCHEMES):
                return uri.rstrip("/")
    return None


def read_apt_sources(sources_dir: Path = SOURCES_DIR,
                     sources_list: Path = SOURCES_LIST) -> list[AptSource]:
    """All sources in apt's order of preference for this tool: deb822 first."""
    found: list[AptSource] = []
    for path in sorted(sources_dir.glob("*.sources")):
        found += parse_sources_deb822(_read(path))
    if sources_list.is_file():
        found += parse_sources_list(_read(sources_list))
    for path in sorted(sources_dir.glob("*.list")):
        found += parse_sources_list(_read(path))
    return found


def archive_url(sources_dir: Path = SOURCES_DIR, sources_list: Path = SOURCES_LIST) -> str:
    """The Debian archive base URL configured in this machine's apt sources."""
    url = pick_archive(read_apt_sources(sources_dir, sources_list))
    if url is None:
        raise ArchiveError(
            f"no Debian archive found in {sources_dir}/*.sources or {sources_list}: "
            "need a 'deb' source for a release codename (e.g. bookworm) with component main")
    return url


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# --- Release / Packages parsing (pure) --------------------------------------

def parse_packages(text: str, names: Iterable[str] | None = None) -> dict[str, BinaryPackage]:
    """Parse a Packages index, keeping only ``names`` (all when None).

    When a name appears twice, the first stanza wins (Debian suites carry one
    version per package and architecture).
    """
    wanted = None if names is None else set(names)
    result: dict[str, BinaryPackage] = {}
    for chunk in text.split("\n\n"):
        head = chunk.lstrip("\n")
        first = head.split("\n", 1)[0]
        if not first.startswith("Package:"):
            continue
        name = first.partition(":")[2].strip()
        if (wanted is not None and name not in wanted) or name in result:
            continue
        stanzas = parse_deb822(head)
        if stanzas:
            result[name] = _binary_package(stanzas[0])
    return result


def _binary_package(st: Stanza) -> BinaryPackage:
    try:
        return BinaryPackage(name=st["Package"], version=st["Version"],
                             arch=st.get("Architecture", ""), filename=st["Filename"],
                             sha256=st["SHA256"].lower(), size=int(st["Size"]), fields=st)
    except (KeyError, ValueError) as exc:
        raise ArchiveError(f"malformed Packages stanza for {st.get('Package', '?')}: "
                           f"missing or bad {exc}") from exc


def check_release(release_text: str, suite: str, now: datetime | None = None) -> None:
    """Fail unless the Release file is for ``suite`` and has not expired."""
    fields = parse_deb822(release_text)
    head = fields[0] if fields else {}
    if suite not in (head.get("Codename"), head.get("Suite")):
        raise ArchiveError(f"InRelease for {suite} is for "
                           f"{head.get('Codename') or head.get('Suite') or 'an unknown suite'}")
    until = head.get("Valid-Until")
    if until and parsedate_to_datetime(until) < (now or datetime.now(UTC)):
        raise ArchiveError(f"InRelease for {suite} expired on {until}")


# --- signature check --------------------------------------------------------

def verify_inrelease(path: Path, keyring: Path = DEBIAN_KEYRING) -> str:
    """Check an InRelease file with gpgv and return the text the signature covers."""
    if not keyring.is_file():
        raise ArchiveError(f"{keyring} is missing: apt-get install debian-archive-keyring")
    try:
        return verify_clearsigned(path, keyring)
    except SignatureError as exc:
        raise ArchiveError(f"{exc}; a newer debian-archive-keyring may be needed") from None


# --- downloads ---------------------------------------------------------------

def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None) -> Path:
    """Fetch ``url`` into ``dest`` atomically, checking size and SHA256 when given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
        _check_file(tmp, url, sha256, size)
        tmp.replace(dest)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise PoolFileMissing(f"{url}: HTTP {exc.code}") from exc
        raise ArchiveError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ArchiveError(f"cannot download {url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _check_file(path: Path, what: str, sha256: str | None, size: int | None) -> None:
    if size is not None and path.stat().st_size != size:
        raise ArchiveError(f"{what}: size {path.stat().st_size}, index says {size}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ArchiveError(f"{what}: SHA256 mismatch with the signed index")


# --- suites ------------------------------------------------------------------

@dataclass(frozen=True)
class SuiteIndex:
    """The verified Packages index of one suite, limited to the names asked for."""

    suite: str
    arch: str
    archive: str
    packages: dict[str, BinaryPackage]

    def get(self, name: str) -> BinaryPackage:
        try:
            return self.packages[name]
        except KeyError:
            raise ArchiveError(f"{self.suite}/{self.arch} has no binary package {name!r}") from None


def load_index(suite: str, arch: str, names: Iterable[str], cache_dir: Path,
               archive: str | None = None, refresh: bool = False,
               keyring: Path = DEBIAN_KEYRING) -> SuiteIndex:
    """Verified index entries for ``names`` in ``suite``/``arch`` (cached on disk).

    ``refresh`` re-downloads InRelease; otherwise a cached copy is used after
    its signature is checked again (a cached copy that no longer verifies is
    downloaded afresh).
    """
    base = archive.rstrip("/") if archive else archive_url()
    wanted = sorted(set(names))
    sdir = cache_dir / "dists" / suite
    inrelease = sdir / "InRelease"
    fresh = refresh or not inrelease.is_file()
    if fresh:
        download(f"{base}/dists/{suite}/InRelease", inrelease)
    try:
        release = verify_inrelease(inrelease, keyring)
    except ArchiveError:
        if fresh:
            raise
        fresh = True
        download(f"{base}/dists/{suite}/InRelease", inrelease)
        release = verify_inrelease(inrelease, keyring)
    if fresh:
        check_release(release, suite)
    member = f"main/binary-{arch}/Packages.xz"
    try:
        sha, size = release_sha256(release)[member]
    except KeyError:
        raise ArchiveError(f"InRelease of {suite} does not list {member}") from None
    key = hashlib.sha256(f"{sha} {' '.join(wanted)}".encode()).hexdigest()[:16]
    selection = sdir / f"select-{arch}-{key}.json"
    if selection.is_file():
        packages = {n: _binary_package(st) for n, st in json.loads(selection.read_text()).items()}
    else:
        packages = _select(base, suite, arch, member, (sha, size), sdir, wanted)
        _write_json(selection, {n: dict(p.fields) for n, p in packages.items()})
    return SuiteIndex(suite=suite, arch=arch, archive=base, packages=packages)


def _select(base: str, suite: str, arch: str, member: str, checksum: tuple[str, int],
            sdir: Path, wanted: list[str]) -> dict[str, BinaryPackage]:
    sha, size = checksum
    xz = sdir / f"Packages-{arch}-{sha[:16]}.xz"
    if not xz.is_file():
        for old in [*sdir.glob(f"Packages-{arch}-*.xz"), *sdir.glob(f"select-{arch}-*.json")]:
            old.unlink()
        download(f"{base}/dists/{suite}/{member}", xz, sha256=sha, size=size)
    text = lzma.decompress(xz.read_bytes()).decode("utf-8", errors="replace")
    return parse_packages(text, wanted)


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def fetch_debs(index: SuiteIndex, names: Iterable[str], cache_dir: Path) -> dict[str, Path]:
    """Download ``names`` from ``index`` into ``cache_dir/pool/...``, SHA256-checked.

    A cached file is trusted when its size matches: it was only moved into
    place after its SHA256 matched the signed index.
    """
    paths: dict[str, Path] = {}
    for name in names:
        pkg = index.get(name)
        dest = cache_dir / pkg.filename
        if not (dest.is_file() and dest.stat().st_size == pkg.size):
            download(f"{index.archive}/{pkg.filename}", dest, sha256=pkg.sha256, size=pkg.size)
        paths[name] = dest
    return paths


def fetch_packages(suite: str, arch: str, names: Iterable[str], cache_dir: Path,
                   archive: str | None = None, refresh: bool = False,
                   keyring: Path = DEBIAN_KEYRING) -> dict[str, Path]:
    """Verified ``.deb`` files for ``names`` from ``suite``/``arch``, cached in ``cache_dir``.

    Downloads and verifies InRelease, then Packages.xz, then each package. When
    a cached index names a file the archive no longer has, the index is
    refreshed once and the download retried.
    """
    wanted = list(names)
    index = load_index(suite, arch, wanted, cache_dir, archive, refresh, keyring)
    try:
        return fetch_debs(index, wanted, cache_dir)
    except PoolFileMissing:
        if refresh:
            raise
        index = load_index(suite, arch, wanted, cache_dir, archive, True, keyring)
        return fetch_debs(index, wanted, cache_dir)


def dpkg_arch() -> str:
    """This machine's dpkg architecture (e.g. amd64)."""
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ArchiveError(f"cannot tell the dpkg architecture: {exc}") from exc
