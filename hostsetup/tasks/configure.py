"""``hostsetup -H HOSTS configure``: /etc/docker/daemon.json from templates, safely."""

from __future__ import annotations

import json as jsonlib
from functools import partial
from typing import Any

from invoke import Context, task

from hostsetup.errors import HostsetupError
from hostsetup.plan import plan_configure
from hostsetup.runner import Planner
from hostsetup.tasks.install import daemon_from, exit_code, run_converge, target_hosts


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["debug=true", "registry-mirrors=[\\"https://m\\"]", "log-level=warn"]`` -> a dict.

    Values are JSON when they parse as JSON, strings otherwise.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HostsetupError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = jsonlib.loads(value)
        except jsonlib.JSONDecodeError:
            out[key.strip()] = value
    return out


@task(iterable=["set"], help={
    "profile": "comma-separated profiles: log-rotation, registry-mirrors, production",
    "template": "your own Jinja2 template rendering a daemon.json object",
    "set": "a daemon.json key, KEY=VALUE (VALUE as JSON when it parses); repeatable",
    "registry-mirrors": "comma-separated registry mirror URLs (sets registry-mirrors)",
    "replace": "own the whole file instead of keeping keys already on the host",
    "allow-insecure-tcp": "allow a tcp:// entry in hosts without TLS verification (root for anyone!)",
    "dry-run": "print the diff and commands; change nothing",
    "json": "write a machine-readable report to this file",
})
def configure(c: Context, profile: str | None = None, template: str | None = None, set: list[str] | None = None,
              registry_mirrors: str | None = None, replace: bool = False, allow_insecure_tcp: bool = False,
              dry_run: bool = False, json: str | None = None) -> None:
    """Set /etc/docker/daemon.json: validated first, written atomically, reload or restart only on change."""
    settings = parse_assignments(list(set or []))
    if registry_mirrors:
        settings["registry-mirrors"] = [m.strip() for m in registry_mirrors.split(",") if m.strip()]
    flags = {"profiles": profile, "template": template, "settings": settings, "replace": replace or None,
             "allow_insecure_tcp": allow_insecure_tcp or None}
    targets = target_hosts(c)
    daemons = {t.name: daemon_from(c, t, **flags) for t in targets}
    if not any(d.configured for d in daemons.values()):
        raise HostsetupError("nothing to configure: give --profile, --template, --set or daemon settings "
                             "in hostsetup.yaml or the inventory")
    planners: dict[str, Planner] = {t.name: partial(plan_configure, daemon=daemons[t.name]) for t in targets}
    exit_code(run_converge(c, planners, {t.name: () for t in targets}, dry_run, json, targets))
