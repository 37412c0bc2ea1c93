"""Converging a fleet: every host planned and applied (bounded pool, rolling batches), progress as it
goes, the report printed and written, the changed hosts verified, the run's exit code."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from invoke.config import Config
from invoke.exceptions import Exit

from hostsetup.daemon.settings import DaemonSettings
from hostsetup.facts import Wanted
from hostsetup.plan import plan_install
from hostsetup.run.fleet import FleetInterrupt, HostReport, Planner, StepPrinter, converge_host, run_fleet
from hostsetup.run.htmlreport import write_html
from hostsetup.run.report import fleet_table, host_block, summary_line, write_json
from hostsetup.run.status import EXIT_FAILED, INTERRUPTED, NOT_STARTED, exit_code
from hostsetup.run.verify import run_verify
from hostsetup.settings import InstallSettings
from hostsetup.targets import Target


class Progress:
    """On a terminal, one live line (hosts done, changed, failed); otherwise a plain line per host."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.changed, self.failed, self.interrupted = total, 0, 0, 0, 0
        self.tty = sys.stdout.isatty()
        self.lock = threading.Lock()

    def __call__(self, report: HostReport) -> None:
        with self.lock:
            self.done += 1
            self.changed += report.status == "changed"
            self.failed += report.status == "failed"
            self.interrupted += report.status in (INTERRUPTED, NOT_STARTED)
            if self.total == 1:
                return
            if self.tty:
                end = "\n" if self.done == self.total else ""
                stopped = f", {self.interrupted} interrupted" if self.interrupted else ""
                print(f"\r{self.done}/{self.total} hosts done, {self.changed} changed, {self.failed} failed{stopped}",
                      end=end, flush=True)
            else:
                print(f"[{report.host}] {report.status} ({self.done}/{self.total})", flush=True)


def run_converge(config: Config, planners: dict[str, Planner], users: dict[str, tuple[str, ...] | Wanted],
                 dry_run: bool, json_path: str | None, targets: list[Target], html_path: str | None = None,
                 task: str = "install") -> list[HostReport]:
    """Converge every host (bounded pool, rolling batches), print the report, write JSON if asked.

    After a Ctrl-C (see ``runner.FleetInterrupt``) the report is printed and written all the
    same, then the run ends with exit code 130, before anything else (such as install's checks)."""
    many = len(targets) > 1
    printer = StepPrinter(many=many and not sys.stdout.isatty())
    interrupt = FleetInterrupt()
    reports = run_fleet(
        targets, lambda t: converge_host(t, config, planners[t.name], users[t.name], dry_run, printer, interrupt),
        parallel=int(config.parallel), batch=config.batch, max_fail_percent=int(config.max_fail_percent),
        on_done=Progress(len(targets)), interrupt=interrupt)
    if many and not dry_run:
        print("\n".join(fleet_table(reports)))
    else:
        for report in reports:
            print("\n".join(host_block(report, live=not many and not dry_run)))
    print(summary_line(reports))
    if json_path:
        write_json(reports, json_path)
    if html_path:
        write_html(html_path, task, [r.as_dict() for r in reports])
    if interrupt.stopping.is_set():
        exit_code(reports, interrupted=True)
    return reports


def run_install(config: Config, settings: InstallSettings, dry_run: bool, json_path: str | None,
                targets: list[Target], daemon: DaemonSettings | None = None) -> list[HostReport]:
    """Install with the same settings on every target (the demo's case)."""
    planners: dict[str, Planner] = {t.name: partial(plan_install, settings=settings, daemon=daemon) for t in targets}
    return run_converge(config, planners, {t.name: settings.users for t in targets}, dry_run, json_path, targets)


def verify_changed_then_exit(config: Config, targets: list[Target], reports: list[HostReport], skip: bool, what: str,
                             expected: Callable[[Target], dict[str, Any]]) -> None:
    """Run the shipped checks on the hosts the run changed (an unchanged host was just proven by its empty
    plan), then end with the run's exit code, or 1 when a check failed."""
    changed = [t for t, r in zip(targets, reports, strict=True) if r.status == "changed"]
    verified_ok = True
    if changed and not skip:
        print(f"verifying {len(changed)} changed host(s){what}")
        verified = run_verify(config, changed, {t.name: expected(t) for t in changed})
        verified_ok = all(v.status == "passed" for v in verified)
    exit_code(reports)
    if not verified_ok:
        raise Exit(code=EXIT_FAILED)
