"""Package repository indexes: apt's signed ``InRelease`` and ``Packages``, and file checksums.

One reading of them for everything that takes packages from a repository on this machine: offline
bundles (``bundlebuild``) and the sandbox's downloads from the machine's Debian archive.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

Stanza = dict[str, str]


class SignatureError(ValueError):
    """A file is not signed as it must be (the message says by whom and why not)."""


def parse_deb822(text: str) -> list[Stanza]:
    """Parse RFC822-style stanzas (apt deb822 sources, Release, Packages).

    Comment lines (``#``) are dropped; continuation lines are joined with
    newlines; a lone ``.`` continuation stands for an empty line.
    """
    stanzas: list[Stanza] = []
    current: Stanza = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            more = line.strip()
            current[key] += "\n" + ("" if more == "." else more)
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """Map each path in a Release file's ``SHA256:`` list to ``(sha256, size)``."""
    fields = parse_deb822(release_text)
    table = fields[0].get("SHA256", "") if fields else ""
    sums: dict[str, tuple[str, int]] = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 3:
            sums[parts[2]] = (parts[0].lower(), int(parts[1]))
    return sums


def sha256_file(path: Path) -> str:
    """Hex SHA256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gpgv(keyring: Path, args: list[str]) -> tuple[list[str], str]:
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise SignatureError("checking a repository's signature needs gpgv on this machine (Debian/Ubuntu: gpgv)")
    proc = subprocess.run([gpgv, "--status-fd", "1", "--keyring", str(keyring), *args], capture_output=True,
                          text=True, check=False, timeout=60)
    status = [line.split()[1] for line in proc.stdout.splitlines()
              if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
    return status, "; ".join(proc.stderr.strip().splitlines()[-3:])


def _good(status: list[str]) -> bool:
    """Like apt: a good, valid signature by a key of the keyring and no bad one (a signature by a key
    missing from the keyring is ignored as long as another one is good)."""
    return "GOODSIG" in status and "VALIDSIG" in status and "BADSIG" not in status


def verify_clearsigned(path: Path, keyring: Path) -> str:
    """Check a clearsigned file (apt's ``InRelease``) with gpgv; the text the signature covers."""
    with tempfile.TemporaryDirectory(prefix="hostsetup-gpgv-") as tmp:
        out = Path(tmp) / "Release"
        status, detail = _gpgv(keyring, ["--output", str(out), str(path)])
        if not _good(status) or not out.is_file():
            raise SignatureError(f"{path.name} is not signed by a key in {keyring.name} ({detail})")
        return out.read_text(encoding="utf-8")


def verify_detached(signature: Path, data: Path, keyring: Path) -> None:
    """Check a detached signature (dnf's ``repomd.xml.asc``) with gpgv."""
    status, detail = _gpgv(keyring, [str(signature), str(data)])
    if not _good(status):
        raise SignatureError(f"{data.name} is not signed by a key in {keyring.name} ({detail})")
