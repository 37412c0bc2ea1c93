"""``hostsetup -H HOSTS uninstall``: take Docker Engine off hosts (their data stays unless --purge-data)."""

from __future__ import annotations

from functools import partial

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.facts import Wanted
from hostsetup.run.converge import run_converge, verify_changed_then_exit
from hostsetup.run.fleet import Planner
from hostsetup.run.settings import settings_from, target_hosts
from hostsetup.run.status import EXIT_BAD_INPUT
from hostsetup.uninstall import DATA_DIRS, UninstallSettings, plan_uninstall, wanted


@task(help={
    "purge-data": f"also delete {', '.join(DATA_DIRS)} (images, containers, volumes, daemon.json); needs --yes",
    "yes": "confirm --purge-data (see first what it deletes, with sizes, in --dry-run)",
    "dry-run": "print every command; change nothing",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the run to this file (sortable, filterable, offline)",
    "no-verify": "skip the checks that nothing is left, run after a run that changed a host",
})
def uninstall(c: Context, purge_data: bool = False, yes: bool = False, dry_run: bool = False,
              json: str | None = None, html: str | None = None, no_verify: bool = False) -> None:
    """Stop and remove Docker Engine, its hold, hostsetup's repository file, key and drop-ins; keep the data."""
    if purge_data and not yes and not dry_run:
        raise Exit(f"hostsetup: --purge-data deletes {', '.join(DATA_DIRS)} on every host: add --yes "
                   "(--dry-run lists what it would delete, with sizes)", code=EXIT_BAD_INPUT)
    targets = target_hosts(c.config)
    settings = {t.name: UninstallSettings(purge_data, settings_from(c.config, t).lock_timeout) for t in targets}
    planners: dict[str, Planner] = {t.name: partial(plan_uninstall, settings=settings[t.name]) for t in targets}
    facts: dict[str, tuple[str, ...] | Wanted] = {t.name: wanted(settings[t.name]) for t in targets}
    reports = run_converge(c.config, planners, facts, dry_run, json, targets, html, "uninstall")
    verify_changed_then_exit(c.config, targets, reports, dry_run or no_verify, ": nothing of Docker Engine left",
                             lambda t: {"absent": True, "purge_data": purge_data})
