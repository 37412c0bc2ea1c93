"""Planning the daemon.json step: merge, validate for the host's engine, resolve flag
conflicts and proxies, decide reload or restart. Pure: no I/O."""

from __future__ import annotations

import json
import shlex
from pathlib import PurePosixPath as Path
from typing import Any

from hostsetup.daemon.listeners import hosts_list, insecure_hosts
from hostsetup.daemon.schema import KEYS, flag_for, needs_restart, validate
from hostsetup.daemon.settings import INSECURE_REGISTRIES, DaemonSettings, canonical_json
from hostsetup.facts import HostFacts
from hostsetup.host.dockerd import DEFAULT_COMMAND, drop_flags, effective_execstart, flag_names
from hostsetup.host.paths import DAEMON_JSON, EXECSTART_DROPIN, PROXY_DROPIN
from hostsetup.host.versions import parse_engine_version
from hostsetup.operations import ConfigureDaemon, Operation, WriteFile
from hostsetup.registries import ca_path
from hostsetup.render import render
from hostsetup.steps import Step
from hostsetup.textsafety import systemd_value_problem

PROXIES_SINCE = (23, 0)
VALIDATE_SINCE = (23, 0)
OLDEST_ENGINE = "20.10"  # the oldest engine the sandbox and hostsetup's tests cover
BOTH_WAYS = {"runtimes"}  # the one key dockerd accepts as a flag and in the file at once
PROXY_ENV = {"http-proxy": "HTTP_PROXY", "https-proxy": "HTTPS_PROXY", "no-proxy": "NO_PROXY"}


class DaemonPlanError(Exception):
    """This host's daemon.json cannot be set as asked; nothing changes on it."""


def _current(facts: HostFacts, replace: bool) -> tuple[dict[str, Any], str | None]:
    text = facts.files.get(DAEMON_JSON)
    if text is None or not text.strip():
        return {}, text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if replace:
            return {}, text
        raise DaemonPlanError(f"{DAEMON_JSON} on the host is not valid JSON ({exc}); fix it or use --replace "
                              "(hostsetup doctor --fix can move it aside)") from None
    if not isinstance(value, dict):
        if replace:
            return {}, text
        raise DaemonPlanError(f"{DAEMON_JSON} on the host is not a JSON object; use --replace")
    return value, text


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def _proxy_dropin(proxies: dict[str, Any]) -> str:
    env = [(PROXY_ENV[k], str(v)) for k, v in sorted(proxies.items()) if k in PROXY_ENV]
    for name, value in env:  # the schema refused these already; a drop-in must never be injectable
        problem = systemd_value_problem(value)
        if problem:
            raise DaemonPlanError(f"proxy {name}: the value {problem}")
    return render("daemon/http-proxy.conf.j2", environment=env)


def _exposure_warnings(settings: DaemonSettings, merged: dict[str, Any], command: str) -> list[str]:
    """What the settings open up, allowed by a flag (insecure registries, plain TCP); plain TCP refused
    without --allow-insecure-tcp."""
    warnings = []
    insecure = settings.config.get(INSECURE_REGISTRIES)
    if insecure and settings.allow_insecure_registries:
        names = ", ".join(map(str, insecure)) if isinstance(insecure, list) else str(insecure)
        warnings.append(f"{INSECURE_REGISTRIES} {names}: pulls from them are not verified, anyone on the path can "
                        "serve their images (allowed by --insecure-registry)")
    tcp = insecure_hosts(hosts_list(merged.get("hosts")), merged, shlex.split(command))
    if tcp:
        if not settings.allow_insecure_tcp:
            raise DaemonPlanError(f"hosts {', '.join(tcp)} without TLS verification gives anyone who can reach it "
                                  "root on this host; set tlsverify with tlscacert, tlscert and tlskey, or pass "
                                  "--allow-insecure-tcp")
        warnings.append(f"{', '.join(tcp)} without TLS verification hands out root on this host to anyone "
                        "who can reach it (allowed by --allow-insecure-tcp)")
    return warnings


def _without_flags_of(merged: dict[str, Any], command: str) -> tuple[str, list[str]]:
    """dockerd's command line without the flags of keys daemon.json sets (dockerd refuses a key set both
    ways), and those keys."""
    moved = []
    for key in sorted(merged):
        if key in BOTH_WAYS:
            continue
        spec = KEYS.get(key)
        command, removed = drop_flags(command, flag_names(flag_for(key)), spec is None or spec.kind != "bool")
        if removed:
            moved.append(key)
    return command, moved


def plan_daemon(facts: HostFacts, settings: DaemonSettings, engine: str | None = None) -> Step:
    """The daemon step: no operations when nothing changes."""
    engine_text = engine or facts.dockerd_version
    version = parse_engine_version(engine_text) if engine_text else None
    current, current_text = _current(facts, settings.replace)
    merged = dict(settings.config) if settings.replace else {**current, **settings.config}
    kept = sorted(set(current) - set(settings.config)) if not settings.replace else []

    dropins: list[WriteFile] = []
    proxies = merged.get("proxies")
    if isinstance(proxies, dict) and version is not None and version < PROXIES_SINCE:
        del merged["proxies"]
        dropins.append(WriteFile(PROXY_DROPIN, _proxy_dropin(proxies), facts.files.get(PROXY_DROPIN)))

    issues = validate(merged, ".".join(map(str, version)) if version else None)

    def source(path: str) -> str:
        return settings.sources.get(path.split(".")[0].split("[")[0], "daemon.json on the host")

    errors = [i.render(source(i.path)) for i in issues if i.severity == "error"]
    if errors:
        raise DaemonPlanError("; ".join(errors))
    warnings = [i.render(source(i.path)) for i in issues if i.severity != "error"]

    command = effective_execstart(facts.docker_unit) or DEFAULT_COMMAND
    warnings += _exposure_warnings(settings, merged, command)
    command, moved = _without_flags_of(merged, command)
    if moved:
        content = render("daemon/execstart.conf.j2", command=command, comment=(
            f"Managed by hostsetup: dockerd options {', '.join(moved)} live in {DAEMON_JSON},",
            "so the command line must not give them too (dockerd refuses a key set both ways)."))
        dropins.append(WriteFile(EXECSTART_DROPIN, content, facts.files.get(EXECSTART_DROPIN)))
    dropins = [d for d in dropins if d.content != d.old]

    ops: list[Operation] = list(dropins)
    new_text = canonical_json(merged)
    changed = _changed_keys(current, merged) if current_text is not None else set(merged)
    if (merged != current or current_text is None) and (merged or current_text is not None):
        restart = bool(dropins) or needs_restart(changed - set(current.keys() - merged.keys()),
                                                 removed_keys=current.keys() - merged.keys())
        ops.append(ConfigureDaemon(
            path=DAEMON_JSON, content=new_text, old=current_text, restart=restart,
            validate=version is None or version >= VALIDATE_SINCE, reload_units=bool(dropins),
            expect=expectations(merged)))
    elif dropins:
        ops.append(ConfigureDaemon(path=DAEMON_JSON, content=None, old=current_text, restart=True,
                                   validate=False, reload_units=True, expect=expectations(merged)))
    if not ops:
        keep = f"; keeps {', '.join(kept)} (not in settings)" if kept else ""
        return Step("daemon", f"{DAEMON_JSON} is up to date{keep}", warnings=tuple(warnings))
    parts = [f"set {', '.join(sorted(changed))}" if changed else "rewrite"]
    if kept:
        parts.append(f"keep {', '.join(kept)} (on the host, not in settings)")
    parts += [f"write {d.path}" for d in dropins]
    last = ops[-1]
    if isinstance(last, ConfigureDaemon):
        parts.append("restart docker" if last.restart else "reload docker (SIGHUP)")
    return Step("daemon", "; ".join(parts), tuple(ops), tuple(warnings))


def registry_ca_files(settings: DaemonSettings) -> tuple[str, ...]:
    """The files the registry-ca step reads on each host (facts gather them)."""
    return tuple(ca_path(name) for name in sorted(settings.registry_cas))


def plan_registry_cas(facts: HostFacts, settings: DaemonSettings) -> Step:
    """Each registry's CA in /etc/docker/certs.d/<registry>/ca.crt: dockerd reads it on every
    pull from that registry, so no reload or restart."""
    names = sorted(settings.registry_cas)
    writes = tuple(WriteFile(ca_path(name), settings.registry_cas[name], facts.files.get(ca_path(name)), mode="0644")
                   for name in names if facts.files.get(ca_path(name)) != settings.registry_cas[name])
    if not writes:
        return Step("registry-ca", f"the CA of {', '.join(names)} is in place")
    return Step("registry-ca", f"install the CA of {', '.join(Path(w.path).parent.name for w in writes)} "
                "(read on each pull: no restart)", writes)


def expectations(config: dict[str, Any]) -> dict[str, Any]:
    """What ``docker info`` must show once the daemon runs with ``config``."""
    expect: dict[str, Any] = {}
    if "registry-mirrors" in config:
        expect["RegistryConfig.Mirrors"] = [m.rstrip("/") + "/" for m in config["registry-mirrors"]]
    for key, field in (("log-driver", "LoggingDriver"), ("data-root", "DockerRootDir"),
                       ("live-restore", "LiveRestoreEnabled"), ("debug", "Debug"),
                       ("storage-driver", "Driver")):
        if key in config:
            expect[field] = config[key]
    return expect


def check_settings(settings: DaemonSettings) -> None:
    """Validate the keys we own before any host is touched.

    Only what is wrong for every engine fails here (checked against the oldest engine
    hostsetup installs and the newest rules); what depends on the engine is decided per
    host, with that host's dockerd version.
    """
    def errors(version: str | None) -> dict[str, str]:
        return {i.path: i.render(settings.sources.get(i.path.split(".")[0].split("[")[0], "settings"))
                for i in validate(settings.config, version) if i.severity == "error"}

    oldest, newest = errors(OLDEST_ENGINE), errors(None)
    always = [message for path, message in newest.items() if path in oldest]
    if always:
        raise DaemonPlanError("; ".join(always))
