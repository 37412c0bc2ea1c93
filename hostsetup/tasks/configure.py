"""``hostsetup -H HOSTS configure``: /etc/docker/daemon.json from templates, safely."""

from __future__ import annotations

import json as jsonlib
from functools import partial
from typing import Any

from invoke.context import Context
from invoke.tasks import task

from hostsetup.daemon.plan import registry_ca_files
from hostsetup.daemon.settings import INSECURE_REGISTRIES
from hostsetup.errors import HostsetupError
from hostsetup.facts import Wanted
from hostsetup.plan import plan_configure
from hostsetup.registries import registry_name
from hostsetup.run.converge import run_converge
from hostsetup.run.fleet import Planner
from hostsetup.run.settings import daemon_from, target_hosts
from hostsetup.run.status import exit_code


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


def parse_registry_cas(items: list[str]) -> dict[str, str]:
    """``["registry.example.com:5000=ca.crt"]`` -> ``{"registry.example.com:5000": "ca.crt"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")  # a registry name has no "=", a file name may
        if not sep or not name.strip() or not path.strip():
            raise HostsetupError(f"--registry-ca takes REGISTRY=FILE (registry.example.com:5000=ca.crt), got {item!r}")
        out[registry_name(name, "--registry-ca")] = path.strip()
    return out


def daemon_flags(profile: str | None, template: str | None, assignments: list[str] | None,
                 registry_mirrors: str | None, registry_ca: list[str] | None, insecure_registry: list[str] | None,
                 replace: bool, allow_insecure_tcp: bool) -> dict[str, Any]:
    """The daemon settings that configure's flags give (``daemon_from`` merges them over the config)."""
    settings = parse_assignments(list(assignments or []))
    if registry_mirrors:
        settings["registry-mirrors"] = [m.strip() for m in registry_mirrors.split(",") if m.strip()]
    if insecure_registry:
        settings[INSECURE_REGISTRIES] = [registry_name(n, "--insecure-registry") for n in insecure_registry]
    return {"profiles": profile, "template": template, "settings": settings, "replace": replace or None,
            "allow_insecure_tcp": allow_insecure_tcp or None, "registry_cas": parse_registry_cas(registry_ca or []),
            "allow_insecure_registries": True if insecure_registry else None}


DAEMON_FLAG_HELP = {
    "profile": "comma-separated profiles: log-rotation, registry-mirrors, production",
    "template": "your own Jinja2 template rendering a daemon.json object",
    "set": "a daemon.json key, KEY=VALUE (VALUE as JSON when it parses); repeatable",
    "registry-mirrors": "comma-separated registry mirror URLs (sets registry-mirrors)",
    "registry-ca": "REGISTRY=FILE: install FILE as the CA of REGISTRY (host[:port]) in /etc/docker/certs.d; "
                   "repeatable",
    "insecure-registry": "a registry (host[:port]) to pull from WITHOUT TLS verification (insecure-registries); "
                         "repeatable; prefer --registry-ca",
    "replace": "own the whole file instead of keeping keys already on the host",
    "allow-insecure-tcp": "allow a tcp:// entry in hosts without TLS verification (root for anyone!)",
}


@task(iterable=["set", "registry_ca", "insecure_registry"], help={
    **DAEMON_FLAG_HELP,
    "dry-run": "print the diff and commands; change nothing",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the run to this file (sortable, filterable, offline)",
    "local": "work on this machine itself, no SSH (as root or through passwordless sudo)",
})
def configure(c: Context, profile: str | None = None, template: str | None = None, set: list[str] | None = None,
              registry_mirrors: str | None = None, registry_ca: list[str] | None = None,
              insecure_registry: list[str] | None = None, replace: bool = False, allow_insecure_tcp: bool = False,
              dry_run: bool = False, json: str | None = None, html: str | None = None, local: bool = False) -> None:
    """Set /etc/docker/daemon.json (validated first, written atomically, reload or restart only on change)
    and registry CAs."""
    flags = daemon_flags(profile, template, set, registry_mirrors, registry_ca, insecure_registry, replace,
                         allow_insecure_tcp)
    targets = target_hosts(c.config, local)
    daemons = {t.name: daemon_from(c.config, t, **flags) for t in targets}
    if not any(d.configured for d in daemons.values()):
        raise HostsetupError("nothing to configure: give --profile, --template, --set, --registry-ca or daemon "
                             "settings in hostsetup.yaml or the inventory")
    planners: dict[str, Planner] = {t.name: partial(plan_configure, daemon=daemons[t.name]) for t in targets}
    wanted: dict[str, tuple[str, ...] | Wanted] = {
        t.name: Wanted(files=registry_ca_files(daemons[t.name])) for t in targets}
    exit_code(run_converge(c.config, planners, wanted, dry_run, json, targets, html, "configure"))
