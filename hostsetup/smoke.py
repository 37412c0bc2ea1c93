"""The bundled smoke-test image: a hand-assembled static x86-64 program that prints one
line, packed as a ``docker save`` archive in memory. No registry, no download."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile

SMOKE_REF = "hostsetup/smoke:1"
SMOKE_OUTPUT = "hello from the hostsetup smoke image"
SMOKE_ARCHES = ("x86_64", "amd64")
# With a registry mirror configured, verify --smoke pulls this through it (Docker Hub's own; the
# sandbox's Hub stand-in serves the bundled image under this name).
SMOKE_PULL_IMAGE = "hello-world"
SMOKE_PULL_REPOSITORY = "library/hello-world"


def hello_elf(message: str = SMOKE_OUTPUT) -> bytes:
    """A 64-bit Linux ELF executable: write(1, message + newline); exit(0)."""
    text = (message + "\n").encode()
    base, header_size = 0x400000, 64 + 56
    code = (b"\xb8\x01\x00\x00\x00"               # mov eax, 1 (write)
            b"\xbf\x01\x00\x00\x00"               # mov edi, 1 (stdout)
            b"\x48\x8d\x35\x10\x00\x00\x00"       # lea rsi, [rip + 16] -> the text after the code
            + b"\xba" + struct.pack("<I", len(text))  # mov edx, len
            + b"\x0f\x05"                         # syscall
            b"\xb8\x3c\x00\x00\x00"               # mov eax, 60 (exit)
            b"\x31\xff"                           # xor edi, edi
            b"\x0f\x05")                          # syscall
    body = code + text
    size = header_size + len(body)
    ehdr = (b"\x7fELF\x02\x01\x01" + b"\x00" * 9
            + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + header_size, 64, 0, 0, 64, 56, 1, 0, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + body


def _member(name: str, data: bytes | None, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    info.mode = mode
    if data is None:
        info.type = tarfile.DIRTYPE
        return info, None
    info.size = len(data)
    return info, io.BytesIO(data)


def deterministic_tar(files: dict[str, tuple[bytes | None, int]]) -> bytes:
    """A tar of ``name -> (content, mode)`` (None: a directory), sorted, owned by root, time 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            tar.addfile(*_member(name, *files[name]))
    return buf.getvalue()


def smoke_image() -> bytes:
    """The ``docker save`` archive of SMOKE_REF (deterministic bytes)."""
    layer = deterministic_tar({"hello": (hello_elf(), 0o755)})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Cmd": ["/hello"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_dir = hashlib.sha256(layer).hexdigest()
    manifest = [{"Config": config_name, "RepoTags": [SMOKE_REF], "Layers": [f"{layer_dir}/layer.tar"]}]
    return deterministic_tar({
        f"{layer_dir}/": (None, 0o755),
        f"{layer_dir}/layer.tar": (layer, 0o644),
        config_name: (config_bytes, 0o644),
        "manifest.json": (json.dumps(manifest).encode(), 0o644),
    })
