"""What a fatal line is about: rules on the grammar of dockerd's, containerd's and systemd's messages.

dockerd gives up with one line that wraps its errors from the outside in
(``failed to start daemon: error initializing graphdriver: driver not supported``);
the words of each part name the subsystem. So each rule is a subsystem's vocabulary,
not one message per case, and the rules are tried in order, most specific first. A
value that daemon.json sets and that the line quotes makes the line about that key
(``invalid CIDR address: 300.0.0.1/24`` is the ``bip`` the file sets), unless the
subsystem is one whose fix is its own (a storage driver, user namespaces, firewall).
A line no rule knows is ``DAEMON_START_FAILED``, given exactly as logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hostsetup.doctor.findings import CODES


@dataclass(frozen=True)
class Cause:
    """A subsystem: the code for it and the words that name it in a fatal line."""

    code: str
    words: re.Pattern[str]
    config_first: bool = True   # a daemon.json value quoted in the line makes it CONFIG_INVALID_VALUE instead


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _causes(program: str) -> tuple[Cause, ...]:
    """The codes whose entry (``findings.CODES``) names their subsystem's words in ``program``'s fatal lines,
    in their ``match`` order."""
    named = [(code, entry) for code, entry in CODES.items() if getattr(entry, program)]
    return tuple(Cause(code, _words(getattr(entry, program)), entry.config_first)
                 for code, entry in sorted(named, key=lambda item: item[1].match))


# dockerd's (and systemd's lines about docker) subsystems, most specific first; containerd's.
DAEMON_CAUSES = _causes("dockerd")
CONTAINERD_CAUSES = _causes("containerd")
# A client error about its own configuration rather than the daemon (docker CLI 20.10 to 28).
CLIENT_CONFIG = _words(r"context|config file|config\.json|DOCKER_HOST|docker host|DOCKER_CONFIG|DOCKER_CERT_PATH|"
                       r"DOCKER_TLS|unable to parse|unable to resolve|certificate|\btls\b|x509|API version|"
                       r"client version|\.pem\b")
NOT_CLIENT_CONFIG = _words(r"Cannot connect to the Docker daemon|permission denied|Is the docker daemon running|"
                           r"error during connect|failed to connect to the docker API")


def values(config: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (key path, value as text) daemon.json sets: nested keys as ``a.b``, list items as they are."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from values(value, f"{path}.")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from values(item, f"{path}.")
                else:
                    yield path, str(item)
        elif not isinstance(value, bool) and value is not None:
            yield path, str(value)


def blamed_key(text: str, config: dict[str, Any]) -> tuple[str, str] | None:
    """The daemon.json (key, value) that ``text`` quotes: the longest value found whole in it."""
    found = []
    for key, value in values(config):
        quoted = re.escape(value)
        # "invalid CIDR address: 300.0.0.1/24"; a short value only right after its own name ("pools size: 4");
        # an option list's "name=value" by its name ("native.cgroupdriver option foo", "unknown option
        # overlay2.override_kernel_check").
        named = rf"\b{re.escape(key.rpartition('.')[2])}\W{{1,3}}{quoted}(?![\w/-])"
        option = value.partition("=")[0] if "=" in value else ""
        if (len(value) >= 2 and re.search(rf"(?<![\w.:/=-]){quoted}(?![\w/-])", text)) or re.search(named, text) \
                or (len(option) >= 3 and re.search(rf"(?<![\w.-]){re.escape(option)}(?![\w-])", text)):
            found.append((len(value), key, value))
    if not found:
        return None
    _length, key, value = max(found)
    return key, value


def classify_line(text: str, causes: tuple[Cause, ...], config: dict[str, Any]) -> tuple[str, str, str]:
    """(code, blamed daemon.json key, its value) for one fatal line."""
    blamed = blamed_key(text, config)
    for cause in causes:
        if cause.words.search(text):
            if blamed and cause.config_first:
                return "CONFIG_INVALID_VALUE", *blamed
            return cause.code, *(blamed or ("", ""))
    if blamed:
        return "CONFIG_INVALID_VALUE", *blamed
    return "DAEMON_START_FAILED", "", ""
