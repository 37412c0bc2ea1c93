"""Single values a user gives: checked, converted, or refused with a message that says the fix.

Every check takes the value and a *label*, the words that name where it came from
(``--parallel``, ``HOSTSETUP_PARALLEL``, ``./hostsetup.yaml:3: parallel``); the message starts
with the label.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostsetup.inputs import InputError
from hostsetup.inputs.files import type_name

_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})")
_LOGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_BATCH = re.compile(r"(\d+)(%?)")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'parallel'?)`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def whole_number(value: Any, label: str, low: int, high: int) -> int:
    """An integer from ``low`` to ``high``: a number, or text of digits (flags and variables)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
        number = int(value)
    if number is None:
        raise InputError(f"{label}: {value!r} is not a whole number; give one from {low} to {high}")
    if not low <= number <= high:
        raise InputError(f"{label}: {number} is out of range; give a number from {low} to {high}")
    return number


def seconds(value: Any, label: str, low: float = 0.1, high: float = 86400) -> float:
    """A duration in seconds (a whole or decimal number)."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number:  # NaN
        raise InputError(f"{label}: {value!r} is not a number of seconds")
    if not low <= number <= high:
        raise InputError(f"{label}: {value!r} is out of range; give {low:g} to {high:g} seconds")
    return number


def port(value: Any, label: str) -> int:
    return whole_number(value, label, 1, 65535)


def text(value: Any, label: str) -> str:
    """Text; a whole number is taken as written. A decimal number is refused: YAML reads
    ``version: 25.10`` as 25.1, so it must be quoted to mean what it says."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise InputError(f"{label}: {value!r} was read as a decimal number; put it in quotes "
                         f"('{value}') so that it stays as written")
    raise InputError(f"{label}: expected text, got a {type_name(value)}")


def text_list(value: Any, label: str) -> list[str]:
    """A list of text, or comma-separated text."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [text(item, f"{label}[{index}]") for index, item in enumerate(value)]
    raise InputError(f"{label}: expected a list or comma-separated text, got a {type_name(value)}")


def login_name(value: Any, label: str) -> str:
    """An SSH login user name."""
    name = text(value, label)
    if not _LOGIN.fullmatch(name):
        raise InputError(f"{label}: {name!r} is not a user name (letters, digits, '.', '_', '-')")
    return name


def host_address(value: Any, label: str) -> str:
    """A host name, ssh_config alias, IPv4 or IPv6 address."""
    name = text(value, label).strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(name) or ".." in name or name.endswith("-"):
        raise InputError(f"{label}: {value!r} is not a host name or address")
    return name


@dataclass(frozen=True)
class HostSpec:
    """``user@host:port`` split and checked."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        return f"{self.user + '@' if self.user else ''}{host}{':' + str(self.port) if self.port else ''}"

    @property
    def endpoint(self) -> tuple[str, int]:
        """What makes two entries the same machine to us: address and port."""
        return self.host.lower(), self.port or 22


def host_string(value: Any, label: str) -> HostSpec:
    """``[user@]host[:port]``, ``[user@][v6addr]:port`` or a bare IPv6 address (as Fabric reads them)."""
    raw = text(value, label).strip()
    if not raw:
        raise InputError(f"{label}: an empty host")
    user, at, rest = raw.rpartition("@")
    if at and not user:
        raise InputError(f"{label}: {raw!r} has an empty user before '@'")
    port_text: str | None = None
    if rest.startswith("["):
        address, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise InputError(f"{label}: {raw!r}: write an IPv6 address with a port as [address]:port")
        port_text = after[1:] if after else None
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
    else:
        address = rest
    where = f"{label} {raw!r}"
    return HostSpec(host_address(address, where), login_name(user, where) if user else None,
                    port(port_text, f"{where}: port") if port_text is not None else None)


def existing_file(value: Any, label: str) -> str:
    """A file to read that must exist now (a key, an ssh_config, known_hosts)."""
    path = text(value, label)
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{label}: {path} does not exist")
    if file.is_dir():
        raise InputError(f"{label}: {path} is a directory, not a file")
    if not os.access(file, os.R_OK):
        raise InputError(f"{label}: {path} cannot be read (permission denied)")
    return path


def output_file(value: Any, label: str) -> str:
    """A file hostsetup will write at the end (a report): its directory must exist and be writable
    now, so that nothing is lost after the hosts were worked on."""
    path = text(value, label)
    if not path.strip():
        raise InputError(f"{label}: an empty file name")
    file = Path(path).expanduser()
    parent = file.parent
    if file.is_dir():
        raise InputError(f"{label}: {path} is a directory; give a file name")
    if not parent.is_dir():
        raise InputError(f"{label}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise InputError(f"{label}: {path} cannot be written (permission denied)")
    return path


def batch(value: Any, label: str) -> str:
    """Rolling batches: ``N`` hosts or ``N%`` of them (empty: all at once)."""
    raw = text(value, label).strip()
    if not raw:
        return ""
    match = _BATCH.fullmatch(raw)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(1)) > 100):
        raise InputError(f"{label}: {raw!r} is neither a number of hosts (5) nor a percentage from 1% to 100%")
    return raw
