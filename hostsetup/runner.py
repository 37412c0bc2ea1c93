"""One host, start to finish: connect, gather facts, plan, apply, re-plan, report.

Hosts run in parallel (one connection each); a host's failure is recorded in its
own report and never stops the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from fabric import Config
from jinja2 import TemplateError
from paramiko.ssh_exception import NoValidConnectionsError, SSHException

from hostsetup import secrets
from hostsetup.apply import StepResult, apply_plan
from hostsetup.connection import connect
from hostsetup.errors import HostsetupError
from hostsetup.facts import FactsError, HostFacts, facts_script, parse_facts, parse_file_rows, read_files_script
from hostsetup.plan import PlanError
from hostsetup.remote import Remote, RemoteError, tail
from hostsetup.steps import Plan
from hostsetup.targets import Target


@dataclass
class HostReport:
    """What happened on one host."""

    host: str
    system: str = ""
    status: str = "ok"            # ok, changed, failed, planned
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
        return {"host": self.host, "system": self.system, "status": self.status,
                "error": self.error, "seconds": round(self.seconds, 3),
                "ssh_sessions": self.sessions, "warnings": self.warnings,
                "steps": [{"name": s.name, "status": s.status, "summary": s.summary,
                           "seconds": round(s.seconds, 3), "error": s.error}
                          for s in self.steps]}


def gather_facts(remote: Remote, users: tuple[str, ...]) -> HostFacts:
    """The host's facts in one session; files only root can read (hostsetup writes credential-
    bearing files 0600) need a second, root one when sudo asks for a password."""
    result = remote.run(facts_script(users), timeout=60)
    try:
        facts = parse_facts(result.stdout)
    except FactsError as exc:
        raise RemoteError(f"gathering facts failed ({exc}): {tail(result)}") from None
    remote.as_root, remote.sudo_asks = facts.uid == 0, facts.sudo == "password"
    unreadable = [path for path, content in facts.files.items() if content is None]
    if unreadable and remote.sudo_asks and remote.conn.config.sudo.password:
        facts = replace(facts, files={**facts.files, **read_as_root(remote, unreadable)})
    return facts


def read_as_root(remote: Remote, paths: list[str]) -> dict[str, str | None]:
    """``path -> content`` of files the login user cannot read (None: root cannot either)."""
    result = remote.root(read_files_script(paths), timeout=60)
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


def open_connection(target: Target, config: Config) -> Remote:
    """Connect, retrying with backoff on connection errors only (never on a refused key or host key)."""
    attempts = max(1, int(config.get("connect_attempts", 3)))
    for attempt in range(1, attempts + 1):
        conn = connect(target.address, config,
                       connect_kwargs={"key_filename": [target.key]} if target.key else {})
        try:
            conn.open()
            return Remote(conn)
        except (NoValidConnectionsError, TimeoutError, ConnectionError, EOFError):
            conn.close()
            if attempt == attempts:
                raise
            time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def converge_host(target: Target, config: Config, make_plan: Planner, users: tuple[str, ...] = (),
                  dry_run: bool = False,
                  on_step: Callable[[str, StepResult], None] = lambda h, r: None) -> HostReport:
    """Facts, plan, apply, re-plan on one host; every failure ends up in the report, never raised."""
    report = HostReport(target.name)
    start = time.monotonic()
    remote: Remote | None = None
    try:
        remote = open_connection(target, config)
        facts = gather_facts(remote, users)
        plan = make_plan(facts)
        report.warnings = [w for step in plan.steps for w in step.warnings]
        report.system = plan.platform.name
        if dry_run:
            report.status = "planned" if plan.changes else "ok"
            report.plan_text = describe_plan(plan)
            report.steps = [StepResult(s.name, "planned" if s.changes else "ok", s.summary)
                            for s in plan.steps]
            return report
        if plan.changes:
            _check_privileges(facts, config)
        report.steps = apply_plan(remote, plan, lambda r: on_step(target.name, r))
        failed = [s for s in report.steps if s.status == "failed"]
        if failed:
            report.status, report.error = "failed", f"{failed[0].name}: {failed[0].error}"
        elif plan.changes:
            report.status = "changed"
            # The re-plan reads the group database, so no new login session is needed here;
            # whatever must run with the user's new groups opens its own connection.
            again = make_plan(gather_facts(remote, users))
            if again.changes:
                report.status = "failed"
                report.error = ("not converged after applying; still to do: "
                                + ", ".join(f"{s.name} ({s.summary})" for s in again.changes))
    except (HostsetupError, PlanError) as exc:
        report.status, report.error = "failed", str(exc)
    except TemplateError as exc:  # a packaging fault, not the network's
        report.status, report.error = "failed", f"internal error: template {exc}"
    except (TimeoutError, SSHException, OSError, EOFError) as exc:
        report.status, report.error = "failed", f"cannot connect: {exc or type(exc).__name__}"
    except Exception as exc:  # one host's surprise must not take the others down
        report.status, report.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        if remote is not None:
            report.sessions = remote.sessions
            remote.conn.close()
        report.seconds = time.monotonic() - start
    return report


def run_hosts(targets: Sequence[T], work: Callable[[T], R], parallel: int = 10) -> list[R]:
    """Run ``work`` for each host with a bounded pool; reports in the given host order."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
        return list(pool.map(work, targets))


def batch_size(batch: str | int | None, total: int) -> int:
    """``"25%"`` of 20 hosts -> 5; ``"3"`` -> 3; nothing -> all at once."""
    text = str(batch or "").strip()
    if not text:
        return max(1, total)
    try:
        size = -(-total * int(text[:-1]) // 100) if text.endswith("%") else int(text)
    except ValueError:
        raise HostsetupError(f"--batch {text!r} is neither a number of hosts nor a percentage") from None
    if size < 1:
        raise HostsetupError(f"--batch {text!r} selects no host")
    return size


def run_fleet(targets: Sequence[Target], work: Callable[[Target], HostReport], parallel: int = 10,
              batch: str | int | None = None, max_fail_percent: int = 100,
              on_done: Callable[[HostReport], None] = lambda r: None) -> list[HostReport]:
    """Work on hosts in rolling batches, each host independently (no lock-step inside a batch);
    once more than ``max_fail_percent`` of the hosts failed, later batches are not started."""
    size = batch_size(batch, len(targets))
    reports: list[HostReport] = []

    def tracked(target: Target) -> HostReport:
        report = work(target)
        on_done(report)
        return report

    for start in range(0, len(targets), size):
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
