"""Unit tests for hostsetup.sandbox.debarchive (no network: file:// archives only)."""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hostsetup.repoindex import parse_deb822, release_sha256
from hostsetup.sandbox import debarchive as da

DEB822 = """\
Types: deb
# a snapshot comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""

SECURITY_FIRST = """\
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://contrib.example/debian
Suites: bookworm
Components: contrib non-free

Types: deb
URIs: http://good.example/debian/
Suites: bookworm
Components: contrib main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main contrib
deb http://one.example/debian-security bookworm-security main
"""

PACKAGES = """\
Package: docker.io
Version: 20.10.24+dfsg1-1+deb12u1+b6
Architecture: amd64
Depends: libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0
Description: Linux container runtime
 docker.io is the engine.
 .
 More text.
Filename: pool/main/d/docker.io/docker.io_20.10.24+dfsg1-1+deb12u1+b6_amd64.deb
Size: 36256664
SHA256: AABB

Package: tini
Version: 0.19.0-1+b3
Architecture: amd64
Filename: pool/main/t/tini/tini_0.19.0-1+b3_amd64.deb
Size: 267204
SHA256: ccdd

Package: tini
Version: 9.9-1
Architecture: amd64
Filename: pool/main/t/tini/tini_9.9-1_amd64.deb
Size: 1
SHA256: eeff
"""


def test_parse_deb822_comments_continuations_and_stanzas() -> None:
    stanzas = parse_deb822(DEB822)
    assert len(stanzas) == 2
    assert stanzas[0]["Suites"] == "bookworm bookworm-updates"
    assert "#" not in "".join(stanzas[0])
    desc = parse_deb822(PACKAGES)[0]["Description"]
    assert desc == "Linux container runtime\ndocker.io is the engine.\n\nMore text."


def test_deb822_sources_pick_the_plain_codename_not_security() -> None:
    sources = da.parse_sources_deb822(DEB822)
    assert sources[0].uris == ("http://mirror.example/debian",)
    assert da.pick_archive(sources) == "http://mirror.example/debian"


def test_pick_archive_skips_security_src_disabled_and_non_main() -> None:
    assert da.pick_archive(da.parse_sources_deb822(SECURITY_FIRST)) == \
        "http://good.example/debian"


def test_one_line_sources_with_options() -> None:
    sources = da.parse_sources_list(ONE_LINE)
    assert [s.types for s in sources] == [("deb-src",), ("deb",), ("deb",)]
    assert sources[1].components == ("main", "contrib")
    assert da.pick_archive(sources) == "http://one.example/debian"


def test_archive_url_prefers_deb822_and_falls_back_to_sources_list(tmp_path: Path) -> None:
    sdir, slist = tmp_path / "sources.list.d", tmp_path / "sources.list"
    sdir.mkdir()
    slist.write_text(ONE_LINE)
    assert da.archive_url(sdir, slist) == "http://one.example/debian"
    (sdir / "debian.sources").write_text(DEB822)
    (sdir / "other.sources.disabled").write_text(SECURITY_FIRST)
    assert da.archive_url(sdir, slist) == "http://mirror.example/debian"


def test_archive_url_fails_without_a_usable_source(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.sources").write_text(SECURITY_FIRST.split("\n\nTypes: deb\nURIs: "
                                                                  "http://good")[0])
    with pytest.raises(da.ArchiveError, match="no Debian archive"):
        da.archive_url(tmp_path / "d", tmp_path / "missing.list")


def test_parse_packages_filters_and_keeps_first() -> None:
    pkgs = da.parse_packages(PACKAGES, ["tini", "docker.io", "absent"])
    assert set(pkgs) == {"tini", "docker.io"}
    assert pkgs["tini"].version == "0.19.0-1+b3"
    assert pkgs["docker.io"].sha256 == "aabb"
    assert pkgs["docker.io"].size == 36256664
    assert pkgs["docker.io"].depends.startswith("libc6 (>= 2.34)")
    assert set(da.parse_packages(PACKAGES)) == {"docker.io", "tini"}


def test_parse_packages_rejects_a_stanza_without_checksum() -> None:
    with pytest.raises(da.ArchiveError, match="SHA256"):
        da.parse_packages("Package: x\nVersion: 1\nFilename: f\nSize: 1\n")


def test_release_sha256_and_check_release() -> None:
    release = ("Codename: bookworm\nSuite: stable\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\n"
               "SHA256:\n 0123abcd 42 main/binary-amd64/Packages.xz\n"
               " ffff 7 main/binary-amd64/Release\n")
    assert release_sha256(release)["main/binary-amd64/Packages.xz"] == ("0123abcd", 42)
    da.check_release(release, "stable", now=datetime(1999, 1, 1, tzinfo=UTC))
    with pytest.raises(da.ArchiveError, match="expired"):
        da.check_release(release, "bookworm")
    with pytest.raises(da.ArchiveError, match="is for bookworm"):
        da.check_release(release, "trixie", now=datetime(1999, 1, 1, tzinfo=UTC))


# --- a signed file:// archive -------------------------------------------------

needs_gpg = pytest.mark.skipif(not (shutil.which("gpg") and shutil.which("gpgv")),
                               reason="gpg and gpgv are needed")


def _gpg(home: Path, *args: str) -> None:
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode",
                    "loopback", "--passphrase", "", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def signed_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-package archive signed by a throwaway key: (archive dir, keyring)."""
    base = tmp_path_factory.mktemp("arch")
    home = Path(f"/tmp/hs-test-gpg-{base.name}")
    home.mkdir(mode=0o700)
    try:
        _gpg(home, "--quick-gen-key", "test <t@example.invalid>", "ed25519", "sign", "never")
        deb = b"not really a deb"
        (base / "pool").mkdir()
        (base / "pool/hello_1_amd64.deb").write_bytes(deb)
        stanza = (f"Package: hello\nVersion: 1\nArchitecture: amd64\nFilename: "
                  f"pool/hello_1_amd64.deb\nSize: {len(deb)}\n"
                  f"SHA256: {hashlib.sha256(deb).hexdigest()}\n")
        xz = lzma.compress(stanza.encode())
        dist = base / "dists/testing"
        (dist / "main/binary-amd64").mkdir(parents=True)
        (dist / "main/binary-amd64/Packages.xz").write_bytes(xz)
        (dist / "Release").write_text(
            f"Codename: testing\nSHA256:\n {hashlib.sha256(xz).hexdigest()} {len(xz)} "
            "main/binary-amd64/Packages.xz\n")
        _gpg(home, "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release"))
        keyring = base / "keyring.gpg"
        _gpg(home, "--export", "-o", str(keyring))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)
    return base, keyring


@needs_gpg
def test_verify_inrelease_accepts_good_and_rejects_tampered(
        signed_archive: tuple[Path, Path], tmp_path: Path) -> None:
    base, keyring = signed_archive
    inrelease = base / "dists/testing/InRelease"
    assert da.verify_inrelease(inrelease, keyring).startswith("Codename: testing")
    bad = tmp_path / "InRelease"
    bad.write_text(inrelease.read_text().replace("Codename: testing", "Codename: tasting"))
    with pytest.raises(da.ArchiveError, match="not signed"):
        da.verify_inrelease(bad, keyring)
    with pytest.raises(da.ArchiveError, match="not signed"):
        da.verify_inrelease(inrelease, da.DEBIAN_KEYRING)  # unknown key


@needs_gpg
def test_fetch_packages_verifies_and_caches(signed_archive: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    base, keyring = signed_archive
    url = f"file://{base}"
    cache = tmp_path / "cache"
    paths = da.fetch_packages("testing", "amd64", ["hello"], cache, url, keyring=keyring)
    assert paths["hello"].read_bytes() == b"not really a deb"
    # Second call: served from the cache even when the archive is gone.
    moved = tmp_path / "moved"
    shutil.copytree(base, moved)
    shutil.rmtree(base / "pool")
    try:
        again = da.fetch_packages("testing", "amd64", ["hello"], cache, url, keyring=keyring)
        assert again == paths
    finally:
        shutil.copytree(moved / "pool", base / "pool")


@needs_gpg
def test_download_rejects_a_checksum_mismatch(signed_archive: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    base, _ = signed_archive
    dest = tmp_path / "x.deb"
    with pytest.raises(da.ArchiveError, match="SHA256 mismatch"):
        da.download(f"file://{base}/pool/hello_1_amd64.deb", dest, sha256="00" * 32)
    assert not dest.exists()
    with pytest.raises(da.ArchiveError):
        da.download(f"file://{base}/pool/absent.deb", dest)


@needs_gpg
def test_missing_package_name_fails_loudly(signed_archive: tuple[Path, Path],
                                           tmp_path: Path) -> None:
    base, keyring = signed_archive
    with pytest.raises(da.ArchiveError, match="no binary package 'nope'"):
        da.fetch_packages("testing", "amd64", ["nope"], tmp_path, f"file://{base}",
                          keyring=keyring)


@needs_gpg
def test_a_cached_inrelease_that_no_longer_verifies_is_fetched_again(
        signed_archive: tuple[Path, Path], tmp_path: Path) -> None:
    base, keyring = signed_archive
    url = f"file://{base}"
    da.load_index("testing", "amd64", ["hello"], tmp_path, url, keyring=keyring)
    cached = tmp_path / "dists/testing/InRelease"
    cached.write_text(cached.read_text().replace("testing", "tasting"))
    index = da.load_index("testing", "amd64", ["hello"], tmp_path, url, keyring=keyring)
    assert index.get("hello").version == "1"
    assert "Codename: testing" in cached.read_text()
