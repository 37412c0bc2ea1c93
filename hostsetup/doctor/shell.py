"""Running the doctor's scripts on this machine, the way ``Remote`` runs them over SSH."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from invoke.runners import Result


@dataclass
class LocalShell:
    """``Remote``'s ``run``/``root`` for ``--local``: subprocesses, root through ``sudo -n``."""

    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    sessions: int = 0          # processes started (the counterpart of SSH sessions)
    command_timeout: float = 900

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> Result:
        self.sessions += 1
        try:
            proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                                  input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                                  timeout=timeout or self.command_timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return Result(stdout=out, stderr=f"timed out after {exc.timeout:.0f}s", exited=124, command=command)
        return Result(stdout=proc.stdout, stderr=proc.stderr, exited=proc.returncode, command=command)

    def root(self, script: str, timeout: float | None = None) -> Result:
        """The script on stdin, as ``Remote.root`` sends it: never on a command line (``ps``)."""
        return self.run("sh -s" if self.as_root else "sudo -n sh -s", timeout, stdin=script)
