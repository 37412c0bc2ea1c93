"""The input contract, as a harness: run the real ``hostsetup`` program in this process (fast enough
for property tests) with given argv, environment and files, and judge the outcome.

The contract: every run ends in one of
* exit 2 with exactly one line on stderr, ``hostsetup: ...``, and no host contacted; or
* the hosts reached with checked values only (each address a valid host string, the fleet numbers
  in range), which here means a real plan from recorded facts (``--dry-run``): exit 0 or 1.
Never a traceback, an internal error (exit 70) or a hang.

No host is ever contacted: the connection is replaced by one that answers the facts script with
facts recorded from a real Debian 12 host.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from invoke.runners import Result

from hostsetup import secrets
from hostsetup.cli import program
from hostsetup.inputs.values import host_string
from hostsetup.run import fleet as runner

FACTS = (Path(__file__).parent / "data" / "facts" / "debian12-bare.txt").read_text()
RUNS = {"count": 0}  # how many generated inputs were tried (reported by the tests)
_LOCK = threading.Lock()


class _FakeConnection:
    def close(self) -> None:
        pass


@dataclass
class _FakeRemote:
    """Answers every command with the recorded facts (planning only needs the facts)."""

    conn: _FakeConnection = field(default_factory=_FakeConnection)
    as_root: bool = False
    sudo_asks: bool = False
    sessions: int = 0

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> Result:
        self.sessions += 1
        return Result(stdout=FACTS, exited=0)

    def root(self, script: str, timeout: float | None = None) -> Result:
        return self.run(script)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    reached: list[tuple[str, Any]]   # (target address, config) for each host contacted

    def check(self) -> None:
        """Assert the contract (see the module's docstring)."""
        text = self.stdout + self.stderr
        assert "Traceback" not in text, text
        assert self.code != 70 and "internal error" not in text, text
        if self.code == 2:
            lines = self.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("hostsetup: "), self.stderr
            assert not self.reached, f"exit 2 after contacting {self.reached}"
            return
        assert self.code in (0, 1), (self.code, text)
        for address, config in self.reached:
            host_string(address, "reached")   # raises on anything but a valid host string
            assert 1 <= int(config.parallel) <= 1000
            assert 0 <= int(config.max_fail_percent) <= 100
            assert 1 <= int(config.connect_attempts) <= 20


@contextlib.contextmanager
def _environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update({k: v for k, v in saved_env.items() if not k.startswith("HOSTSETUP_")})
    os.environ.update({"HOME": str(cwd), **env})
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_cli(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> Outcome:
    """``hostsetup ARGV`` in ``cwd`` (its ``hostsetup.yaml`` is the project file; HOME is ``cwd`` too)."""
    reached: list[tuple[str, Any]] = []

    def fake_open(target: Any, config: Any, interrupt: Any = None) -> _FakeRemote:
        reached.append((target.address, config))
        return _FakeRemote()

    out, err = io.StringIO(), io.StringIO()
    code = 0
    # A generated password ("official", "tuna" ...) is registered as a secret by the run: it must not stay
    # masked in the tests that come after (the registry is the process's).
    with _LOCK, _environment(env or {}, cwd), mock.patch.object(runner, "open_connection", fake_open), \
            mock.patch.object(secrets, "_known", set(secrets._known)), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        RUNS["count"] += 1
        try:
            program.run(["hostsetup", *argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Outcome(code, out.getvalue(), err.getvalue(), reached)
