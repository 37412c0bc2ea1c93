"""What every step of the mirror build shares: its error, running a build tool, the build lock, the recipe hash."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from hostsetup.errors import HostsetupError


class MirrorBuildError(HostsetupError):
    """The sandbox package mirror could not be built."""


def recipe_hash(recipe: Mapping[str, object]) -> str:
    """SHA256 (hex) of the canonical JSON of a recipe."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def run_tool(cmd: list[str], what: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run a build tool; MirrorBuildError with its last output lines when it fails."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
    except OSError as exc:
        raise MirrorBuildError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise MirrorBuildError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{tail}")
    return proc


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

