"""The tiny image as a ``docker save`` tarball, made from a busybox binary without Docker (deterministic)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path


def _tar_info(name: str, kind: bytes, size: int = 0, mode: int = 0o644,
              link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size, mode, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def layer_tar(busybox: bytes) -> bytes:
    """A root filesystem layer: /bin/busybox plus sh and echo symlinks (deterministic)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_tar_info("bin/", tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_tar_info("bin/busybox", tarfile.REGTYPE, len(busybox), 0o755),
                    io.BytesIO(busybox))
        for applet in ("echo", "sh"):
            tar.addfile(_tar_info(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777,
                                  link="busybox"))
    return buf.getvalue()


def image_files(layer: bytes, ref: str, output: str, arch: str) -> dict[str, bytes]:
    """The members of a ``docker save`` archive for a one-layer image."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    created = "1970-01-01T00:00:00Z"
    config = {
        "architecture": arch, "os": "linux", "created": created,
        "config": {"Cmd": ["/bin/echo", output],
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "hostsetup mirror: busybox-static"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_id = hashlib.sha256(f"{diff_id} {config_name}".encode()).hexdigest()
    repo, _, tag = ref.rpartition(":")
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{layer_id}/layer.tar"]}]
    legacy = {"id": layer_id, "created": created, "os": "linux", "architecture": arch,
              "config": config["config"]}
    return {
        f"{layer_id}/VERSION": b"1.0",
        f"{layer_id}/json": json.dumps(legacy, sort_keys=True).encode(),
        f"{layer_id}/layer.tar": layer,
        config_name: config_bytes,
        "manifest.json": json.dumps(manifest, sort_keys=True).encode(),
        "repositories": json.dumps({repo: {tag: layer_id}}, sort_keys=True).encode(),
    }


def write_image(dest: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` as an uncompressed tar with directories first (deterministic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dirs = sorted({name.split("/")[0] for name in files if "/" in name})
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tar:
        for d in dirs:
            tar.addfile(_tar_info(f"{d}/", tarfile.DIRTYPE, mode=0o755))
        for name in sorted(files):
            tar.addfile(_tar_info(name, tarfile.REGTYPE, len(files[name])),
                        io.BytesIO(files[name]))
