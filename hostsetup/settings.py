"""Install settings: what the user wants, validated before any host is touched."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from hostsetup import secrets
from hostsetup.errors import HostsetupError
from hostsetup.mirrors import resolve_mirror
from hostsetup.openpgp import normalize_fingerprint

INSTALL_DEFAULTS: dict[str, Any] = {
    "mirror": "official",
    "insecure_mirror": False,
    "key_fingerprint": "",
    "version": "",
    "hold": False,
    "allow_downgrade": False,  # --version below the installed one is refused without it
    "plugins": True,
    "users": "",           # comma-separated (a string, so HOSTSETUP_INSTALL_USERS=a,b works)
    "lock_timeout": 120,   # seconds to wait for a package-manager lock another process holds
}
# Well inside the 900 s a remote command may take (remote.Remote.command_timeout), transaction included.
MAX_LOCK_TIMEOUT = 600

_VERSION = re.compile(r"\d+(\.\d+){0,2}|\d+:[\w.~+-]+")   # always fullmatch: "$" lets "x\n" through
_USER = re.compile(r"[a-z_][a-z0-9_-]*[$]?")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0", "")


class SettingsError(HostsetupError):
    """A setting is invalid."""


@dataclass(frozen=True)
class InstallSettings:
    mirror_name: str
    mirror_url: str
    key_fingerprint: str | None  # None: Docker's published key for the family
    version: str | None          # "25.0", "25.0.3" or an exact package version
    hold: bool
    plugins: bool
    users: tuple[str, ...]
    lock_timeout: int = INSTALL_DEFAULTS["lock_timeout"]
    allow_downgrade: bool = False


def parse_bool(value: Any, name: str) -> bool:
    """A strict boolean: true/false, yes/no, on/off, 1/0 (any case); anything else is refused.
    (Invoke would cast any non-empty string, "false" too, to True.)"""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise SettingsError(f"{name}: {value!r} is not a boolean; use true or false (yes/no, 1/0)")


def valid_user(user: str) -> bool:
    """A POSIX-ish user name (what useradd accepts by default), matched whole."""
    return _USER.fullmatch(user) is not None


def check_version(value: str, label: str = "version") -> str | None:
    """A docker-ce version pin as written (None: the newest), or ``SettingsError`` naming ``label``."""
    version = value.strip() or None
    if version and not _VERSION.fullmatch(version):
        raise SettingsError(f"{label}: {version!r} is neither a short version like 25.0 or 25.0.3 nor an exact "
                            "package version like 5:25.0.3-1~debian.12~bookworm")
    return version


def check_users(users: list[str], label: str = "users") -> tuple[str, ...]:
    """Users for the docker group, each a valid user name."""
    for user in users:
        if not valid_user(user):
            raise SettingsError(f"{label}: {user!r} is not a valid user name")
    return tuple(users)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]


def install_settings(raw: Mapping[str, Any]) -> InstallSettings:
    """Validate the merged ``install`` config into ``InstallSettings``."""
    values = {**INSTALL_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    unknown = set(values) - set(INSTALL_DEFAULTS)
    if unknown:
        raise SettingsError(f"unknown install setting(s): {', '.join(sorted(unknown))}")
    flags = {k: parse_bool(values[k], f"install.{k}")
             for k in ("insecure_mirror", "hold", "plugins", "allow_downgrade")}
    name, url = resolve_mirror(str(values["mirror"]), flags["insecure_mirror"])
    secrets.register_url_credentials([url])
    fingerprint = None
    if values["key_fingerprint"]:
        try:
            fingerprint = normalize_fingerprint(str(values["key_fingerprint"]))
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    version = check_version(str(values["version"]))
    users = check_users(_as_list(values["users"]))
    return InstallSettings(name, url, fingerprint, version, flags["hold"], flags["plugins"], users,
                           parse_lock_timeout(values["lock_timeout"]), flags["allow_downgrade"])


def parse_lock_timeout(value: Any) -> int:
    """Whole seconds, 0 (do not wait) to ``MAX_LOCK_TIMEOUT``; from YAML an int, from HOSTSETUP_* a string."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) > MAX_LOCK_TIMEOUT:
        raise SettingsError(f"install.lock_timeout: {value!r} is not a number of seconds from 0 to "
                            f"{MAX_LOCK_TIMEOUT} (how long to wait for another apt-get/dnf to finish)")
    return int(text)


def settings_as_dict(settings: InstallSettings) -> dict[str, Any]:
    """The settings as plain JSON data, exactly (``settings_from_dict`` reads them back)."""
    return {**asdict(settings), "users": list(settings.users)}


def settings_from_dict(data: Mapping[str, Any]) -> InstallSettings:
    """The ``InstallSettings`` that ``settings_as_dict`` wrote: no preset or URL resolved again."""
    return InstallSettings(**{**data, "users": tuple(data["users"])})


def settings_as_config(settings: InstallSettings) -> dict[str, Any]:
    """The ``install`` section of a settings file that ``install_settings`` reads back into ``settings``
    (for a server that resolves its own settings: ``hostsetup cloud-init``)."""
    return {"mirror": settings.mirror_url if settings.mirror_name == "custom" else settings.mirror_name,
            "insecure_mirror": settings.mirror_url.startswith("http://"),
            "key_fingerprint": settings.key_fingerprint or "", "version": settings.version or "",
            "hold": settings.hold, "allow_downgrade": settings.allow_downgrade, "plugins": settings.plugins,
            "users": ",".join(settings.users), "lock_timeout": settings.lock_timeout}
