"""``hostsetup -H HOSTS install``: Docker Engine, the official way (and daemon.json when configured)."""

from __future__ import annotations

from typing import Any

from invoke import Context, Exit, task

from hostsetup.daemon.settings import DaemonSettings, daemon_settings
from hostsetup.errors import HostsetupError
from hostsetup.plan import plan_install
from hostsetup.report import host_block, summary_line, write_json
from hostsetup.runner import HostReport, Planner, StepPrinter, converge_host, run_hosts
from hostsetup.settings import InstallSettings, install_settings


def target_hosts(c: Context) -> list[str]:
    hosts = list(c.config.hosts)
    if not hosts:
        raise HostsetupError("no hosts given: use -H user@host[:port][,user@host...]")
    return hosts


def settings_from(c: Context, **flags: Any) -> InstallSettings:
    """Config layers (files, HOSTSETUP_INSTALL_* env) overridden by the flags given."""
    raw = dict(c.config.install)
    raw.update({k: v for k, v in flags.items() if v not in (None, "", ())})
    return install_settings(raw)


def daemon_from(c: Context, **flags: Any) -> DaemonSettings:
    """The ``daemon`` config section with flags on top, rendered and validated here, before any host."""
    from hostsetup.daemon.plan import DaemonPlanError, check_settings

    raw = {k: (dict(v) if hasattr(v, "keys") else v) for k, v in dict(c.config.daemon).items()}
    overrides = {k: v for k, v in flags.items() if v not in (None, "", (), [], {})}
    if "settings" in overrides:
        overrides["settings"] = {**raw.get("settings", {}), **overrides["settings"]}
    settings = daemon_settings({**raw, **overrides})
    try:
        check_settings(settings)
    except DaemonPlanError as exc:
        raise HostsetupError(str(exc)) from None
    return settings


def run_converge(c: Context, make_plan: Planner, users: tuple[str, ...], dry_run: bool,
                 json_path: str | None, hosts: list[str]) -> list[HostReport]:
    """Converge every host in parallel, print the per-host report, write JSON if asked."""
    printer = StepPrinter(many=len(hosts) > 1)
    reports = run_hosts(hosts, lambda h: converge_host(h, c.config, make_plan, users, dry_run, printer),
                        parallel=int(c.config.parallel))
    for report in reports:
        print("\n".join(host_block(report, live=len(hosts) == 1 and not dry_run)))
    print(summary_line(reports))
    if json_path:
        write_json(reports, json_path)
    return reports


def run_install(c: Context, settings: InstallSettings, dry_run: bool, json_path: str | None,
                hosts: list[str], daemon: DaemonSettings | None = None) -> list[HostReport]:
    return run_converge(c, lambda facts: plan_install(facts, settings, daemon), settings.users, dry_run,
                        json_path, hosts)


@task(help={
    "mirror": "repository: official, aliyun, tuna, ustc, tencent, huawei, azure-china or a URL",
    "insecure-mirror": "allow a plain http:// mirror (packages are still signature-checked)",
    "key-fingerprint": "expected fingerprint of the repository key (private mirrors)",
    "version": "pin docker-ce and docker-ce-cli: 25.0, 25.0.3 or an exact package version",
    "hold": "hold the pinned packages (apt-mark hold / dnf versionlock)",
    "no-plugins": "skip docker-buildx-plugin and docker-compose-plugin",
    "users": "comma-separated users to add to the docker group",
    "dry-run": "print every command and file diff; change nothing",
    "json": "write a machine-readable report to this file",
    "no-verify": "skip the testinfra checks that run after a run that changed a host",
})
def install(c: Context, mirror: str | None = None, insecure_mirror: bool = False,
            key_fingerprint: str | None = None, version: str | None = None, hold: bool = False,
            no_plugins: bool = False, users: str | None = None, dry_run: bool = False,
            json: str | None = None, no_verify: bool = False) -> None:
    """Install Docker Engine from the docker-ce repository; also daemon.json when `daemon` is configured."""
    settings = settings_from(c, mirror=mirror, insecure_mirror=insecure_mirror or None,
                             key_fingerprint=key_fingerprint, version=version,
                             hold=hold or None, plugins=False if no_plugins else None,
                             users=users)
    daemon = daemon_from(c)
    reports = run_install(c, settings, dry_run, json, target_hosts(c), daemon)
    changed = [r.host for r in reports if r.status == "changed"]
    verified_ok = True
    if changed and not dry_run and not no_verify:
        # A converged, unchanged host was just proven by its empty plan; changed ones get the checks.
        from hostsetup.tasks.verify import expected_state, run_verify

        print(f"verifying {len(changed)} changed host(s) with the shipped testinfra checks")
        verified = run_verify(c, changed, expected_state(settings, daemon, smoke=False))
        verified_ok = all(v.status == "passed" for v in verified)
    if any(r.status == "failed" for r in reports) or not verified_ok:
        raise Exit(code=1)
