"""Uninstall planning: facts -> the steps that take Docker Engine off a host. Pure: no I/O.

What goes: the units (stopped and disabled), the packages hostsetup installs (and their hold),
the repository file and key when hostsetup wrote them (its "Managed by hostsetup" line), the
systemd drop-ins it wrote. What stays unless ``purge_data``: the engine's data and configuration
(``DATA_DIRS``), and the ``docker`` group. An uninstalled host plans nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostsetup.bundle import BUNDLE_ROOT
from hostsetup.distros import (
    COMPANION_PACKAGES,
    ENGINE_PACKAGES,
    PLUGIN_PACKAGES,
    UnsupportedSystem,
    resolve_platform,
)
from hostsetup.facts import HostFacts, PathSize, Wanted
from hostsetup.host.command import Raw, command, join, words
from hostsetup.host.paths import EXECSTART_DROPIN, PROXY_DROPIN
from hostsetup.host.units import DOCKER_UNITS
from hostsetup.operations import Operation, RemoveFiles, Run
from hostsetup.plan import PlanError, held_packages, locked_run, remove_command, unhold_command
from hostsetup.settings import InstallSettings, install_settings
from hostsetup.steps import Plan, Step

MANAGED_MARK = "Managed by hostsetup"
# What hostsetup's packages leave behind that holds the user's data: images, containers, volumes, daemon.json.
DATA_DIRS = ("/var/lib/docker", "/var/lib/containerd", "/etc/docker")
REMOVED_PACKAGES = (*ENGINE_PACKAGES, *PLUGIN_PACKAGES, *COMPANION_PACKAGES)
DROPINS = (EXECSTART_DROPIN, PROXY_DROPIN)
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class UninstallSettings:
    purge_data: bool = False
    lock_timeout: int = 120


def wanted(settings: UninstallSettings) -> Wanted:
    """The facts an uninstall plan reads beyond the common ones: the data directories' sizes when purging."""
    return Wanted(engine_state=True, sizes=(BUNDLE_ROOT, *(DATA_DIRS if settings.purge_data else ())))


def written_by_hostsetup(content: str | None) -> bool:
    return content is not None and MANAGED_MARK in content


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# Containers are stopped while dockerd still runs: with live-restore they would outlive it (and its packages).
STOP_CONTAINERS = ("if systemctl is-active -q docker.service; then "
                   "docker ps -q | xargs -r timeout 120 docker stop --time 10 >/dev/null; fi")


def _service(facts: HostFacts) -> Step:
    present = [u for u in DOCKER_UNITS if facts.unit(u).load == "loaded"
               and (facts.unit(u).running or facts.unit(u).file_state in ("enabled", "enabled-runtime"))]
    if not present:
        return Step("service", "docker and containerd are not running or enabled")
    state = facts.engine_state
    running = state.running if state is not None and state.known else ()
    containers = (f"stop {len(running)} running container(s) ({', '.join(running)}), then " if running
                  else "stop any running containers, then " if state is None or not state.known else "")
    # A stopped socket unit leaves its file behind (systemd's RemoveOnStop=no): it goes too.
    return Step("service", f"{containers}stop and disable {', '.join(present)}",
                (Run(command("@STOP@\nsystemctl disable --now @UNITS@ && rm -f @SOCKET@", STOP=Raw(STOP_CONTAINERS),
                             UNITS=words(*present), SOCKET=DOCKER_SOCKET).text),))


def _packages(facts: HostFacts, install: InstallSettings, purge: bool) -> Step:
    """The packages go (apt: ``remove``, which keeps their configuration files, such as containerd's
    config.toml; ``purge`` only with --purge-data), their hold or versionlock released first."""
    from_host = [p for p in REMOVED_PACKAGES if p in facts.packages]
    platform = resolve_platform(facts.os_release)
    held = sorted(held_packages(platform, facts))
    commands = [unhold_command(platform, held)] if held else []
    if from_host:
        commands.append(remove_command(platform, from_host, install, purge))
    if not commands:
        return Step("packages", "no Docker Engine packages installed")
    what = [f"remove {', '.join(from_host)}"] if from_host else []
    what += [f"release the hold on {', '.join(held)}"] if held else []
    return Step("packages", "; ".join(what), (locked_run(platform, join(commands, " && ").text, install),))


def _repository(facts: HostFacts) -> Step:
    family = resolve_platform(facts.os_release).family
    repo = facts.files.get(family.repo_file)
    if family.repo_file not in facts.files:
        return Step("repository", f"no {family.repo_file}")
    if not written_by_hostsetup(repo):
        return Step("repository", f"{family.repo_file} was not written by hostsetup: kept (with its key)")
    paths = tuple(p for p in (family.repo_file, family.key_file) if p in facts.files)
    return Step("repository", f"remove {' and '.join(paths)}", (RemoveFiles(paths),))


def _bundles(facts: HostFacts) -> Step:
    """Offline bundles ``install --bundle`` unpacked: hostsetup's alone, whatever names them."""
    bundles = facts.sizes.get(BUNDLE_ROOT)
    if bundles is None or bundles.empty:
        return Step("bundles", "no offline bundles on the host")
    return Step("bundles", f"remove the offline bundles in {BUNDLE_ROOT} ({human_size(bundles.size)})",
                (Run(command("rm -rf @ROOT@", ROOT=BUNDLE_ROOT).text),))


def _dropins(facts: HostFacts) -> Step:
    ours = tuple(p for p in DROPINS if p in facts.files and "hostsetup" in (facts.files[p] or ""))
    if not ours:
        return Step("drop-ins", "no docker.service drop-ins written by hostsetup")
    return Step("drop-ins", f"remove {', '.join(ours)}",
                (RemoveFiles(ours), Run("systemctl daemon-reload")))


def _data(facts: HostFacts, settings: UninstallSettings) -> Step:
    if not settings.purge_data:
        return Step("data", f"kept: {', '.join(DATA_DIRS)} (--purge-data deletes them)")
    doomed: dict[str, PathSize] = {p: facts.sizes[p] for p in DATA_DIRS if p in facts.sizes
                                   and not facts.sizes[p].empty}
    if not doomed:
        return Step("data", f"none of {', '.join(DATA_DIRS)} holds anything")
    listing = ", ".join(f"{p} ({human_size(s.size)})" for p, s in doomed.items())
    # A directory that is a mount point (its own volume) is emptied; anything else goes whole.
    script = command("set -e; @DELETES@", DELETES=join(
        (command("find @DIR@ -xdev -mindepth 1 -delete && { rmdir @DIR@ 2>/dev/null || mountpoint -q @DIR@; }", DIR=p)
         for p in doomed), "; "))
    shown = [f"delete {p} ({human_size(s.size)})" for p, s in doomed.items()]
    ops: tuple[Operation, ...] = (Run(script.text, "\n".join([*shown, f"$ {script.shown}"])),)
    return Step("data", f"delete {listing}", ops,
                (f"deleting {listing}: every image, container, volume and daemon.json on this host",))


def plan_uninstall(facts: HostFacts, settings: UninstallSettings) -> Plan:
    """The steps that take Docker Engine off this host (idempotent: an uninstalled host plans nothing)."""
    try:
        platform = resolve_platform(facts.os_release)
    except UnsupportedSystem as exc:
        raise PlanError(str(exc)) from None
    install = install_settings({"lock_timeout": settings.lock_timeout})
    steps = (_service(facts), _packages(facts, install, settings.purge_data), _repository(facts), _bundles(facts),
             _dropins(facts), _data(facts, settings))
    return Plan(platform, steps)
