"""``hostsetup -H HOSTS configure``: /etc/docker/daemon.json from templates, safely."""

from __future__ import annotations

import json as jsonlib
from typing import Any

from invoke import Context, Exit, task

from hostsetup.errors import HostsetupError
from hostsetup.plan import plan_configure
from hostsetup.tasks.install import daemon_from, run_converge, target_hosts


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
    daemon = daemon_from(c, profiles=profile, template=template, settings=settings,
                         replace=replace or None, allow_insecure_tcp=allow_insecure_tcp or None)
    if not daemon.configured:
        raise HostsetupError("nothing to configure: give --profile, --template, --set or daemon settings "
                             "in hostsetup.yaml")
    reports = run_converge(c, lambda facts: plan_configure(facts, daemon), (), dry_run, json, target_hosts(c))
    if any(r.status == "failed" for r in reports):
        raise Exit(code=1)
