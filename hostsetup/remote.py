"""Running commands on one host over its open Fabric connection, as root when asked,
counting SSH sessions (each command is one session on the one connection).

Root scripts travel on the session's stdin (``sh -s``), never on a command line: a command
line is visible to every user of the host in ``ps``, and scripts carry file contents (proxy
and registry credentials among them). Only when sudo asks for a password does the script take
a detour through a file private to the login user, because sudo then reads stdin itself.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fabric import Connection
from fabric.runners import Remote as RemoteRunner
from invoke.runners import Result

from hostsetup.errors import HostsetupError
from hostsetup.host.command import Command, command, runnable


class RemoteError(HostsetupError):
    """A remote command failed; the message carries its last output lines."""


def tail(result: Result, lines: int = 6) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return "\n".join(text[-lines:]) or f"exit code {result.exited}"


class ScriptRunner(RemoteRunner):  # type: ignore[misc]  # (invoke is untyped)
    """Fabric's runner, but a script given as stdin is sent whole, then EOF.

    Invoke copies a non-terminal stdin one byte per 10 ms (a 3 KB script: 30 s), and ``sh -s``
    runs what it has read so far, so the end of a script would race the rest of it."""

    def handle_stdin(self, input_: Any, output: Any, echo: bool | None = False) -> None:
        if not isinstance(input_, io.StringIO):
            super().handle_stdin(input_, output, bool(echo))
            return
        try:
            data = input_.read()
            if data:
                self.write_proc_stdin(data)
            self.close_proc_stdin()
        except OSError:  # the command ended without reading it all (sudo refused): its exit says why
            pass


@dataclass
class Remote:
    """A host's connection plus how to become root on it."""

    conn: Connection
    as_root: bool = False        # the login user is root: no sudo needed
    sudo_asks: bool = False      # sudo wants the login user's password (facts say so)
    sessions: int = 0
    command_timeout: float | None = 900
    # Asked before every new session with what it will run (the command or the root script); it
    # may raise to start nothing (a Ctrl-C asked the fleet to start no new step).
    before_session: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.conn.config.runners.remote = ScriptRunner  # (each connection has its own Config: connection.connect)

    def _starting(self, what: str) -> None:
        if self.before_session is not None:
            self.before_session(what)

    def run(self, command: Command | str, timeout: float | None = None, stdin: str | None = None) -> Result:
        """Run ``command`` as the login user (``stdin`` fed to it); failures are returned, not raised."""
        text = runnable(command)
        self._starting(text)
        return self._session(text, timeout, stdin)

    def _session(self, command: str, timeout: float | None = None, stdin: str | None = None) -> Result:
        self.sessions += 1
        result: Result = self.conn.run(command, hide=True, warn=True, in_stream=io.StringIO(stdin) if stdin is not None
                                       else False, timeout=timeout or self.command_timeout)
        return result

    def root(self, script: Command | str, timeout: float | None = None) -> Result:
        """Run a shell script as root (through sudo unless logged in as root), the script on stdin."""
        text = runnable(script)
        self._starting(text)
        if self.as_root:
            return self._session("sh -s", timeout, stdin=text)
        if not self.sudo_asks:
            return self._session("sudo -n sh -s", timeout, stdin=text)
        # sudo reads the password from stdin: the script goes to a file only the login user can
        # read, which root runs and removes.
        stored = self._session('umask 077 && f=$(mktemp "${TMPDIR:-/tmp}/.hostsetup-XXXXXXXX") && cat > "$f" '
                               '&& echo "$f"', 60, stdin=text)
        path = stored.stdout.strip()
        if not stored.ok or not path.startswith("/"):
            return stored
        self.sessions += 1
        run_and_remove = command("sh -c @SCRIPT@",
                                 SCRIPT=command("sh @PATH@; rc=$?; rm -f @PATH@; exit $rc", PATH=path).text)
        try:
            result: Result = self.conn.sudo(run_and_remove.text, hide=True, warn=True, in_stream=False,
                                            timeout=timeout or self.command_timeout)
            prompt = str(getattr(getattr(self.conn.config, "sudo", None), "prompt", "") or "")
            if prompt and result.stderr.startswith(prompt):  # sudo's own prompt is not the script's output
                result.stderr = result.stderr[len(prompt):]
            return result
        except BaseException:  # a refused password or a timeout must not leave the script behind
            self._session(command("rm -f @PATH@", PATH=path).text, 30)
            raise

    def root_ok(self, script: Command | str, what: str, timeout: float | None = None) -> Result:
        """Like ``root`` but raise ``RemoteError`` naming ``what`` on failure."""
        result = self.root(script, timeout)
        if not result.ok:
            raise RemoteError(f"{what} failed: {tail(result)}")
        return result


class LocalConnection:
    """What ``Remote`` needs of a connection, for this machine itself (``--local``)."""

    transport = None   # no SSH transport: no liveness watchdog

    def put(self, local: str, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: str) -> None:
        shutil.copyfile(remote, local)

    def close(self) -> None:
        pass


@dataclass
class LocalRemote(Remote):
    """``Remote`` on this machine: the same scripts as subprocesses, root as root or through ``sudo -n``
    (a sudo that asks for a password is refused: --local runs unattended, as at first boot)."""

    def __post_init__(self) -> None:
        pass

    def _session(self, command: str, timeout: float | None = None, stdin: str | None = None) -> Result:
        self.sessions += 1
        try:
            proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, input=stdin,
                                  stdin=None if stdin is not None else subprocess.DEVNULL,
                                  timeout=timeout or self.command_timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return Result(stdout=out, stderr=f"timed out after {exc.timeout:.0f} s", exited=124, command=command)
        return Result(stdout=proc.stdout, stderr=proc.stderr, exited=proc.returncode, command=command)

    def root(self, script: Command | str, timeout: float | None = None) -> Result:
        if self.sudo_asks and not self.as_root:
            raise RemoteError("--local needs root or passwordless sudo (sudo asks for a password here)")
        return super().root(script, timeout)


def local_remote() -> LocalRemote:
    """This machine as a host: root when run as root, else through ``sudo -n``."""
    return LocalRemote(LocalConnection(), as_root=os.geteuid() == 0)
