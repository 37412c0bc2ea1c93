"""Planning: facts + settings -> the steps that would converge a host. Pure: no I/O.

A converged host yields a plan whose steps have no operations.
"""

from __future__ import annotations

from dataclasses import replace

from hostsetup.bundle import Bundle, BundleError, BundleTarget, dependency_check_script, host_arch
from hostsetup.daemon.plan import DaemonPlanError, plan_daemon, plan_registry_cas
from hostsetup.daemon.settings import DaemonSettings
from hostsetup.distros import (
    APT,
    ENGINE_PACKAGES,
    PLUGIN_PACKAGES,
    Platform,
    UnsupportedSystem,
    install_packages,
    resolve_platform,
)
from hostsetup.facts import HostFacts
from hostsetup.host.command import command
from hostsetup.host.packages import PINNED_PACKAGES, lock_wait_script, locked
from hostsetup.host.versions import newest_key, upstream_version, version_key
from hostsetup.mirrors import OFFICIAL_FINGERPRINTS
from hostsetup.openpgp import key_file_problem
from hostsetup.operations import (
    FetchKey,
    InstallPackages,
    Operation,
    RemoveFiles,
    Run,
    UploadBundle,
    WriteFile,
)
from hostsetup.render import render
from hostsetup.settings import InstallSettings
from hostsetup.steps import Plan, Step


class PlanError(Exception):
    """The host cannot be converged as asked; nothing should change on it."""


def resolve_version(pin: str, available: tuple[str, ...]) -> str:
    """The newest exact package version matching ``pin`` (short or exact)."""
    if pin in available:
        return pin
    matches = [v for v in available
               if upstream_version(v) == pin or upstream_version(v).startswith(pin + ".")]
    if not matches:
        listing = ", ".join(sorted({upstream_version(v) for v in available}, key=version_key,
                                   reverse=True)) or "none"
        raise PlanError(f"version {pin} is not in the repository; it has: {listing}")
    return max(matches, key=newest_key)   # the package manager's order: epoch and revision count too


def key_fingerprints(platform: Platform, settings: InstallSettings) -> tuple[str, ...]:
    return (settings.key_fingerprint or OFFICIAL_FINGERPRINTS[platform.family.name],)


def repo_file_content(platform: Platform, arch: str, settings: InstallSettings) -> str:
    """The repository file rendered from our template (``arch``: the dpkg architecture on apt)."""
    repo_url = platform.repo_url(settings.mirror_url)
    if platform.family is APT:
        return render("docker.sources.j2", mirror_name=settings.mirror_name, repo_url=repo_url,
                      codename=platform.codename, arch=arch or "amd64",
                      key_file=platform.family.key_file)
    return render("docker-ce.repo.j2", mirror_name=settings.mirror_name, repo_url=repo_url,
                  releasever=platform.version, key_file=platform.family.key_file)


def locked_run(platform: Platform, command: str, settings: InstallSettings) -> Run:
    """``command`` once no other package manager holds the locks (waiting up to the setting)."""
    manager = platform.package_manager
    return Run(locked(manager, command, settings.lock_timeout), f"{_wait_line(platform, settings)}\n$ {command}")


def _wait_line(platform: Platform, settings: InstallSettings) -> str:
    return (f"wait up to {settings.lock_timeout} s for the {platform.manager.locks.name} lock "
            "(then fail naming its holder)")


def _repair(platform: Platform, facts: HostFacts, settings: InstallSettings) -> Step | None:
    """An earlier package transaction cut short (connection lost, killed, disk full): finish it
    before anything else asks the package manager, which would refuse (dpkg) or trip over it (rpm)."""
    manager = platform.manager
    dpkg = manager.repair(facts.dpkg_interrupted, False, settings.lock_timeout)
    if dpkg:
        return Step("repair", "finish the interrupted dpkg transaction (dpkg --configure -a)",
                    (locked_run(platform, dpkg, settings),))
    duplicates = sorted(facts.duplicates & {*ENGINE_PACKAGES, *PLUGIN_PACKAGES})
    # an upgrade cut short leaves the old and the new version installed; the old one goes
    rpm = manager.repair(False, bool(duplicates), settings.lock_timeout)
    if rpm:
        return Step("repair", f"remove the older of the duplicated {', '.join(duplicates)} "
                              "(an interrupted upgrade)", (locked_run(platform, rpm, settings),))
    return None


def _conflicts(platform: Platform, facts: HostFacts, settings: InstallSettings) -> Step:
    present = [p for p in platform.conflicts if p in facts.packages]
    if not present:
        return Step("conflicts", "no conflicting packages installed")
    return Step("conflicts", f"remove conflicting {', '.join(present)}",
                (locked_run(platform, remove_command(platform, present, settings), settings),))


def remove_command(platform: Platform, packages: list[str], settings: InstallSettings, purge: bool = False) -> str:
    """The package manager's removal of ``packages`` (apt: ``purge`` also deletes their configuration files)."""
    return platform.manager.remove(packages, settings.lock_timeout, purge)


def _prerequisites(platform: Platform, facts: HostFacts, settings: InstallSettings) -> Step:
    manager = platform.manager
    missing = [p for p in platform.family.prerequisites if p not in facts.packages
               and not (p in platform.family.prerequisite_commands and p in facts.commands)]
    if settings.hold and manager.lock_plugin and manager.lock_plugin not in facts.packages:
        missing.append(manager.lock_plugin)
    command = manager.install(missing, settings.lock_timeout)
    if not missing:
        return Step("prerequisites", "prerequisites present")
    return Step("prerequisites", f"install {', '.join(missing)}", (locked_run(platform, command, settings),))


def _key(platform: Platform, facts: HostFacts, settings: InstallSettings) -> Step:
    path = platform.family.key_file
    wanted = key_fingerprints(platform, settings)
    current = facts.files.get(path)
    problem = key_file_problem(current.encode(), wanted) if current else "missing"
    if problem is None:
        return Step("key", f"{path} holds key {wanted[0]}")
    url = f"{platform.repo_url(settings.mirror_url)}/gpg"
    reason = "missing" if current is None else "is not trusted as it is"
    return Step("key", f"{path} {reason}: fetch and verify it",
                (FetchKey(url, path, wanted, current),))


def _repository(platform: Platform, facts: HostFacts, settings: InstallSettings) -> Step:
    family = platform.family
    content = repo_file_content(platform, facts.dpkg_arch, settings)
    legacy = tuple(p for p in family.legacy_files if p in facts.files)
    ops: list[Operation] = []
    current = facts.files.get(family.repo_file)
    if current != content:
        ops.append(WriteFile(family.repo_file, content, current))
    if legacy:
        ops.append(RemoveFiles(legacy))
    if not ops:
        return Step("repository", f"{family.repo_file} is up to date")
    what = [f"{'write' if current is None else 'update'} {family.repo_file}"] if current != content \
        else []
    what += [f"remove legacy {', '.join(legacy)}"] if legacy else []
    return Step("repository", "; ".join(what), tuple(ops))


def _packages(platform: Platform, facts: HostFacts, settings: InstallSettings,
              repo_changes: bool, local_files: tuple[str, ...] = ()) -> Step:
    wanted = install_packages(settings.plugins)
    missing = [p for p in wanted if p not in facts.packages]
    version = None
    if settings.version and facts.available_versions and not repo_changes:
        version = resolve_version(settings.version, facts.available_versions)
    stale = []
    if version:
        stale = [p for p in PINNED_PACKAGES if facts.packages.get(p) != version]
    elif settings.version:
        # Index unknown (new repository): decide from the upstream version only.
        stale = [p for p in PINNED_PACKAGES if p in facts.packages and not (
            upstream_version(facts.packages[p]) + ".").startswith(settings.version + ".")]
    hold_needed = settings.hold and not _held(platform, facts)
    if not missing and not stale and not hold_needed:
        pinned = f" at {version or settings.version}" if settings.version else ""
        return Step("packages", f"{', '.join(wanted)} installed{pinned}")
    if not missing and not stale:
        return Step("packages", "hold docker-ce and docker-ce-cli",
                    (locked_run(platform, _hold_command(platform), settings),))
    target = upstream_version(version) if version else str(settings.version)
    changes = [(p, upstream_version(facts.packages[p])) for p in stale if p in facts.packages]
    _check_version_change(platform, facts, settings, changes, target)
    why = []
    if missing:
        why.append(f"install {', '.join(missing)}")
    if changes:
        why.append("change " + ", ".join(f"{p} {old} -> {target}" for p, old in changes))
    elif stale:
        why.append(f"change {', '.join(stale)} to {version or settings.version}")
    if local_files:
        why.append(f"with {len(local_files)} of the system's packages from the bundle")
    warnings = _restart_warnings(facts) if changes else ()
    # Said again live as the step starts: what the restart does to the containers, before it does it.
    # Without a version, only what is missing: naming an installed (maybe held) package would move it.
    names = wanted if settings.version else tuple(missing)
    return Step("packages", "; ".join(why), (InstallPackages(
        platform.package_manager, names, platform.family.repo_file, settings.version, version,
        settings.hold, settings.lock_timeout, local_files),), warnings, "; ".join(warnings))


def _is_older(target: str, installed: str) -> bool:
    """``target`` (an upstream version or a short pin) is below ``installed`` (an upstream version)."""
    want, have = version_key(target), version_key(installed)
    return want < have[:len(want)]


def _check_version_change(platform: Platform, facts: HostFacts, settings: InstallSettings,
                          changes: list[tuple[str, str]], target: str) -> None:
    """A downgrade needs ``--allow-downgrade``; packages held at their version move only with ``--hold``."""
    older = [f"{p} {old}" for p, old in changes if _is_older(target, old)]
    if older and not settings.allow_downgrade:
        raise PlanError(f"{', '.join(older)} installed and {target} is older: downgrading is refused "
                        "unless you pass --allow-downgrade")
    held = [p for p, _ in changes if p in held_packages(platform, facts)]
    if held and not settings.hold:
        tool = platform.manager.hold_tool
        raise PlanError(f"{', '.join(held)} held at {changes[0][1]} ({tool}): a held version changes only when "
                        f"asked; add --hold to move the hold to {target}")


def _restart_warnings(facts: HostFacts) -> tuple[str, ...]:
    """What the engine's restart during a version change does to the containers running now."""
    state = facts.engine_state
    if state is None or "docker-ce" not in facts.packages:
        return ()
    if not state.known:
        return ("could not ask the engine which containers run (no passwordless access to it): "
                "without live-restore they stop while dockerd restarts",)
    if not state.running:
        return ()
    names = ", ".join(state.running[:5]) + (f" and {len(state.running) - 5} more" if len(state.running) > 5 else "")
    if state.live_restore:
        return (f"{len(state.running)} running container(s) ({names}): live-restore is on, they keep running "
                "while dockerd restarts",)
    return (f"{len(state.running)} running container(s) ({names}) stop while dockerd restarts: live-restore is "
            "off (only those with a restart policy start again); roll through a fleet with --batch 1 (or N%)",)


def held_packages(platform: Platform, facts: HostFacts) -> set[str]:
    """Which of docker-ce and docker-ce-cli are held (apt-mark) or versionlocked."""
    return platform.manager.held(facts.holds, facts.files)


def _held(platform: Platform, facts: HostFacts) -> bool:
    return held_packages(platform, facts) == set(PINNED_PACKAGES)


def _hold_command(platform: Platform) -> str:
    return platform.manager.hold()


def unhold_command(platform: Platform, packages: list[str]) -> str:
    """Release the hold (apt-mark) or versionlock (dnf/yum) on ``packages``."""
    return platform.manager.unhold(packages)


def _service(facts: HostFacts, packages_change: bool) -> Step:
    units = ("containerd.service", "docker.service")
    todo = [u for u in units if not (facts.unit(u).enabled and facts.unit(u).running)]
    if packages_change:  # the units come from the packages about to change: always start them
        todo = list(units)
    if not todo:
        return Step("service", "containerd and docker are enabled and running")
    return Step("service", f"enable and start {', '.join(todo)}",
                (Run("systemctl enable --now " + " ".join(units)),))


def _group(facts: HostFacts, settings: InstallSettings) -> Step:
    missing_users = [u for u in settings.users if facts.user_groups.get(u) is None]
    if missing_users:
        raise PlanError(f"user(s) {', '.join(missing_users)} do not exist on the host")
    commands = [] if facts.docker_group is not None else ["groupadd -f docker"]
    to_add = [u for u in settings.users if "docker" not in (facts.user_groups[u] or ())]
    commands += [command("usermod -aG docker @USER@", USER=u).text for u in to_add]  # validated, and quoted anyway
    if not commands:
        members = ", ".join(settings.users) or "no users configured"
        return Step("group", f"docker group exists ({members})")
    summary = "create the docker group" if facts.docker_group is None else ""
    warnings: tuple[str, ...] = ()
    if to_add:
        summary = "; ".join(filter(None, (summary, f"add {', '.join(to_add)} to docker")))
        warnings = (f"the docker group is root-equivalent: {', '.join(to_add)} can become root on this host "
                    "(e.g. docker run -v /:/host); add only users you would give sudo",)
    return Step("group", summary, tuple(Run(c) for c in commands), warnings)


def _bundle(platform: Platform, facts: HostFacts, settings: InstallSettings, bundle: Bundle,
            installs: bool, target: BundleTarget) -> Step:
    """An offline bundle: on the host once (uploaded, checked, unpacked), and before any package changes,
    proof that it and the host's own repositories satisfy every dependency."""
    ops: list[Operation] = []
    what = []
    if not bundle.present_on(facts):
        ops.append(UploadBundle(bundle.path, bundle.sha256, bundle.size, bundle.remote_dir))
        what.append(f"upload the bundle ({target.name}) to {bundle.remote_dir}")
    if installs:
        wanted = install_packages(settings.plugins)
        check = dependency_check_script(bundle, target, platform, host_arch(platform, facts), wanted,
                                        target.missing_extras(facts, bundle.remote_dir))
        ops.append(Run(check, "check, with a copy of the package indexes, that the bundle and the host's own "
                              f"repositories provide every dependency of {', '.join(wanted)} (nothing changes)"))
        what.append("check its dependencies")
    if not ops:
        return Step("bundle", f"bundle {bundle.sha256[:16]} ({target.name}) is on the host")
    return Step("bundle", "; ".join(what), tuple(ops))


def plan_install(facts: HostFacts, settings: InstallSettings, daemon: DaemonSettings | None = None,
                 bundle: Bundle | None = None) -> Plan:
    """The steps that install Docker Engine on this host as ``settings`` say (and set daemon.json);
    from an offline ``bundle`` when one is given (``settings`` then name it as their mirror)."""
    try:
        platform = resolve_platform(facts.os_release)
    except UnsupportedSystem as exc:
        raise PlanError(str(exc)) from None
    key = _key(platform, facts, settings)
    repository = _repository(platform, facts, settings)
    conflicts = _conflicts(platform, facts, settings)
    target = None
    if bundle is not None:
        try:
            target = bundle.target_for(platform, facts)
        except BundleError as exc:
            raise PlanError(str(exc)) from None
    packages = _packages(platform, facts, settings, repository.changes or key.changes,
                         target.missing_extras(facts, bundle.remote_dir) if target and bundle else ())
    rewritten = any(isinstance(op, WriteFile) for op in repository.operations)
    if (rewritten or key.changes) and not any(isinstance(op, InstallPackages) for op in packages.operations):
        # Nothing to install (at most a hold), so nothing would read the new repository: refresh its index now,
        # which proves that it serves metadata signed with the key.
        # The refresh proves the new files (apply's RepositoryGuard knows it by its command line): the
        # lock wait goes first, before anything is written, so that a lock that stays held changes nothing.
        wait = Run(lock_wait_script(platform.package_manager, settings.lock_timeout), _wait_line(platform, settings))
        refresh = Run(platform.manager.refresh_repository(platform.family.repo_file))
        summary = (f"{repository.summary}; refresh its index" if repository.changes
                   else "refresh the repository's index (its key changed)")
        repository = replace(repository, summary=summary, operations=(wait, *repository.operations, refresh))
    repair = _repair(platform, facts, settings)
    installs = any(isinstance(op, InstallPackages) for op in packages.operations)
    steps: tuple[Step, ...] = (
        *((_bundle(platform, facts, settings, bundle, installs, target),) if bundle and target else ()),
        *((repair,) if repair else ()),
        conflicts,
        _prerequisites(platform, facts, settings),
        key,
        repository,
        packages,
        _service(facts, conflicts.changes or any(isinstance(op, InstallPackages)
                                                 for op in packages.operations)),
        _group(facts, settings),
    )
    if daemon is not None and daemon.configured:
        pinned = next((op.version for op in packages.operations if isinstance(op, InstallPackages)), None)
        steps += _daemon(facts, daemon, pinned)
    return Plan(platform, _notice_lock_holders(steps, facts, platform, settings))


def _uses_package_manager(step: Step) -> bool:
    return any(isinstance(op, InstallPackages) or (isinstance(op, Run) and op.waits_for_lock)
               for op in step.operations)


def _notice_lock_holders(steps: tuple[Step, ...], facts: HostFacts, platform: Platform,
                         settings: InstallSettings) -> tuple[Step, ...]:
    """When another process held a package-manager lock as the facts were read, the first step
    that needs the package manager says so as it starts (it waits for the lock on the host)."""
    if not facts.lock_holders:
        return steps
    first = next((i for i, s in enumerate(steps) if _uses_package_manager(s)), None)
    if first is None:
        return steps
    notice = (f"the {platform.manager.locks.name} lock is held by {', '.join(facts.lock_holders)}: "
              f"waiting for it (up to {settings.lock_timeout} s)")
    notice = "; ".join(filter(None, (notice, steps[first].notice)))
    return (*steps[:first], replace(steps[first], notice=notice), *steps[first + 1:])


def _daemon(facts: HostFacts, daemon: DaemonSettings, engine: str | None = None) -> tuple[Step, ...]:
    """The registry CAs (when any) and daemon.json (when it has keys to set) steps."""
    cas = (plan_registry_cas(facts, daemon),) if daemon.registry_cas else ()
    try:
        return cas + ((plan_daemon(facts, daemon, engine),) if daemon.owns_daemon_json else ())
    except DaemonPlanError as exc:
        raise PlanError(str(exc)) from None


def plan_configure(facts: HostFacts, daemon: DaemonSettings) -> Plan:
    """Only the daemon.json step, on a host where Docker Engine is installed."""
    try:
        platform = resolve_platform(facts.os_release)
    except UnsupportedSystem as exc:
        raise PlanError(str(exc)) from None
    if not facts.dockerd_version:
        raise PlanError("Docker Engine is not installed here (no dockerd): run `hostsetup install` first")
    return Plan(platform, _daemon(facts, daemon))
