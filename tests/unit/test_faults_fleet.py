"""Faults of a fleet run: Ctrl-C bookkeeping, the dead-host watchdog, bounded connects, and atomic
writes that leave no temporary file when their script is cut off."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from invoke.exceptions import Exit
from invoke.runners import Result

from hostsetup.apply import MARK, StepResult, batch_script
from hostsetup.config import HostsetupConfig
from hostsetup.connection import KEEPALIVE_REQUEST, Watchdog
from hostsetup.host import files as scripts
from hostsetup.operations import Run
from hostsetup.remote import Remote
from hostsetup.run import fleet as runner
from hostsetup.run.fleet import (
    FleetInterrupt,
    HostReport,
    Interrupted,
    StepGuard,
    converge_host,
    run_fleet,
)
from hostsetup.run.report import fleet_table, host_block, summary_line
from hostsetup.run.status import INTERRUPTED, NOT_STARTED, exit_code
from hostsetup.steps import Plan, Step
from hostsetup.targets import Target

# -- atomic writes: the temporary file never outlives its script -----------------------------------


def write_script(target: Path, content: str = "new\n") -> str:
    return "set -e\n" + scripts.write_atomic(str(target), content, "0644").text


def default_signals() -> None:
    """As sshd starts a session: every signal at its default. (A job started in the background
    inherits SIGINT ignored, and a shell cannot trap a signal ignored on entry.)"""
    for number in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)


def run_sh(script: str, path_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{path_dir}:{os.environ['PATH']}" if path_dir else os.environ["PATH"]}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env=env,
                          preexec_fn=default_signals)


def shim(directory: Path, name: str, body: str) -> Path:
    """A stand-in for the command ``name`` (found first on PATH) running ``body``."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return directory


@pytest.fixture
def backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Backups of replaced files go under tmp_path, not this machine's /var/backups."""
    where = tmp_path / "backups"
    monkeypatch.setattr(scripts, "BACKUP_DIR", str(where))
    return where


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(scripts.TEMP_PREFIX))


def test_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path, backups) -> None:
    target = tmp_path / "etc" / "app.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    proc = run_sh(write_script(target) + "\ntrap")  # `trap` lists what is still set: nothing
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o644"
    assert temp_files(target.parent) == [] and proc.stdout == ""
    assert [p.read_text() for p in backups.iterdir()] == ["old\n"]


@pytest.mark.parametrize(("name", "number"), scripts.TRAPPED_SIGNALS)
def test_write_cut_off_by_a_signal_removes_its_temporary_file(tmp_path, backups, name, number) -> None:
    """The script is signalled right before the rename (the temporary file is complete by then);
    the shell runs its trap once the command in the foreground (here: not the real mv) ends."""
    target = tmp_path / "app.conf"
    target.write_text("old\n")
    bin_dir = shim(tmp_path / "bin", "mv", f"kill -s {name} $PPID; exit 99")
    proc = run_sh(write_script(target), bin_dir)
    assert proc.returncode == 128 + number, (proc.returncode, proc.stderr)
    assert target.read_text() == "old\n"  # the old version, whole
    assert temp_files(tmp_path) == []


def test_write_failing_midway_removes_its_temporary_file(tmp_path, backups) -> None:
    target = tmp_path / "new.conf"  # did not exist: it still does not
    bin_dir = shim(tmp_path / "bin", "chmod", "echo 'chmod: read-only file system' >&2; exit 1")
    proc = run_sh(write_script(target), bin_dir)
    assert proc.returncode == 1 and "read-only" in proc.stderr
    assert not target.exists() and temp_files(tmp_path) == []


def test_write_inside_a_batch_step_keeps_the_exit_status_and_clears_its_traps(tmp_path, backups) -> None:
    """In apply's batch script a write is one step in a subshell; the next step's failure is its own."""
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    steps = [(Step("a", "write a"), scripts.write_atomic(str(first), "A\n", "0644").text),
             (Step("b", "write b, then fail"),
              scripts.write_atomic(str(second), "B\n", "0644").text + "\nexit 7")]
    proc = run_sh(batch_script(steps))
    assert proc.returncode == 7
    assert first.read_text() == "A\n" and second.read_text() == "B\n" and temp_files(tmp_path) == []


# -- the watchdog ------------------------------------------------------------------------------------


class FakeTransport:
    """A paramiko Transport stand-in: answers keepalives, or hangs (a frozen host) until closed."""

    def __init__(self, answering: bool = True) -> None:
        self.answering = answering
        self.active = True
        self.requests: list[tuple[str, bool]] = []
        self.closed = threading.Event()

    def global_request(self, kind: str, data: Any = None, wait: bool = True) -> Any:
        self.requests.append((kind, wait))
        if not self.answering:
            self.closed.wait(30)  # as paramiko: a wait=True request returns when the transport dies
        return None if not self.active else object()

    def is_active(self) -> bool:
        return self.active

    def close(self) -> None:
        self.active = False
        self.closed.set()


def test_watchdog_leaves_an_answering_host_alone() -> None:
    transport = FakeTransport()
    dog = Watchdog(transport, timeout=0.3, interval=0.05).start()
    time.sleep(0.8)
    dog.stop()
    assert not dog.fired.is_set() and transport.active
    assert len(transport.requests) >= 5 and set(transport.requests) == {(KEEPALIVE_REQUEST, True)}


def test_watchdog_closes_the_transport_of_a_host_that_stops_answering() -> None:
    transport = FakeTransport()
    dog = Watchdog(transport, timeout=0.5, interval=0.05).start()
    time.sleep(0.3)
    transport.answering = False  # frozen from here on
    started = time.monotonic()
    assert transport.closed.wait(5)
    assert 0.3 < time.monotonic() - started < 1.6
    assert dog.fired.is_set()


def test_watchdog_stopped_or_transport_gone_never_fires() -> None:
    hung = FakeTransport(answering=False)
    dog = Watchdog(hung, timeout=0.3, interval=0.05).start()
    dog.stop()
    time.sleep(0.6)
    assert not dog.fired.is_set() and hung.active
    hung.close()
    gone = FakeTransport()
    gone.active = False
    dog = Watchdog(gone, timeout=0.2, interval=0.05).start()
    time.sleep(0.5)
    dog.stop()
    assert gone.requests == []


def test_connecting_to_a_port_that_never_speaks_ssh_is_bounded(tmp_path) -> None:
    """A host that accepts TCP but sends no SSH greeting fails after dead_host_timeout, once."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    config = HostsetupConfig(overrides={"dead_host_timeout": 1, "known_hosts": [],
                                        "connect_kwargs": {"key_filename": [], "look_for_keys": False}})
    port = silent.getsockname()[1]
    started = time.monotonic()
    try:
        report = converge_host(Target("silent", f"root@127.0.0.1:{port}"), config, lambda facts: Plan(None))  # type: ignore[arg-type]
    finally:
        silent.close()
        for conn in accepted:
            conn.close()
    assert time.monotonic() - started < 6
    assert report.status == "failed"
    assert report.error == ("cannot connect: no SSH greeting within 1 s (the port accepts connections "
                            "but nothing there speaks SSH)")
    assert len(accepted) == 1  # not retried: a silent port is not a refused connection


# -- Ctrl-C: bookkeeping -------------------------------------------------------------------------------


def test_step_guard_lets_the_step_in_progress_finish_and_starts_nothing_new() -> None:
    interrupt = FleetInterrupt(write=lambda text: None)
    guard = StepGuard(interrupt)
    guard.enter("while gathering facts")
    guard.before_session("facts")  # not stopping: anything runs
    guard.step_recorded()
    guard.before_session("first command of a step")
    interrupt.request()
    guard.before_session("second command of the same step")  # continues the step in progress
    with pytest.raises(Interrupted):
        guard.before_session(f"printf '{MARK} start'")  # a batch always starts new steps
    guard.step_recorded()
    with pytest.raises(Interrupted, match="while gathering facts"):
        guard.before_session("the next step")


class FakeConn:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_first_ctrl_c_says_so_once_second_closes_every_connection() -> None:
    said: list[str] = []
    interrupt = FleetInterrupt(write=said.append)
    conns = {"a": FakeConn(), "b": FakeConn()}
    for name, conn in conns.items():
        interrupt.started(name)
        interrupt.track(name, conn)
    interrupt.request()
    assert interrupt.stopping.is_set() and not interrupt.aborted.is_set()
    assert said == ["\ninterrupted: finishing the steps in progress on 2 host(s), starting nothing new; "
                    "Ctrl-C again to stop now\n"]
    assert all(c.closed == 0 for c in conns.values())
    interrupt.ended("b")
    interrupt.request()
    assert interrupt.aborted.is_set() and conns["a"].closed == 1 and conns["b"].closed == 0
    assert interrupt.closed == {"a"}
    late = FakeConn()
    interrupt.track("c", late)
    assert late.closed == 1  # a connection opened after the second Ctrl-C is closed at once


def test_sigint_during_a_fleet_run_starts_no_new_host(monkeypatch) -> None:
    """A real SIGINT (to this process, on the main thread) while the first host works."""
    said: list[str] = []
    interrupt = FleetInterrupt(write=said.append)
    ran: list[str] = []

    def work(target: Target) -> HostReport:
        ran.append(target.name)
        if target.name == "a":
            os.kill(os.getpid(), signal.SIGINT)
            assert interrupt.stopping.wait(5)
        return HostReport(target.name, status="changed")

    before = signal.getsignal(signal.SIGINT)
    done: list[str] = []
    reports = run_fleet([Target(n, n) for n in "abc"], work, parallel=1, on_done=lambda r: done.append(r.status),
                        interrupt=interrupt)
    assert signal.getsignal(signal.SIGINT) is before  # handed back
    assert ran == ["a"]
    assert [(r.host, r.status) for r in reports] == [("a", "changed"), ("b", NOT_STARTED), ("c", NOT_STARTED)]
    assert reports[1].error == "not started: interrupted by Ctrl-C"
    assert done == ["changed", NOT_STARTED, NOT_STARTED] and len(said) == 1


def test_batches_after_a_ctrl_c_are_not_started() -> None:
    interrupt = FleetInterrupt(write=lambda text: None)
    both_started = threading.Barrier(2, timeout=5)

    def work(target: Target) -> HostReport:
        both_started.wait()
        interrupt.request()
        return HostReport(target.name, status="ok")

    reports = run_fleet([Target(n, n) for n in "abcd"], work, batch=2, interrupt=interrupt)
    assert [r.status for r in reports] == ["ok", "ok", NOT_STARTED, NOT_STARTED]


class LocalConn:
    """Each session's command runs here with ``sh`` (its stdin given), as sshd would run it."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(runners=SimpleNamespace(remote=None), sudo=SimpleNamespace(password=None))
        self.transport = None
        self.commands: list[str] = []

    def run(self, command: str, hide: bool, warn: bool, in_stream: Any, timeout: float | None) -> Result:
        data = in_stream.read() if in_stream else None
        self.commands.append(data or command)
        proc = subprocess.run(["sh", "-c", command], input=data, capture_output=True, text=True, timeout=30)
        return Result(stdout=proc.stdout, stderr=proc.stderr, exited=proc.returncode, command=command)

    def close(self) -> None:
        pass


def fake_host(monkeypatch: pytest.MonkeyPatch, conn: LocalConn) -> None:
    monkeypatch.setattr(runner, "open_connection", lambda target, config, interrupt=None: Remote(conn))

    def facts(remote: Remote, users: tuple[str, ...]) -> Any:
        remote.run("true")  # one session, through the guard like the real facts script
        remote.as_root = True
        return SimpleNamespace(uid=0, sudo="nopasswd", engine="", os_release={})

    monkeypatch.setattr(runner, "gather_facts", facts)


PLATFORM = SimpleNamespace(name="Test OS")


def test_ctrl_c_between_steps_reports_done_and_not_done(monkeypatch, tmp_path) -> None:
    conn = LocalConn()
    fake_host(monkeypatch, conn)
    interrupt = FleetInterrupt(write=lambda text: None)
    steps = (Step("ready", "already there"), Step("first", "touch a", (Run(f"touch {tmp_path}/a"),)),
             Step("second", "touch b", (Run(f"touch {tmp_path}/b"),)), Step("third", "touch c", (Run("true"),)))

    def apply(remote: Remote, plan: Plan, progress: Any) -> list[StepResult]:
        progress(StepResult("ready", "ok", "already there"))
        remote.root(f"set -e\ntouch {tmp_path}/a")
        interrupt.request()  # Ctrl-C while "first" runs: it finishes and is recorded
        progress(StepResult("first", "changed", "touch a"))
        remote.root(batch_script([(steps[2], f"touch {tmp_path}/b")]))  # never starts
        raise AssertionError("a new step started after Ctrl-C")

    monkeypatch.setattr(runner, "apply_plan", apply)
    printed: list[tuple[str, StepResult]] = []
    report = converge_host(Target("h", "h"), HostsetupConfig(), lambda facts: Plan(PLATFORM, steps),  # type: ignore[arg-type]
                           on_step=lambda h, r: printed.append((h, r)), interrupt=interrupt)
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert report.status == INTERRUPTED
    assert [(s.name, s.status) for s in report.steps] == [("ready", "ok"), ("first", "changed"),
                                                          ("second", INTERRUPTED), ("third", INTERRUPTED)]
    assert report.error == ("interrupted by Ctrl-C before step second; done: first; not done: second, third; "
                            "rerun to finish")
    assert [r.name for _, r in printed] == ["ready", "first"]
    assert report.as_dict()["status"] == "interrupted"


def test_ctrl_c_before_facts_and_before_the_recheck(monkeypatch) -> None:
    conn = LocalConn()
    fake_host(monkeypatch, conn)
    interrupt = FleetInterrupt(write=lambda text: None)
    interrupt.request()
    report = converge_host(Target("h", "h"), HostsetupConfig(), lambda facts: Plan(PLATFORM, ()),  # type: ignore[arg-type]
                           interrupt=interrupt)
    assert report.status == INTERRUPTED and conn.commands == []
    assert report.error == "interrupted by Ctrl-C while gathering facts; done: nothing; rerun to finish"

    later = FleetInterrupt(write=lambda text: None)
    step = Step("only", "one step", (Run("true"),))

    def apply(remote: Remote, plan: Plan, progress: Any) -> list[StepResult]:
        remote.root(batch_script([(step, "true")]))
        later.request()
        progress(StepResult("only", "changed", "one step"))
        return [StepResult("only", "changed", "one step")]

    monkeypatch.setattr(runner, "apply_plan", apply)
    report = converge_host(Target("h", "h"), HostsetupConfig(), lambda facts: Plan(PLATFORM, (step,)),  # type: ignore[arg-type]
                           interrupt=later)
    assert report.status == INTERRUPTED and [s.status for s in report.steps] == ["changed"]
    assert report.error == "interrupted by Ctrl-C before the re-check after applying; done: only"


def test_second_ctrl_c_marks_the_step_it_cut_short(monkeypatch) -> None:
    conn = LocalConn()
    fake_host(monkeypatch, conn)
    interrupt = FleetInterrupt(write=lambda text: None)
    steps = (Step("repository", "write it", (Run("true"),)), Step("packages", "install", (Run("true"),)),
             Step("service", "start", (Run("true"),)))

    def apply(remote: Remote, plan: Plan, progress: Any) -> list[StepResult]:
        interrupt.track("h", FakeConn())
        interrupt.request()
        interrupt.request()  # the connection is closed under the batch: it breaks in "packages"
        results = [StepResult("repository", "changed", "write it"),
                   StepResult("packages", "failed", "install", 1.0, f"{MARK} done repository"),
                   StepResult("service", "skipped", "an earlier step failed")]
        for result in results:
            progress(result)
        return results

    monkeypatch.setattr(runner, "apply_plan", apply)
    printed: list[StepResult] = []
    report = converge_host(Target("h", "h"), HostsetupConfig(), lambda facts: Plan(PLATFORM, steps),  # type: ignore[arg-type]
                           on_step=lambda h, r: printed.append(r), interrupt=interrupt)
    assert report.status == INTERRUPTED
    assert report.error == ("connection closed by the second Ctrl-C during step packages; done: repository; "
                            "cut short: packages (may be half done); not done: service; rerun to finish")
    assert [(s.name, s.status, s.summary) for s in report.steps] == [
        ("repository", "changed", "write it"), ("packages", INTERRUPTED, "install"), ("service", INTERRUPTED, "start")]
    assert all(MARK not in r.error for r in printed)  # the live lines too: no raw session tail


def test_stopped_answering_is_one_line_naming_the_step(monkeypatch) -> None:
    report = HostReport("h", status="failed", error="packages: exit code -1",
                        steps=[StepResult("key", "changed", "k"), StepResult("packages", "failed", "p", 0, "-1"),
                               StepResult("service", "skipped", "an earlier step failed")])
    runner._stopped_answering(report, StepGuard(None), 5)
    assert report.error == "stopped answering: no reply for 5 s during step packages"
    assert report.steps[1].error.startswith("stopped answering: no reply for 5 s during step packages")
    facts = HostReport("h", status="failed", error="cannot connect: EOF")
    guard = StepGuard(None)
    guard.enter("before the re-check after applying")
    runner._stopped_answering(facts, guard, 60)
    assert facts.error == "stopped answering: no reply for 60 s during the re-check after applying"


def test_report_and_exit_code_after_ctrl_c() -> None:
    reports = [HostReport("a", status="changed", steps=[StepResult("packages", "changed", "install")]),
               HostReport("b", system="Rocky", status=INTERRUPTED, error="interrupted by Ctrl-C before step daemon; "
                          "done: packages; not done: daemon; rerun to finish",
                          steps=[StepResult("packages", "changed", "install"),
                                 StepResult("daemon", INTERRUPTED, "set log-driver")]),
               HostReport("c", status=NOT_STARTED, error="not started: interrupted by Ctrl-C")]
    table = "\n".join(fleet_table(reports))
    assert "interrupted by Ctrl-C before step daemon" in table and "not started: interrupted by Ctrl-C" in table
    assert summary_line(reports) == "3 hosts: 1 changed, 1 interrupted, 1 not started"
    block = host_block(reports[1])
    assert "  interrupted daemon         set log-driver" in block
    assert any(line.startswith("  error: interrupted by Ctrl-C before step daemon") for line in block)
    with pytest.raises(Exit) as raised:
        exit_code(reports)
    assert raised.value.code == 130
    with pytest.raises(Exit) as raised:
        exit_code(reports[:1], interrupted=True)  # Ctrl-C after every host was done: still 130
    assert raised.value.code == 130
    with pytest.raises(Exit) as raised:
        exit_code([HostReport("a", status="failed")])
    assert raised.value.code == 1
    exit_code(reports[:1])


def test_a_script_that_survives_a_hangup_goes_on_and_still_cleans_up_on_int(tmp_path: Path) -> None:
    """configure's script: a lost connection (HUP, then PIPE) does not stop it; INT still cleans up."""
    from hostsetup.host.files import cleanup_traps
    marker = tmp_path / "left"
    traps = "\n".join(cleanup_traps(f"rm -f {marker}", survive_hangup=True))
    hup = run_sh(f"touch {marker}\n{traps}\nkill -HUP $$\nkill -PIPE $$\necho went-on")
    assert hup.stdout.strip() == "went-on" and hup.returncode == 0 and not marker.exists()
    marker.touch()
    cut = run_sh(f"{traps}\nkill -INT $$\necho went-on")
    assert cut.returncode == 130 and "went-on" not in cut.stdout and not marker.exists()


def test_a_connection_lost_while_gathering_facts_is_said_so() -> None:
    from invoke.runners import Result

    from hostsetup.remote import RemoteError
    from hostsetup.run.fleet import gather_facts

    class Lost:
        def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> Result:
            return Result(stdout="@@os-release\nID=debian\n", exited=-1)

    with pytest.raises(RemoteError, match="connection was lost while gathering facts"):
        gather_facts(Lost(), ())  # type: ignore[arg-type]
