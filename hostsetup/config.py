"""Configuration: Invoke's layering under the ``hostsetup`` prefix.

Settings come, lowest first, from these defaults, ``/etc/hostsetup.yaml``,
``~/.hostsetup.yaml``, ``./hostsetup.yaml``, ``HOSTSETUP_*`` environment
variables, ``-f FILE`` and command-line flags.
"""

from __future__ import annotations

from typing import Any

from fabric import Config
from invoke.config import merge_dicts

from hostsetup.daemon.settings import DAEMON_DEFAULTS
from hostsetup.settings import INSTALL_DEFAULTS

DEFAULTS: dict[str, Any] = {
    # Target hosts given with -H (filled in by the program).
    "hosts": [],
    # Extra known_hosts files to trust (e.g. the sandbox's).
    "known_hosts": [],
    # Fleets: an inventory file, a --limit pattern, how many hosts at once, rolling batches
    # ("5" or "25%"), and the failure share (percent) after which no new batch starts.
    "inventory": "",
    "limit": "",
    "parallel": 10,
    "batch": "",
    "max_fail_percent": 100,
    # SSH connection attempts per host (retried with backoff on connection errors only).
    "connect_attempts": 3,
    # Install settings (see hostsetup.settings); env: HOSTSETUP_INSTALL_MIRROR etc.
    "install": INSTALL_DEFAULTS,
    # daemon.json settings (see hostsetup.daemon.settings).
    "daemon": DAEMON_DEFAULTS,
}


class HostsetupConfig(Config):
    """Fabric's configuration with hostsetup's file names, env prefix and defaults."""

    prefix = "hostsetup"

    @staticmethod
    def global_defaults() -> dict[str, Any]:
        defaults: dict[str, Any] = Config.global_defaults()
        merge_dicts(defaults, DEFAULTS)
        return defaults
