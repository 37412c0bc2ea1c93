"""The checks for a whole fleet in one process, in few round trips per host.

Run as ``python3 -m hostsetup.checks.fleet JOB.json`` by ``hostsetup.run.verify.verify_fleet``:

1. every host's connection opens, all hosts at once (threads);
2. every host answers, in ONE script in one SSH session (as root where the checks run through sudo), all
   hosts at once, the read-only commands (``READ_ONLY``) these checks ran last time (``job["known"]``);
3. the first host's checks run, and the read-only commands they ran live are recorded; every other host
   answers those too, all at once;
4. each host's checks run (one pytest run per host, in this process: its own JUnit file, as before), served
   from that host's answers; a command it did not answer (another user's state, a check that changes
   something, such as the smoke test's ``docker run``) runs live, as it always did.

So a fleet pays one Python start-up and about three SSH sessions per host instead of a pytest process and a
session per command for each host. The checks themselves are unchanged: what they see is what the host
said.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import io
import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
from fabric import Config, Connection
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from hostsetup.checks import plugin
from hostsetup.connection import connect
from hostsetup.host.command import command
from hostsetup.remote import Remote
from hostsetup.run.fleet import run_hosts
from hostsetup.targets import LOCAL

# Commands that only read (what testinfra's package, service, file, user and group modules and the shipped
# checks run to look): these may be answered ahead. Anything else always runs live, when its check asks.
READ_ONLY = re.compile(
    r"^(?:dpkg-query |dpkg --print-architecture$|rpm -q|systemctl (?:is-active|is-enabled|is-system-running|show|"
    r"status|cat|--version)\b|test |stat |cat |getent |id |command -v |uname|readlink |ls |"
    r"(?:timeout \d+ )?docker (?:info|version|inspect) |"
    r"runuser -l [a-z_][a-z0-9_-]*\$? -c \"timeout 20 docker version --format '\{\{\.Server\.Version\}\}'\"$)")
MARK = "@@hostsetup-answer"


def read_only(command: str) -> bool:
    """A single command of a read-only kind: no second command, pipe, redirection or substitution."""
    if READ_ONLY.match(command) is None or any(c in command for c in ("\n", "`", "$(")):
        return False
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.commenters = ""   # sh reads "#" inside a word as text; shlex would drop the rest as a comment
    try:
        words = list(lexer)
    except ValueError:
        return False
    return not any(word and set(word) <= set("();<>|&") for word in words)


def answers_script(commands: list[str]) -> str:
    """A script that runs each command (stdin closed) and prints ``MARK index status``, then its stdout
    and stderr, each base64 on one line."""
    lines = ['hs_d=$(mktemp -d) || exit 1', 'trap \'rm -rf "$hs_d"\' EXIT']
    for index, asked in enumerate(commands):
        lines.append(command(f'sh -c @COMMAND@ </dev/null >"$hs_d/o" 2>"$hs_d/e"; printf "\\n{MARK} @INDEX@ %d\\n" $?; '
                           'base64 -w0 "$hs_d/o"; echo; base64 -w0 "$hs_d/e"; echo', COMMAND=asked, INDEX=index).text)
    return "\n".join(lines) + "\n"


def parse_answers(commands: list[str], output: str) -> dict[str, tuple[int, bytes, bytes]]:
    """``answers_script``'s output: command -> (status, stdout, stderr); commands it did not reach are left out."""
    answers: dict[str, tuple[int, bytes, bytes]] = {}
    lines = output.split("\n")
    for at, line in enumerate(lines):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != MARK or at + 2 >= len(lines):
            continue
        try:
            index, status = int(parts[1]), int(parts[2])
            answers[commands[index]] = (status, base64.b64decode(lines[at + 1]), base64.b64decode(lines[at + 2]))
        except (ValueError, IndexError):
            continue
    return answers


class AnsweredBackend(ParamikoBackend):  # type: ignore[misc]  # (testinfra is untyped)
    """testinfra's paramiko backend, answering from what the host already said (``answers``) and
    recording the read-only commands it runs live (``record``)."""

    answers: dict[str, tuple[int, bytes, bytes]]
    record: list[str] | None
    live: int = 0

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        key = self.quote(command, *args)
        # inside `with host.sudo(user)` testinfra replaces get_command (and afterwards puts the bound method
        # back): as another user, a command always runs live
        override = self.__dict__.get("get_command")
        if override is not None and getattr(override, "__func__", None) is not type(self).get_command:
            self.live += 1
            return super().run(command, *args, **kwargs)
        found = self.answers.get(key)
        if found is not None:
            status, out, err = found
            return self.result(status, self.encode(self.get_command(key)), out, err)
        if self.record is not None and read_only(key) and key not in self.record:
            self.record.append(key)
        self.live += 1
        return super().run(command, *args, **kwargs)


@dataclass
class FleetHost:
    """One host of the job: where its results go, and its open connection once there is one."""

    name: str
    target: str
    expect: str
    junit: str
    sudo: bool
    checks: list[str]
    identity: str | None = None
    conn: Connection | None = None
    host: Host | None = None
    error: str = ""
    exit: int | None = None
    output: str = ""
    seconds: float = 0.0
    answered: int = 0


def open_host(job: dict[str, Any], item: FleetHost) -> None:
    """Connect (hostsetup's host-key checks and settings) and wrap the connection for testinfra."""
    if item.target == LOCAL:
        item.host = testinfra.get_host("local://", sudo=item.sudo)
        item.host.login_user = getpass.getuser()  # (under sudo, user() is root)
        return
    ssh = job["ssh"]
    identity = item.identity or ssh.get("identity")
    config = Config(runtime_ssh_path=ssh.get("ssh_config"), overrides={
        "known_hosts": ssh.get("known_hosts", []),
        "connect_kwargs": {"key_filename": [identity]} if identity else {},
        "timeouts": {"connect": ssh.get("connect_timeout", 10)},
    })
    try:
        item.conn = connect(item.target, config)
        item.conn.open()
    except Exception as exc:   # reported per host; the others go on
        item.error = f"cannot connect: {exc}"
        return
    backend = AnsweredBackend(f"paramiko://{item.conn.user}@{item.conn.host}:{item.conn.port}", sudo=item.sudo)
    backend.__dict__["client"] = item.conn.client  # the cached_property, already connected and checked
    backend.answers, backend.record = {}, None
    item.host = Host(backend)
    item.host.login_user = item.conn.user


def answer_ahead(item: FleetHost, commands: list[str]) -> None:
    """Have the host answer ``commands`` in one session (as root where its checks use sudo)."""
    if item.conn is None or item.host is None or not commands:
        return
    start = time.monotonic()
    remote = Remote(item.conn, as_root=not item.sudo)
    try:
        result = remote.root(answers_script(commands), timeout=300)
    except Exception:   # the checks then run live, as they would have
        return
    finally:
        item.seconds += time.monotonic() - start
    answers = parse_answers(commands, result.stdout)
    backend = item.host.backend
    if isinstance(backend, AnsweredBackend):
        backend.answers.update(answers)
        item.answered += len(answers)


def run_checks(job: dict[str, Any], item: FleetHost) -> None:
    """One pytest run over the checks for this host, in this process; its JUnit file as before."""
    # (this module imported the plugin already, for PREPARED: pytest cannot rewrite its asserts, nor need it.)
    # A run per host in one process must be cheap: pytest's end-of-session hunt for unraisable exceptions
    # (five garbage collections of this process's whole heap) and source-quoting tracebacks cost ~250 ms a
    # host; --tb=line keeps each failure's message, all the reports and JUnit files use, as it was.
    args = ["-p", "no:pytest11.testinfra", "-p", "hostsetup.checks.plugin", "-p", "no:cacheprovider", "-q",
            "-p", "no:unraisableexception", "-p", "no:threadexception", "--tb=line",
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--hostsetup-target", item.target, "--hostsetup-expect", item.expect,
            "--junit-xml", item.junit, "-o", "junit_family=xunit1", "-c", job["ini"], "--rootdir",
            str(Path(job["ini"]).parent), *item.checks]
    plugin.PREPARED[item.target] = item.host
    start = time.monotonic()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            item.exit = int(pytest.main(args))
    except Exception as exc:
        item.error = f"the checks did not run: {exc}"
    finally:
        plugin.PREPARED.pop(item.target, None)
        item.seconds += time.monotonic() - start
    item.output = "\n".join(out.getvalue().strip().splitlines()[-5:])


def run_job(job: dict[str, Any]) -> tuple[list[FleetHost], list[str]]:
    """Check every host of ``job``; also return the read-only commands the checks ran (for next time)."""
    items = [FleetHost(**{k: h[k] for k in ("name", "target", "expect", "junit", "sudo", "checks", "identity")})
             for h in job["hosts"]]
    parallel = int(job.get("parallel", 10))
    known = [str(c) for c in job.get("known", []) if read_only(str(c))]
    run_hosts(items, lambda item: open_host(job, item), parallel)
    ready = [item for item in items if item.host is not None]
    recorded: list[str] = []
    if ready:
        # what earlier runs of these checks looked at: every host answers it at once, the first one too
        run_hosts(ready, lambda item: answer_ahead(item, known), parallel)
        first, rest = ready[0], ready[1:]
        backend = first.host.backend if first.host is not None else None
        if isinstance(backend, AnsweredBackend):
            backend.record = recorded
        run_checks(job, first)
        if isinstance(backend, AnsweredBackend):
            backend.record = None
        write_results(job, items, known)
        # what the first host's checks asked beyond that: the others answer it before their turn
        run_hosts(rest, lambda item: answer_ahead(item, recorded), parallel)
        for item in rest:
            run_checks(job, item)
            write_results(job, items, known)   # a run cut short by its timeout keeps the hosts that finished
    for item in items:
        if item.conn is not None:
            item.conn.close()
    return items, [*known, *(c for c in recorded if c not in known)]


@contextlib.contextmanager
def quiet_paramiko() -> Iterator[None]:
    logger = logging.getLogger("paramiko")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def write_results(job: dict[str, Any], items: list[FleetHost], commands: list[str]) -> None:
    """The hosts checked so far (an unchecked one has no exit yet), and the commands to remember."""
    done = {item.name: {"exit": item.exit, "error": item.error, "output": item.output,
                        "seconds": round(item.seconds, 3), "answered": item.answered,
                        "live": getattr(item.host.backend, "live", None) if item.host else None}
            for item in items if item.exit is not None or item.error}
    partial = Path(job["results"] + ".part")
    partial.write_text(json.dumps({"commands": commands, "hosts": done}))
    partial.replace(job["results"])


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    with quiet_paramiko():
        items, commands = run_job(job)
    # runuser -l USER runs USER's login profile: a fleet whose checks name other users must not inherit it
    write_results(job, items, [c for c in commands if not c.startswith("runuser ")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
