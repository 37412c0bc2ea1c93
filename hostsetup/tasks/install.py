"""``hostsetup -H HOSTS install``: Docker Engine, the official way (and daemon.json when configured)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from invoke import Context, Exit, task

from hostsetup.bundle import Bundle, read_bundle
from hostsetup.daemon.plan import registry_ca_files
from hostsetup.daemon.settings import DaemonSettings, daemon_settings
from hostsetup.errors import HostsetupError
from hostsetup.facts import Wanted
from hostsetup.htmlreport import write_html
from hostsetup.inputs.config import check_tree
from hostsetup.inventory import deep_merge
from hostsetup.plan import plan_install
from hostsetup.report import fleet_table, host_block, summary_line, write_json
from hostsetup.runner import (
    INTERRUPTED,
    NOT_STARTED,
    FleetInterrupt,
    HostReport,
    Planner,
    StepPrinter,
    converge_host,
    run_fleet,
)
from hostsetup.settings import INSTALL_DEFAULTS, InstallSettings, install_settings
from hostsetup.targets import Target, targets_from


def target_hosts(c: Context, local: bool = False) -> list[Target]:
    """The hosts given (-H, --inventory), or with ``local`` this machine alone."""
    return targets_from(c.config, local)


def _flags(flags: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flags.items() if v not in (None, "", (), [], {})}


def settings_from(c: Context, target: Target | None = None, **flags: Any) -> InstallSettings:
    """Config layers (files, HOSTSETUP_INSTALL_* env), then the host's inventory settings, then flags."""
    raw = deep_merge(dict(c.config.install), target.install if target else {})
    given = _flags(flags)
    check_tree(given, INSTALL_DEFAULTS, lambda path, mapping, key: "--" + key.replace("_", "-"), ("install",))
    try:
        return install_settings({**raw, **given})
    except HostsetupError as exc:
        raise HostsetupError(f"{target.name}: {exc}" if target and target.install else str(exc)) from None


def daemon_from(c: Context, target: Target | None = None, **flags: Any) -> DaemonSettings:
    """The ``daemon`` settings (config, the host's inventory entry, flags), rendered and validated
    here, before any host is touched."""
    from hostsetup.daemon.plan import DaemonPlanError, check_settings

    raw = deep_merge({k: (dict(v) if hasattr(v, "keys") else v) for k, v in dict(c.config.daemon).items()},
                     target.daemon if target else {})
    overrides = _flags(flags)
    for merged in ("settings", "registry_cas"):  # flags add keys to these mappings, not replace them
        if merged in overrides:
            overrides[merged] = {**(raw.get(merged) or {}), **overrides[merged]}
    where = f"{target.name}: " if target and target.daemon else ""
    try:
        settings = daemon_settings({**raw, **overrides})
        check_settings(settings)
    except (DaemonPlanError, HostsetupError) as exc:
        raise HostsetupError(f"{where}{exc}") from None
    return settings


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


def run_converge(c: Context, planners: dict[str, Planner], users: dict[str, tuple[str, ...] | Wanted], dry_run: bool,
                 json_path: str | None, targets: list[Target], html_path: str | None = None,
                 task: str = "install") -> list[HostReport]:
    """Converge every host (bounded pool, rolling batches), print the report, write JSON if asked.

    After a Ctrl-C (see ``runner.FleetInterrupt``) the report is printed and written all the
    same, then the run ends with exit code 130, before anything else (such as install's checks)."""
    many = len(targets) > 1
    printer = StepPrinter(many=many and not sys.stdout.isatty())
    interrupt = FleetInterrupt()
    reports = run_fleet(
        targets, lambda t: converge_host(t, c.config, planners[t.name], users[t.name], dry_run, printer, interrupt),
        parallel=int(c.config.parallel), batch=c.config.batch, max_fail_percent=int(c.config.max_fail_percent),
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


def run_install(c: Context, settings: InstallSettings, dry_run: bool, json_path: str | None,
                targets: list[Target], daemon: DaemonSettings | None = None) -> list[HostReport]:
    """Install with the same settings on every target (the demo's case)."""
    planners: dict[str, Planner] = {t.name: partial(plan_install, settings=settings, daemon=daemon) for t in targets}
    return run_converge(c, planners, {t.name: settings.users for t in targets}, dry_run, json_path, targets)


def verify_changed_then_exit(c: Context, targets: list[Target], reports: list[HostReport], skip: bool, what: str,
                             expected: Callable[[Target], dict[str, Any]]) -> None:
    """Run the shipped checks on the hosts the run changed (an unchanged host was just proven by its empty
    plan), then end with the run's exit code, or 1 when a check failed."""
    changed = [t for t, r in zip(targets, reports, strict=True) if r.status == "changed"]
    verified_ok = True
    if changed and not skip:
        from hostsetup.tasks.verify import run_verify  # (tasks.verify imports this module)

        print(f"verifying {len(changed)} changed host(s){what}")
        verified = run_verify(c, changed, {t.name: expected(t) for t in changed})
        verified_ok = all(v.status == "passed" for v in verified)
    exit_code(reports)
    if not verified_ok:
        raise Exit(code=1)


def from_bundle(settings: InstallSettings, bundle: Bundle) -> InstallSettings:
    """Install settings whose repository is the bundle on the host, at the bundle's version."""
    return replace(settings, mirror_name="bundle", mirror_url=bundle.url, version=bundle.version)


def exit_code(reports: list[HostReport], interrupted: bool = False) -> None:
    """0: every host ok or changed; 1: a host failed or was not started; 130: Ctrl-C stopped the run."""
    if interrupted or any(r.status in (INTERRUPTED, NOT_STARTED) for r in reports):
        raise Exit("hostsetup: interrupted; the report above says what each host did (rerun to finish)", code=130)
    if any(r.status in ("failed", "skipped") for r in reports):
        raise Exit(code=1)


INSTALL_FLAG_HELP = {
    "mirror": "repository: official, aliyun, tuna, ustc, tencent, huawei, azure-china or a URL",
    "insecure-mirror": "allow a plain http:// mirror (packages are still signature-checked)",
    "key-fingerprint": "expected fingerprint of the repository key (private mirrors)",
    "version": "pin docker-ce and docker-ce-cli: 25.0, 25.0.3 or an exact package version",
    "hold": "hold the pinned packages (apt-mark hold / dnf versionlock); with --version, moves a hold",
    "allow-downgrade": "let --version go below the installed version",
    "no-plugins": "skip docker-buildx-plugin and docker-compose-plugin",
    "users": "comma-separated users to add to the docker group",
}


def install_flags(mirror: str | None, insecure_mirror: bool, key_fingerprint: str | None, version: str | None,
                  hold: bool, allow_downgrade: bool, no_plugins: bool, users: str | None) -> dict[str, Any]:
    """The install settings that install's flags give (``settings_from`` merges them over the config)."""
    return {"mirror": mirror, "insecure_mirror": insecure_mirror or None, "key_fingerprint": key_fingerprint,
            "version": version, "hold": hold or None, "allow_downgrade": allow_downgrade or None,
            "plugins": False if no_plugins else None, "users": users}


@task(help={
    **INSTALL_FLAG_HELP,
    "dry-run": "print every command and file diff; change nothing",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the run to this file (sortable, filterable, offline)",
    "no-verify": "skip the testinfra checks that run after a run that changed a host",
    "bundle": "install from this offline bundle (`hostsetup bundle`): uploaded once, no repository needed",
    "bundle-sha256": "the bundle's sha256 as `hostsetup bundle` printed it: refuse any other archive",
    "local": "work on this machine itself, no SSH (as root or through passwordless sudo)",
})
def install(c: Context, mirror: str | None = None, insecure_mirror: bool = False,
            key_fingerprint: str | None = None, version: str | None = None, hold: bool = False,
            allow_downgrade: bool = False, no_plugins: bool = False, users: str | None = None, dry_run: bool = False,
            json: str | None = None, no_verify: bool = False, html: str | None = None,
            bundle: str | None = None, bundle_sha256: str | None = None, local: bool = False) -> None:
    """Install Docker Engine from the docker-ce repository; also daemon.json when `daemon` is configured."""
    if bundle_sha256 and not bundle:
        raise Exit("hostsetup: --bundle-sha256 pins the archive given with --bundle: give --bundle FILE too", code=2)
    offline = read_bundle(bundle) if bundle else None
    if offline and bundle_sha256 and bundle_sha256.strip().lower() != offline.sha256:
        raise Exit(f"hostsetup: --bundle {bundle} has sha256 {offline.sha256}, not the {bundle_sha256.strip()} "
                   "given with --bundle-sha256: refusing it", code=2)
    if offline and (mirror or insecure_mirror):
        raise Exit("hostsetup: --bundle is the repository: it takes no --mirror or --insecure-mirror", code=2)
    if offline and version and not (offline.version + ".").startswith(version + "."):
        raise Exit(f"hostsetup: the bundle carries docker-ce {offline.version}, not --version {version}", code=2)
    flags = install_flags(mirror, insecure_mirror, key_fingerprint, version, hold, allow_downgrade, no_plugins, users)
    targets = target_hosts(c, local)
    settings = {t.name: settings_from(c, t, **flags) for t in targets}
    if offline:
        settings = {name: from_bundle(s, offline) for name, s in settings.items()}
    daemons = {t.name: daemon_from(c, t) for t in targets}
    planners: dict[str, Planner] = {
        t.name: partial(plan_install, settings=settings[t.name], daemon=daemons[t.name], bundle=offline)
        for t in targets}
    wanted: dict[str, tuple[str, ...] | Wanted] = {
        t.name: Wanted(settings[t.name].users, (*registry_ca_files(daemons[t.name]),
                                                *((offline.marker,) if offline else ())),
                       packages=offline.extra_names if offline else (),
                       engine_state=bool(settings[t.name].version)) for t in targets}
    reports = run_converge(c, planners, wanted, dry_run, json, targets, html, "install")
    from hostsetup.tasks.verify import expected_state

    verify_changed_then_exit(c, targets, reports, dry_run or no_verify, " with the shipped testinfra checks",
                             lambda t: expected_state(settings[t.name], daemons[t.name], smoke=False))

