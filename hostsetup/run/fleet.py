"""One host, start to finish: connect, gather facts, plan, apply, re-plan, report.

Hosts run in parallel (one connection each); a host's failure is recorded in its
own report and never stops the others.

Faults of the fleet run itself:

* Ctrl-C (SIGINT reaches only the main thread, hosts run on worker threads): the first one
  starts no new host and no new step, lets the steps in progress finish (no host is left in the
  middle of a package transaction or a file write) and reports each host as ``interrupted`` (with
  what was done and what was not) or ``not started``; a second one closes every connection at
  once (:class:`FleetInterrupt`).
* A host that stops answering (frozen, its TCP stack still up): a :class:`~hostsetup.connection.
  Watchdog` on its connection gives up after ``dead_host_timeout`` seconds of silence; that host
  fails with one line saying so, the others go on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import TypeVar

from fabric import Config, Connection
from jinja2 import TemplateError
from paramiko.ssh_exception import NoValidConnectionsError, SSHException

from hostsetup import secrets
from hostsetup.apply import MARK, StepResult, apply_plan, connection_lost
from hostsetup.connection import Watchdog, connect, liveness_kwargs
from hostsetup.errors import HostsetupError
from hostsetup.facts import (
    FactsError,
    HostFacts,
    Wanted,
    containers_script,
    docker_config_path,
    docker_configs_script,
    parse_containers,
    parse_facts,
    parse_file_rows,
    read_files_script,
    split_sections,
)
from hostsetup.inputs.values import batch as checked_batch
from hostsetup.plan import PlanError
from hostsetup.remote import Remote, RemoteError, local_remote, tail
from hostsetup.run.status import INTERRUPTED, NOT_STARTED, Status
from hostsetup.steps import Plan
from hostsetup.targets import LOCAL, Target


@dataclass
class HostReport:
    """What happened on one host."""

    host: str
    system: str = ""
    engine: str = ""              # dockerd's version, as last seen (the re-check's facts after a change)
    status: Status = "ok"
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    sessions: int = 0
    plan_text: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "changed"]

    def as_dict(self) -> dict[str, object]:
        return {"host": self.host, "system": self.system, "engine": self.engine, "status": self.status,
                "error": self.error, "seconds": round(self.seconds, 3),
                "ssh_sessions": self.sessions, "warnings": self.warnings,
                "steps": [{"name": s.name, "status": s.status, "summary": s.summary,
                           "seconds": round(s.seconds, 3), "error": s.error}
                          for s in self.steps]}


def gather_facts(remote: Remote, users: tuple[str, ...] | Wanted) -> HostFacts:
    """The host's facts in one session; files only root can read (hostsetup writes credential-
    bearing files 0600) need a second, root one when sudo asks for a password."""
    wanted = Wanted.of(users)
    result = remote.run(wanted.script(), timeout=60)
    if connection_lost(result):  # reading only: nothing on the host is half-done
        raise RemoteError("the SSH connection was lost while gathering facts (nothing was changed): rerun")
    try:
        facts = parse_facts(result.stdout)
    except FactsError as exc:
        raise RemoteError(f"gathering facts failed ({exc}): {tail(result)}") from None
    remote.as_root, remote.sudo_asks = facts.uid == 0, facts.sudo == "password"
    unreadable = [path for path, content in facts.files.items() if content is None]
    if unreadable and remote.sudo_asks and remote.conn.config.sudo.password:
        configs = {docker_config_path(a.home) for a in facts.homes.values()} if wanted.docker_configs else set()
        facts = replace(facts, files={**facts.files, **read_as_root(remote, unreadable, configs, wanted.users)})
    if wanted.containers and facts.containers is None and remote.sudo_asks and remote.conn.config.sudo.password:
        again = remote.root(containers_script(wanted.containers), timeout=60)
        containers, volumes = parse_containers(split_sections(again.stdout + "\n@@end\n"))
        facts = replace(facts, containers=containers, volumes=volumes)
    return facts


def read_as_root(remote: Remote, paths: list[str], configs: Collection[str] = (),
                 users: tuple[str, ...] = ()) -> dict[str, str | None]:
    """``path -> content`` of files the login user cannot read (None: root cannot either); users'
    client configurations among them (``configs``) are read as their users, through root."""
    script = read_files_script([p for p in paths if p not in configs])
    if set(configs) & set(paths):
        script += "\n" + docker_configs_script(users, login_user=False)
    result = remote.root(script, timeout=60)
    return {**dict.fromkeys(paths), **parse_file_rows(result.stdout.splitlines())}


def describe_plan(plan: Plan) -> list[str]:
    """Every step, command and file diff of a plan; secrets masked."""
    lines = []
    for step in plan.steps:
        lines.append(f"  {'change' if step.changes else 'ok':8} {step.name:14} {step.summary}")
        for op in step.operations:
            lines += [f"      {line}" for line in op.describe()]
    return [secrets.mask(line) for line in lines]


def _check_privileges(facts: HostFacts, config: Config) -> None:
    if facts.uid == 0 or facts.sudo == "nopasswd":
        return
    if facts.sudo == "password" and config.sudo.password:
        return
    if facts.sudo == "password":
        raise HostsetupError(f"sudo asks {facts.user} for a password: run with "
                             "--prompt-for-sudo-password")
    raise HostsetupError(f"{facts.user} is not root and cannot use sudo")


Planner = Callable[[HostFacts], Plan]
R = TypeVar("R")
T = TypeVar("T")




class Interrupted(Exception):
    """Raised on a host's thread where a Ctrl-C keeps it from starting anything new."""


class FleetInterrupt:
    """Ctrl-C during a fleet run, seen by every host's thread.

    The first (``stopping``): no host and no step starts any more; steps in progress finish.
    The second (``aborted``): every open connection is closed now, cutting what runs on it."""

    def __init__(self, write: Callable[[str], object] | None = None) -> None:
        self.stopping = threading.Event()
        self.aborted = threading.Event()
        self.write = write or (lambda text: os.write(2, text.encode()))
        self._lock = threading.RLock()   # a handler may run while the main thread holds it
        self._running: set[str] = set()
        self._open: dict[str, Connection] = {}
        self.closed: set[str] = set()    # hosts whose connection the second Ctrl-C closed

    def started(self, host: str) -> None:
        with self._lock:
            self._running.add(host)

    def ended(self, host: str) -> None:
        with self._lock:
            self._running.discard(host)
            self._open.pop(host, None)

    def track(self, host: str, conn: Connection) -> None:
        """Remember ``conn`` to close it on a second Ctrl-C (closed at once if that came already)."""
        with self._lock:
            self._open[host] = conn
            late = self.aborted.is_set()
        if late:
            self._close(host, conn)

    def request(self) -> None:
        """One Ctrl-C."""
        with self._lock:
            running = sorted(self._running)
            if not self.stopping.is_set():
                self.stopping.set()
                self.write(f"\ninterrupted: finishing the steps in progress on {len(running)} host(s), "
                           "starting nothing new; Ctrl-C again to stop now\n")
                return
            if self.aborted.is_set():
                self.write(f"\nstill stopping: waiting for {len(running)} host(s) to close\n")
                return
            self.aborted.set()
            opened = list(self._open.items())
            self.write(f"\ninterrupted again: closing the connections to {len(opened)} host(s) now\n")
        for host, conn in opened:
            self._close(host, conn)

    def _close(self, host: str, conn: Connection) -> None:
        self.closed.add(host)
        with suppress(Exception):  # closing is all that is left to do; the host's report says the rest
            conn.close()

    @contextmanager
    def on_sigint(self) -> Iterator[None]:
        """Take over SIGINT while the fleet runs (only possible on the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class StepGuard:
    """Asked by a host's ``Remote`` before each new session: after a Ctrl-C, a session that
    would start a new step (or a new phase: facts, the re-check) raises ``Interrupted``; one that
    continues the step in progress (the next command of a multi-command step) runs."""

    def __init__(self, interrupt: FleetInterrupt | None) -> None:
        self.interrupt = interrupt
        self.phase = "while connecting"
        self.between_steps = True

    def enter(self, phase: str) -> None:
        self.phase, self.between_steps = phase, True

    def step_recorded(self) -> None:
        self.between_steps = True

    def before_session(self, what: str) -> None:
        # A batch of steps (apply.batch_script, marked) always starts steps of its own.
        starts_steps = self.between_steps or MARK in what
        if self.interrupt is not None and self.interrupt.stopping.is_set() and starts_steps:
            raise Interrupted(self.phase)
        self.between_steps = False


class NoGreeting(HostsetupError):
    """The port accepted the connection but no SSH greeting (banner) came."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"cannot connect: no SSH greeting within {seconds:g} s (the port accepts connections "
                         "but nothing there speaks SSH)")


def dead_host_timeout(config: Config) -> float:
    return float(config.get("dead_host_timeout", 60) or 0)


def open_connection(target: Target, config: Config, interrupt: FleetInterrupt | None = None) -> Remote:
    """Connect, retrying with backoff on connection errors only (never on a refused key or host key).

    Every wait is bounded: the TCP connect (``-t``/``timeouts.connect``, else ``dead_host_timeout``),
    the SSH greeting, the handshake and authentication (``dead_host_timeout`` each)."""
    if target.address == LOCAL:
        return local_remote()
    attempts = max(1, int(config.get("connect_attempts", 3)))
    silent = dead_host_timeout(config)
    kwargs = {k: v for k, v in dict(config.get("connect_kwargs", {})).items() if k != "key_filename"}
    kwargs.update(liveness_kwargs(config, silent))
    if target.key:
        kwargs["key_filename"] = [target.key]
    # -t N arrives as connect_kwargs["timeout"]; Fabric refuses a second one beside it.
    tcp_timeout = None if "timeout" in kwargs else (config.timeouts.connect or silent or None)
    stopping = interrupt.stopping if interrupt is not None else threading.Event()
    for attempt in range(1, attempts + 1):
        if stopping.is_set():
            raise Interrupted("while connecting")
        conn = connect(target.address, config, connect_kwargs=dict(kwargs), connect_timeout=tcp_timeout)
        if interrupt is not None:
            interrupt.track(target.name, conn)
        try:
            conn.open()
            return Remote(conn)
        except SSHException as exc:
            transport = conn.client.get_transport()
            conn.close()
            if silent and transport is not None and not transport.remote_version:
                raise NoGreeting(silent) from exc  # paramiko says something vaguer ("No existing session")
            raise
        except (NoValidConnectionsError, TimeoutError, ConnectionError, EOFError):
            conn.close()
            if attempt == attempts:
                raise
            stopping.wait(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


CUT_SHORT = "connection closed by the second Ctrl-C while this step ran"


def _interrupted_report(report: HostReport, plan: Plan | None, done: list[StepResult], where: str,
                        cut: bool) -> None:
    """``report`` says what a Ctrl-C left: each step done, cut short (``cut``: the second Ctrl-C
    closed the connection under it) or not done, all in one line."""
    recorded = {r.name: r for r in done}
    results = []
    for step in plan.steps if plan is not None else ():
        result = recorded.get(step.name)
        if result is not None and (result.status in ("ok", "changed", INTERRUPTED)
                                   or (result.status == "failed" and not cut)):
            result = replace(result, summary=step.summary) if result.status == INTERRUPTED else result
        elif result is not None and result.status == "failed":
            result = replace(result, status=INTERRUPTED, error=CUT_SHORT)
        elif not step.changes:
            result = StepResult(step.name, "ok", step.summary)
        else:
            result = StepResult(step.name, INTERRUPTED, step.summary)
        results.append(result)
    report.steps = results
    report.status = INTERRUPTED
    changed = [r.name for r in results if r.status == "changed"]
    cut_short = [r.name for r in results if r.status == INTERRUPTED and r.error]
    not_done = [r.name for r in results if r.status == INTERRUPTED and not r.error]
    how = "connection closed by the second Ctrl-C" if cut else "interrupted by Ctrl-C"
    parts = [f"{how} {where}", f"done: {', '.join(changed) or 'nothing'}"]
    if cut_short:
        parts.append(f"cut short: {', '.join(cut_short)} (may be half done)")
    if not_done:
        parts.append(f"not done: {', '.join(not_done)}")
    report.error = "; ".join(parts) + ("; rerun to finish" if cut_short or not_done or plan is None else "")


def converge_host(target: Target, config: Config, make_plan: Planner, users: tuple[str, ...] | Wanted = (),
                  dry_run: bool = False,
                  on_step: Callable[[str, StepResult], None] = lambda h, r: None,
                  interrupt: FleetInterrupt | None = None) -> HostReport:
    """Facts, plan, apply, re-plan on one host; every failure ends up in the report, never raised."""
    report = HostReport(target.name)
    start = time.monotonic()
    remote: Remote | None = None
    watchdog: Watchdog | None = None
    guard = StepGuard(interrupt)
    plan: Plan | None = None
    done: list[StepResult] = []

    def recorded(result: StepResult) -> None:
        done.append(_as_cut(result, watchdog, interrupt, target.name))
        guard.step_recorded()
        on_step(target.name, done[-1])

    try:
        remote = open_connection(target, config, interrupt)
        transport = getattr(remote.conn, "transport", None)  # None: not a paramiko connection (tests)
        if dead_host_timeout(config) > 0 and transport is not None:
            watchdog = Watchdog(transport, dead_host_timeout(config), name=target.name).start()
        remote.before_session = guard.before_session
        guard.enter("while gathering facts")
        facts = gather_facts(remote, users)
        report.engine = facts.engine
        report.system = facts.os_release.get("PRETTY_NAME", "")  # also when planning fails on this host
        plan = make_plan(facts)
        report.warnings = [w for step in plan.steps for w in step.warnings]
        report.system = plan.platform.name
        if dry_run:
            _planned(report, plan)
            return report
        if plan.changes:
            _check_privileges(facts, config)
        guard.enter("before the first step")
        report.steps = apply_plan(remote, plan, recorded)
        _recheck(report, plan, lambda: gather_facts(remote, users), make_plan, guard)
    except Interrupted as exc:
        _interrupted_report(report, plan, done, _before_next_step(plan, done) or str(exc), cut=False)
    except Exception as exc:  # one host's surprise must not take the others down
        report.status, report.error = "failed", _failure(exc)
    finally:
        _close(report, remote, watchdog, interrupt, target.name)
        report.seconds = time.monotonic() - start
    _say_why_cut(report, plan, done, guard, watchdog, interrupt, target.name)
    return report


def _as_cut(result: StepResult, watchdog: Watchdog | None, interrupt: FleetInterrupt | None, host: str) -> StepResult:
    """A step the watchdog or a second Ctrl-C cut off says so as it is printed, not with the raw tail
    of a broken session."""
    if watchdog is not None and watchdog.fired.is_set() and result.status == "failed":
        return replace(result, error=_stopped_line(watchdog.timeout, f"during step {result.name}"))
    if interrupt is not None and host in interrupt.closed and result.status in ("failed", "skipped"):
        return replace(result, status=INTERRUPTED, summary=result.summary if result.status == "failed"
                       else "not done", error=CUT_SHORT if result.status == "failed" else "")
    return result


def _close(report: HostReport, remote: Remote | None, watchdog: Watchdog | None, interrupt: FleetInterrupt | None,
           host: str) -> None:
    if watchdog is not None:
        watchdog.stop()
    if remote is not None:
        report.sessions = remote.sessions
        remote.conn.close()
    if interrupt is not None:
        interrupt.ended(host)


def _say_why_cut(report: HostReport, plan: Plan | None, done: list[StepResult], guard: StepGuard,
                 watchdog: Watchdog | None, interrupt: FleetInterrupt | None, host: str) -> None:
    """A host the watchdog gave up on, or a second Ctrl-C cut off, says where it stopped."""
    if watchdog is not None and watchdog.fired.is_set() and report.status not in ("ok", "changed"):
        _stopped_answering(report, guard, watchdog.timeout)
    elif interrupt is not None and host in interrupt.closed and report.status == "failed":
        cut = next((s.name for s in done if s.status == INTERRUPTED and s.error), None)
        _interrupted_report(report, plan, done, f"during step {cut}" if cut
                            else guard.phase.replace("before", "during", 1), cut=True)


def _planned(report: HostReport, plan: Plan) -> None:
    """``--dry-run``: the plan, as the report."""
    report.status = "planned" if plan.changes else "ok"
    report.plan_text = describe_plan(plan)
    report.steps = [StepResult(s.name, "planned" if s.changes else "ok", s.summary) for s in plan.steps]


def _recheck(report: HostReport, plan: Plan, facts: Callable[[], HostFacts], make_plan: Planner,
             guard: StepGuard) -> None:
    """After applying: failed (the first failed step), or changed and converged (the re-plan is empty)."""
    failed = [s for s in report.steps if s.status == "failed"]
    if failed:
        report.status, report.error = "failed", f"{failed[0].name}: {failed[0].error}"
    elif plan.changes:
        report.status = "changed"
        # The re-plan reads the group database, so no new login session is needed here;
        # whatever must run with the user's new groups opens its own connection.
        guard.enter("before the re-check after applying")
        again_facts = facts()
        report.engine = again_facts.engine
        again = make_plan(again_facts)
        if again.changes:
            report.status = "failed"
            report.error = ("not converged after applying; still to do: "
                            + ", ".join(f"{s.name} ({s.summary})" for s in again.changes))


def _failure(exc: Exception) -> str:
    """What a host's run ending in ``exc`` says."""
    if isinstance(exc, HostsetupError | PlanError):
        return str(exc)
    if isinstance(exc, TemplateError):  # a packaging fault, not the network's
        return f"internal error: template {exc}"
    if isinstance(exc, TimeoutError | SSHException | OSError | EOFError):
        return f"cannot connect: {exc or type(exc).__name__}"
    return f"internal error: {type(exc).__name__}: {exc}"


def _before_next_step(plan: Plan | None, done: list[StepResult]) -> str:
    """``before step X`` for the first step of ``plan`` with something to do that has no result yet."""
    if plan is None or not done:
        return ""
    recorded = {r.name for r in done}
    step = next((s for s in plan.steps if s.changes and s.name not in recorded), None)
    return f"before step {step.name}" if step is not None else ""


def _stopped_line(timeout: float, where: str) -> str:
    return f"stopped answering: no reply for {timeout:g} s {where}"


def _stopped_answering(report: HostReport, guard: StepGuard, timeout: float) -> None:
    """The watchdog gave the host up: one line naming the step (or phase) it stopped in."""
    failed = next((s for s in report.steps if s.status == "failed"), None)
    where = f"during step {failed.name}" if failed is not None else guard.phase.replace("before", "during", 1)
    report.status, report.error = "failed", _stopped_line(timeout, where)
    if failed is not None:
        report.steps = [replace(s, error=f"{report.error} (connection closed; rerun once the host answers)")
                        if s is failed else s for s in report.steps]


def run_hosts(targets: Sequence[T], work: Callable[[T], R], parallel: int = 10) -> list[R]:
    """Run ``work`` for each host with a bounded pool; reports in the given host order."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
        return list(pool.map(work, targets))


def batch_size(batch: str | int | None, total: int) -> int:
    """``"25%"`` of 20 hosts -> 5; ``"3"`` -> 3; nothing -> all at once."""
    text = checked_batch(str(batch or ""), "--batch")  # the validation layer's one reading of it
    if not text:
        return max(1, total)
    return max(1, -(-total * int(text[:-1]) // 100)) if text.endswith("%") else int(text)


def not_started(target: Target) -> HostReport:
    return HostReport(target.name, status=NOT_STARTED, error="not started: interrupted by Ctrl-C")


def run_fleet(targets: Sequence[Target], work: Callable[[Target], HostReport], parallel: int = 10,
              batch: str | int | None = None, max_fail_percent: int = 100,
              on_done: Callable[[HostReport], None] = lambda r: None,
              interrupt: FleetInterrupt | None = None) -> list[HostReport]:
    """Work on hosts in rolling batches, each host independently (no lock-step inside a batch);
    once more than ``max_fail_percent`` of the hosts failed, later batches are not started.

    With ``interrupt`` (which ``work`` must watch too), a Ctrl-C starts no further host (each is
    reported ``not started``) and lets the hosts in progress end as their guard says."""
    size = batch_size(batch, len(targets))
    reports: list[HostReport] = []

    def tracked(target: Target) -> HostReport:
        if interrupt is not None and interrupt.stopping.is_set():
            report = not_started(target)
        else:
            if interrupt is not None:
                interrupt.started(target.name)
            try:
                report = work(target)
            finally:
                if interrupt is not None:
                    interrupt.ended(target.name)
        on_done(report)
        return report

    with interrupt.on_sigint() if interrupt is not None else nullcontext():
        for start in range(0, len(targets), size):
            if interrupt is not None and interrupt.stopping.is_set():
                reports += [not_started(t) for t in targets[start:]]
                break
            failed = sum(1 for r in reports if r.status == "failed")
            if reports and failed * 100 > max_fail_percent * len(targets):
                reports += [HostReport(t.name, status="skipped",
                                       error=f"not started: {failed} of {len(targets)} hosts failed, more than "
                                             f"--max-fail-percent {max_fail_percent}") for t in targets[start:]]
                break
            reports += run_hosts(targets[start:start + size], tracked, parallel)
    return reports


class StepPrinter:
    """Prints one line per finished step, prefixed by the host when there are several."""

    def __init__(self, many: bool) -> None:
        self.many = many
        self.lock = threading.Lock()

    def __call__(self, host: str, result: StepResult) -> None:
        if result.status == "ok":
            return
        prefix = f"[{host}] " if self.many else ""
        with self.lock:
            print(f"{prefix}{result.status:8} {result.name:14} {result.summary}"
                  + (f" ({result.seconds:.1f}s)" if result.seconds else ""), flush=True)
            for line in result.error.splitlines():
                print(f"{prefix}{'':8} {line}", flush=True)
