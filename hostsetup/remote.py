"""Running commands on one host over its open Fabric connection, as root when asked,
counting SSH sessions (each command is one session on the one connection)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from fabric import Connection
from invoke.runners import Result

from hostsetup.errors import HostsetupError


class RemoteError(HostsetupError):
    """A remote command failed; the message carries its last output lines."""


def tail(result: Result, lines: int = 6) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return "\n".join(text[-lines:]) or f"exit code {result.exited}"


@dataclass
class Remote:
    """A host's connection plus how to become root on it."""

    conn: Connection
    as_root: bool = False        # the login user is root: no sudo needed
    sessions: int = 0
    command_timeout: float | None = 900

    def run(self, command: str, timeout: float | None = None) -> Result:
        """Run ``command`` as the login user; failures are returned, not raised."""
        self.sessions += 1
        return self.conn.run(command, hide=True, warn=True, in_stream=False,
                             timeout=timeout or self.command_timeout)

    def root(self, script: str, timeout: float | None = None) -> Result:
        """Run a shell script as root (through sudo unless logged in as root)."""
        command = "sh -c " + shlex.quote(script)
        if self.as_root:
            return self.run(command, timeout)
        self.sessions += 1
        return self.conn.sudo(command, hide=True, warn=True, in_stream=False,
                              timeout=timeout or self.command_timeout)

    def root_ok(self, script: str, what: str, timeout: float | None = None) -> Result:
        """Like ``root`` but raise ``RemoteError`` naming ``what`` on failure."""
        result = self.root(script, timeout)
        if not result.ok:
            raise RemoteError(f"{what} failed: {tail(result)}")
        return result
