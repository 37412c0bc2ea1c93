"""``hostsetup -H HOSTS install``: Docker Engine, the official way (and daemon.json when configured)."""

from __future__ import annotations

from functools import partial
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.bundle import read_bundle
from hostsetup.daemon.plan import registry_ca_files
from hostsetup.facts import Wanted
from hostsetup.plan import plan_install
from hostsetup.run.converge import run_converge, verify_changed_then_exit
from hostsetup.run.fleet import (
    Planner,
)
from hostsetup.run.settings import daemon_from, from_bundle, settings_from, target_hosts
from hostsetup.run.status import EXIT_BAD_INPUT
from hostsetup.run.verify import expected_state

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
        raise Exit("hostsetup: --bundle-sha256 pins the archive given with --bundle: give --bundle FILE too",
                   code=EXIT_BAD_INPUT)
    offline = read_bundle(bundle) if bundle else None
    if offline and bundle_sha256 and bundle_sha256.strip().lower() != offline.sha256:
        raise Exit(f"hostsetup: --bundle {bundle} has sha256 {offline.sha256}, not the {bundle_sha256.strip()} "
                   "given with --bundle-sha256: refusing it", code=EXIT_BAD_INPUT)
    if offline and (mirror or insecure_mirror):
        raise Exit("hostsetup: --bundle is the repository: it takes no --mirror or --insecure-mirror",
                   code=EXIT_BAD_INPUT)
    if offline and version and not (offline.version + ".").startswith(version + "."):
        raise Exit(f"hostsetup: the bundle carries docker-ce {offline.version}, not --version {version}",
                   code=EXIT_BAD_INPUT)
    flags = install_flags(mirror, insecure_mirror, key_fingerprint, version, hold, allow_downgrade, no_plugins, users)
    targets = target_hosts(c.config, local)
    settings = {t.name: settings_from(c.config, t, **flags) for t in targets}
    if offline:
        settings = {name: from_bundle(s, offline) for name, s in settings.items()}
    daemons = {t.name: daemon_from(c.config, t) for t in targets}
    planners: dict[str, Planner] = {
        t.name: partial(plan_install, settings=settings[t.name], daemon=daemons[t.name], bundle=offline)
        for t in targets}
    wanted: dict[str, tuple[str, ...] | Wanted] = {
        t.name: Wanted(settings[t.name].users, (*registry_ca_files(daemons[t.name]),
                                                *((offline.marker,) if offline else ())),
                       packages=offline.extra_names if offline else (),
                       engine_state=bool(settings[t.name].version)) for t in targets}
    reports = run_converge(c.config, planners, wanted, dry_run, json, targets, html, "install")
    verify_changed_then_exit(c.config, targets, reports, dry_run or no_verify, " with the shipped testinfra checks",
                             lambda t: expected_state(settings[t.name], daemons[t.name], smoke=False))

