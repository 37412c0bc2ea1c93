"""The configuration, layer by layer, checked against the defaults before anything runs.

Each layer (``/etc/hostsetup.yaml``, ``~/.hostsetup.yaml``, ``./hostsetup.yaml``, ``-f FILE``,
``HOSTSETUP_*`` variables, command-line flags) is walked key by key against the defaults tree:

* a key the defaults do not have is refused, with "did you mean" (mappings whose default is
  empty, like ``connect_kwargs`` or ``daemon.settings``, are free-form);
* a value takes the kind of its default (a boolean, a whole number, text, a list, a mapping),
  and ``RULES`` add ranges and meanings (ports, host strings, files that must exist);
* values are converted in place ("5" from a flag or a variable becomes 5, "yes" becomes True),
  so the merged configuration holds checked values only.

Each refusal names its source: ``./hostsetup.yaml:3: parallel: ...``, ``HOSTSETUP_PARALLEL: ...``
or ``--parallel: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from hostsetup.errors import HostsetupError
from hostsetup.inputs import InputError
from hostsetup.inputs.files import type_name, where
from hostsetup.inputs.values import (
    batch,
    did_you_mean,
    existing_file,
    host_string,
    login_name,
    output_file,
    port,
    seconds,
    text,
    text_list,
    whole_number,
)
from hostsetup.settings import check_users, check_version, parse_bool

Rule = Callable[[Any, str], Any]
Label = Callable[[tuple[str, ...], Any, str], str]


def _range(low: int, high: int) -> Rule:
    return lambda value, label: whole_number(value, label, low, high)


def _optional(rule: Rule) -> Rule:
    return lambda value, label: value if value in (None, "") else rule(value, label)


def _files(value: Any, label: str) -> list[str]:
    items = [value] if isinstance(value, str) else text_list(value, label)
    return [existing_file(item, label) for item in items]


def hosts_rule(value: Any, label: str) -> list[str]:
    """Host strings, each checked; the same machine twice is refused."""
    seen: dict[tuple[str, int], str] = {}
    out = []
    for item in text_list(value, label):
        spec = host_string(item, label)
        if spec.endpoint in seen:
            raise InputError(f"{label}: {seen[spec.endpoint]!r} and {item!r} are the same host; give it once")
        seen[spec.endpoint] = item
        out.append(item.strip())
    return out


def _bool(value: Any, label: str) -> bool:
    try:
        return parse_bool(value, label)
    except HostsetupError as exc:  # SettingsError: the same words, from the one place
        raise InputError(str(exc)) from None


def _settings_rule(check: Callable[[Any, str], Any], value: Any, label: str) -> Any:
    """One of hostsetup.settings' checks, its refusal as an input error."""
    try:
        return check(value, label)
    except HostsetupError as exc:
        raise InputError(str(exc)) from None


RULES: dict[str, Rule] = {
    "hosts": hosts_rule,
    "known_hosts": _files,
    "inventory": _optional(existing_file),
    "limit": text,
    "parallel": _range(1, 1000),
    "max_fail_percent": _range(0, 100),
    "connect_attempts": _range(1, 20),
    "batch": batch,
    "user": _optional(login_name),
    "port": port,
    "ssh_config_path": _optional(existing_file),
    "connect_kwargs.key_filename": _files,
    "connect_kwargs.password": _optional(text),
    "connect_kwargs.passphrase": _optional(text),
    "sudo.password": _optional(text),
    "connect_kwargs.port": port,
    "connect_kwargs.timeout": _optional(seconds),
    "timeouts.connect": _optional(seconds),
    "timeouts.command": _optional(seconds),
    "install.lock_timeout": _range(0, 600),
    "dead_host_timeout": _range(0, 86400),
    "install.users": lambda value, label: list(_settings_rule(check_users, text_list(value, label), label)),
    "install.version": lambda value, label: _settings_rule(check_version, text(value, label), label) or "",
    "install.key_fingerprint": text,
    "install.mirror": text,
    "daemon.profiles": text_list,
    "daemon.template": _optional(existing_file),
    "login.password_file": _optional(existing_file),
}


# Task flags with the same name mean the same thing in every task.
TASK_FLAG_RULES: dict[str, Rule] = {
    "json": output_file,
    "html": output_file,
    "junit_xml": output_file,
    "template": existing_file,
}


def check_tree(data: MutableMapping[str, Any], defaults: Mapping[str, Any], label: Label,
               path: tuple[str, ...] = ()) -> None:
    """Check ``data`` against ``defaults`` (recursively), converting values in place."""
    for key in list(data):
        name = str(key)
        here = (*path, name)
        if name not in defaults and not (isinstance(defaults, Mapping) and not defaults and path):
            choices = [str(k) for k in defaults]
            known = f"; known here: {', '.join(sorted(choices))}" if 0 < len(choices) <= 12 else ""
            raise InputError(f"{label(here, data, name)}: unknown setting{did_you_mean(name, choices)}{known}")
        default = defaults.get(name)
        if isinstance(default, Mapping) and RULES.get(".".join(here)) is None:
            check_mapping(data, key, default, label, here,
                          f"{label(here, data, name)}: expected a mapping (key: value), got a")
        else:
            data[key] = _checked_value(data[key], default, RULES.get(".".join(here)), label(here, data, name),
                                       free=not defaults and bool(path))


def _checked_value(value: Any, default: Any, rule: Any, where: str, free: bool) -> Any:
    """One value checked (and converted) by its rule, else as its default's type says."""
    if rule is not None:
        return rule(value, where)
    if isinstance(default, bool):
        return _bool(value, where)
    if isinstance(default, int):
        return whole_number(value, where, 0, 10 ** 9)
    if isinstance(default, float):
        return seconds(value, where, 0, 10 ** 9)
    if isinstance(default, str):
        return text(value, where)
    if isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
        raise InputError(f"{where}: expected a list, got a {type_name(value)}")
    if default is None and isinstance(value, Mapping) and not free:
        raise InputError(f"{where}: expected a single value, got a mapping")
    return value


def check_mapping(data: MutableMapping[str, Any], key: str, defaults: Mapping[str, Any], label: Label,
                  here: tuple[str, ...], refusal: str, error: type[InputError] = InputError) -> None:
    """``data[key]``, a section of settings: none is an empty one, a mapping is checked against ``defaults``,
    anything else is refused (``error``: ``refusal`` and the type found)."""
    value = data[key]
    if value is None:
        data[key] = {}
    elif not isinstance(value, MutableMapping):
        raise error(f"{refusal} {type_name(value)}")
    else:
        check_tree(value, defaults, label, here)


def file_label(source: str) -> Label:
    """Labels for a file layer: ``file:line: dotted.key``."""
    return lambda path, mapping, key: f"{where(source, mapping, key)}: {'.'.join(path)}"


def env_label(prefix: str) -> Label:
    return lambda path, mapping, key: f"{prefix.upper()}_{'_'.join(path).upper()}"


FLAG_NAMES = {"hosts": "-H", "parallel": "--parallel", "batch": "--batch", "limit": "--limit",
              "inventory": "--inventory", "max_fail_percent": "--max-fail-percent"}


def flag_label(path: tuple[str, ...], mapping: Any, key: str) -> str:
    return FLAG_NAMES.get(".".join(path), "--" + ".".join(path).replace("_", "-"))


