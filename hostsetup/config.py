"""Configuration: Invoke's layering under the ``hostsetup`` prefix.

Settings come, lowest first, from these defaults, ``/etc/hostsetup.yaml``,
``~/.hostsetup.yaml``, ``./hostsetup.yaml``, ``HOSTSETUP_*`` environment
variables, ``-f FILE`` and command-line flags.
"""

from __future__ import annotations

import os
from typing import Any

from fabric import Config
from invoke.config import merge_dicts
from invoke.env import Environment

from hostsetup import secrets
from hostsetup.daemon.settings import DAEMON_DEFAULTS
from hostsetup.errors import HostsetupError
from hostsetup.settings import INSTALL_DEFAULTS, parse_bool

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


class StrictEnvironment(Environment):
    """``HOSTSETUP_*`` variables cast strictly: Invoke makes any non-empty string, ``false`` too,
    a True boolean; here a boolean setting takes true/false, yes/no, 1/0 and nothing else, and a
    value that does not fit is refused naming the variable."""

    def _cast(self, old: Any, new: Any) -> Any:
        if isinstance(old, bool):
            return parse_bool(new, "value")
        return super()._cast(old, new)

    def load(self) -> dict[str, Any]:
        for env_var, key_path in self._crawl(key_path=[], env_vars={}).items():
            name = (self._prefix or "") + env_var
            if name in os.environ:
                try:
                    self._path_set(key_path, os.environ[name])
                except (HostsetupError, ValueError) as exc:
                    raise HostsetupError(f"{name}={os.environ[name]!r} does not fit its setting: "
                                         f"{str(exc).removeprefix('value: ')}") from None
        return self.data


class HostsetupConfig(Config):
    """Fabric's configuration with hostsetup's file names, env prefix and defaults."""

    prefix = "hostsetup"

    def load_shell_env(self) -> None:
        self.merge()
        self._set(_env=StrictEnvironment(config=self._config, prefix=self._env_prefix).load())
        self.merge()
        # HOSTSETUP_SUDO_PASSWORD and friends arrive only now: masked from here on.
        secrets.register(self.sudo.password, self.connect_kwargs.get("password"),
                         self.connect_kwargs.get("passphrase"))

    @staticmethod
    def global_defaults() -> dict[str, Any]:
        defaults: dict[str, Any] = Config.global_defaults()
        merge_dicts(defaults, DEFAULTS)
        return defaults
