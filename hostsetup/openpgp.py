"""Just enough OpenPGP to read the fingerprints of the primary keys in a key file.

Used to check a downloaded repository key against the published fingerprint
without needing gpg on the host or the control machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

PUBLIC_KEY_TAG = 6


class KeyFormatError(ValueError):
    """The data is not an OpenPGP public key."""


BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
END = "-----END PGP PUBLIC KEY BLOCK-----"


def dearmor(data: bytes) -> bytes:
    """The binary packets of ASCII-armored ``data``, every armor block of it (a file may hold
    several, and a package manager reads them all); binary data is returned as is."""
    text = data.decode("ascii", errors="replace")
    if BEGIN not in text:
        return data
    blocks = []
    for chunk in text.split(BEGIN)[1:]:
        if END not in chunk:
            raise KeyFormatError("armor block without its END line")
        lines = chunk.split(END, 1)[0].strip().splitlines()
        # Armor headers end at the first empty line (if there are any).
        if "" in [line.strip() for line in lines]:
            lines = lines[[line.strip() for line in lines].index("") + 1:]
        payload = "".join(line.strip() for line in lines if not line.startswith("="))
        try:
            blocks.append(base64.b64decode(payload, validate=True))
        except binascii.Error as exc:
            raise KeyFormatError(f"bad armor: {exc}") from None
    return b"".join(blocks)


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """Split binary OpenPGP data into (tag, body) packets."""
    try:
        return _packets(data)
    except IndexError:  # a length field cut off by the end of the data
        raise KeyFormatError("truncated packet header") from None


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            raise KeyFormatError(f"not an OpenPGP packet at byte {pos}")
        if header & 0x40:  # new format
            tag, pos = header & 0x3F, pos + 1
            first = data[pos]
            if first < 192:
                length, pos = first, pos + 1
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
            else:
                raise KeyFormatError("partial body lengths are not used in key files")
        else:  # old format
            tag, size_type, pos = (header >> 2) & 0x0F, header & 0x03, pos + 1
            if size_type == 3:
                length = len(data) - pos
            else:
                width = (1, 2, 4)[size_type]
                length, pos = int.from_bytes(data[pos:pos + width], "big"), pos + width
        if pos + length > len(data):
            raise KeyFormatError("truncated packet")
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def primary_fingerprints(data: bytes) -> list[str]:
    """Fingerprints (uppercase hex) of every primary public key in ``data``."""
    found = []
    for tag, body in packets(dearmor(data)):
        if tag != PUBLIC_KEY_TAG or not body:
            continue
        version = body[0]
        if version == 4:
            found.append(hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest())
        elif version in (5, 6):
            prefix = b"\x9a" if version == 5 else b"\x9b"
            found.append(hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest())
    if not found:
        raise KeyFormatError("no public key found")
    return [fp.upper() for fp in found]


def key_file_problem(data: bytes, expected: Iterable[str]) -> str | None:
    """Why ``data`` must not be trusted as the repository key, or None when every primary key
    in it is an expected one. A file holding the expected key *and* another would make apt or
    dnf trust the other key too (the whole file becomes ``Signed-By``/``gpgkey``)."""
    wanted = set(expected)
    try:
        found = primary_fingerprints(data)
    except KeyFormatError as exc:
        return f"it is not an OpenPGP key ({exc})"
    others = [fp for fp in found if fp not in wanted]
    if not others:
        return None
    if len(others) == len(found):
        return f"it holds key {', '.join(others)}, expected {' or '.join(sorted(wanted))}"
    return (f"it holds other keys besides the expected one ({', '.join(others)}): the package manager "
            "would trust them too")


def normalize_fingerprint(value: str) -> str:
    """``'9DC8 5822 ...'`` -> ``'9DC85822...'``; raises ValueError if not hex of 40/64."""
    cleaned = value.replace(" ", "").replace(":", "").upper()
    if len(cleaned) not in (40, 64) or any(ch not in "0123456789ABCDEF" for ch in cleaned):
        raise ValueError(f"not an OpenPGP fingerprint: {value!r}")
    return cleaned
