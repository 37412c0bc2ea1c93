"""Characters that must never reach a file or command line from a setting.

Values from flags, files and the environment end up in deb822 and yum repository files,
systemd drop-ins and shell commands. A newline there adds a line of the attacker's choosing
(a second ``Trusted: yes`` stanza, an ``ExecStartPre=``); a quote or backslash ends a systemd
``Environment="..."`` value early. URLs never need any of these, so they are refused outright.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")           # control characters, newline and tab included
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\"'<>\\`{}|^]")  # RFC 3986 never needs these unencoded
_SYSTEMD_QUOTED = re.compile(r"[\x00-\x1f\x7f\"\\]")  # what ends or escapes a quoted systemd value


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used as given (whitespace, control characters, quotes), or None."""
    bad = _URL_FORBIDDEN.search(url)
    if bad is None:
        return None
    return f"contains {_describe(bad.group())}, which a URL never holds unencoded"


def systemd_value_problem(value: str) -> str | None:
    """Why ``value`` cannot stand inside a quoted systemd setting (``Environment="K=V"``), or None."""
    bad = _SYSTEMD_QUOTED.search(value)
    if bad is None:
        return None
    return f"contains {_describe(bad.group())}, which would break out of a systemd setting"


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _describe(char: str) -> str:
    names = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", " ": "a space",
             '"': "a double quote", "'": "a single quote", "\\": "a backslash"}
    return names.get(char, f"the character {char!r}")
