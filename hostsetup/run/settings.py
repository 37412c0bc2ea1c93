"""Settings resolution: the hosts a run works on, and each host's install and daemon settings from the
configuration layers (files, environment), its inventory entry and the flags, validated before any host
is touched."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from invoke.config import Config

from hostsetup.bundle import Bundle
from hostsetup.daemon.plan import DaemonPlanError, check_settings
from hostsetup.daemon.settings import DaemonSettings, daemon_settings
from hostsetup.errors import HostsetupError
from hostsetup.inputs.config import check_tree
from hostsetup.inventory import deep_merge
from hostsetup.settings import INSTALL_DEFAULTS, InstallSettings, install_settings
from hostsetup.targets import Target, targets_from


def target_hosts(config: Config, local: bool = False) -> list[Target]:
    """The hosts given (-H, --inventory), or with ``local`` this machine alone."""
    return targets_from(config, local)


def _flags(flags: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flags.items() if v not in (None, "", (), [], {})}


def settings_from(config: Config, target: Target | None = None, **flags: Any) -> InstallSettings:
    """Config layers (files, HOSTSETUP_INSTALL_* env), then the host's inventory settings, then flags."""
    raw = deep_merge(dict(config.install), target.install if target else {})
    given = _flags(flags)
    check_tree(given, INSTALL_DEFAULTS, lambda path, mapping, key: "--" + key.replace("_", "-"), ("install",))
    try:
        return install_settings({**raw, **given})
    except HostsetupError as exc:
        raise HostsetupError(f"{target.name}: {exc}" if target and target.install else str(exc)) from None


def daemon_from(config: Config, target: Target | None = None, **flags: Any) -> DaemonSettings:
    """The ``daemon`` settings (config, the host's inventory entry, flags), rendered and validated
    here, before any host is touched."""
    raw = deep_merge({k: (dict(v) if hasattr(v, "keys") else v) for k, v in dict(config.daemon).items()},
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


def from_bundle(settings: InstallSettings, bundle: Bundle) -> InstallSettings:
    """Install settings whose repository is the bundle on the host, at the bundle's version."""
    return replace(settings, mirror_name="bundle", mirror_url=bundle.url, version=bundle.version)
