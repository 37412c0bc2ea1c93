"""Configuration: Invoke's layering under the ``hostsetup`` prefix.

Settings come, lowest first, from these defaults, ``/etc/hostsetup.yaml``,
``~/.hostsetup.yaml``, ``./hostsetup.yaml``, ``HOSTSETUP_*`` environment
variables, ``-f FILE`` and command-line flags.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from fabric import Config
from invoke.config import merge_dicts
from invoke.env import Environment

from hostsetup import secrets
from hostsetup.daemon.settings import DAEMON_DEFAULTS
from hostsetup.inputs import InputError
from hostsetup.inputs.config import check_tree, env_label, file_label, flag_label
from hostsetup.inputs.files import load_mapping
from hostsetup.inputs.values import did_you_mean
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
    # Seconds a host may stay silent (no reply to SSH keepalives, no SSH greeting, no answer
    # during authentication) before it is given up as not answering; 0 turns the check off.
    "dead_host_timeout": 60,
    # Install settings (see hostsetup.settings); env: HOSTSETUP_INSTALL_MIRROR etc.
    "install": INSTALL_DEFAULTS,
    # daemon.json settings (see hostsetup.daemon.settings).
    "daemon": DAEMON_DEFAULTS,
    # `hostsetup login REGISTRY`: user name, users, and the password (HOSTSETUP_LOGIN_PASSWORD, or a file).
    "login": {"username": "", "password": "", "password_file": "", "users": ""},
}


# HOSTSETUP_* variables that are not settings: the sandbox's directories.
NOT_SETTINGS = {"HOSTSETUP_CACHE", "HOSTSETUP_SANDBOX_HOME"}


class StrictEnvironment(Environment):
    """``HOSTSETUP_*`` variables checked like every other layer (``hostsetup.inputs``): Invoke makes
    any non-empty string, ``false`` too, a True boolean and raises on a number that is not one; here
    a boolean setting takes true/false, yes/no, 1/0 and nothing else, a number must be one in range,
    and a value that does not fit is refused naming the variable."""

    def _cast(self, old: Any, new: Any) -> Any:
        if isinstance(old, (bool, int)):  # checked and converted by hostsetup.inputs, with ranges
            return new
        return super()._cast(old, new)

    def load(self) -> dict[str, Any]:
        known = {(self._prefix or "") + name for name in self._crawl(key_path=[], env_vars={})}
        for name in sorted(os.environ):
            if name.startswith(self._prefix or "\0") and name not in known | NOT_SETTINGS:
                raise InputError(f"{name}: no such setting{did_you_mean(name, known)}; unset it or fix its name")
        data: dict[str, Any] = super().load()
        check_tree(data, HostsetupConfig.global_defaults(), env_label(self._prefix.rstrip("_") or "HOSTSETUP"))
        return data


class HostsetupConfig(Config):  # type: ignore[misc]  # (fabric is untyped)
    """Fabric's configuration with hostsetup's file names, env prefix and defaults."""

    prefix = "hostsetup"

    def load_shell_env(self) -> None:
        self.merge()
        self._set(_env=StrictEnvironment(config=self._config, prefix=self._env_prefix).load())
        self.merge()
        # HOSTSETUP_SUDO_PASSWORD and friends arrive only now: masked from here on.
        secrets.register(self.sudo.password, self.connect_kwargs.get("password"),
                         self.connect_kwargs.get("passphrase"), self.login.password)

    def _load_yaml(self, path: Any) -> Any:
        """A configuration file, read by the one validation layer (size, UTF-8, YAML limits,
        duplicate keys, a mapping at the top, lines kept for messages)."""
        if not os.path.exists(path):  # Invoke tries hostsetup.yaml, .yml, .json: a missing one is skipped
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        data = load_mapping(path, "configuration file")
        check_tree(data, self.global_defaults(), file_label(str(path)))  # before Invoke merges it
        return data

    _load_yml = _load_yaml
    _load_json = _load_yaml

    def check_flags(self, flags: dict[str, Any]) -> None:
        """Check the fleet flags like a layer (files are checked as they are read, variables as
        they are loaded), converting values in place; raises ``InputError`` naming the flag."""
        check_tree(flags, self.global_defaults(), flag_label)

    @staticmethod
    def global_defaults() -> dict[str, Any]:
        defaults: dict[str, Any] = Config.global_defaults()
        merge_dicts(defaults, DEFAULTS)
        return defaults
