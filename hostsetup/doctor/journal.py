"""Reading the docker unit's journal: the last start attempt and the lines that matter in it.

A restart loop repeats the same error and systemd's own lines follow it
(``Start request repeated too quickly``); the real cause is the first dockerd
error after the last ``Starting docker.service`` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

START = re.compile(r"^Starting (docker\.service|Docker Application Container Engine)")
# systemd's own lines about the units, and dockerd's info chatter.
LIFECYCLE = re.compile(r"^(docker\.(service|socket): |Starting |Started |Stopping |Stopped |Failed to start |"
                       r"Listening on |Closed |Dependency failed|Scheduled restart)")
QUIET = re.compile(r"level=(info|debug|warning)\b")
SHORT_UNIX = re.compile(r"^(\d+(?:\.\d+)?) \S+ [^:\s]+: (.*)$")


@dataclass(frozen=True)
class Line:
    """One journal message and when it was logged (seconds since the epoch; 0 when unknown)."""

    text: str
    time: float = 0.0


def parse_journal(lines: Iterable[str]) -> list[Line]:
    """``journalctl -o short-unix`` lines; anything else is kept with time 0."""
    parsed = []
    for raw in lines:
        match = SHORT_UNIX.match(raw)
        parsed.append(Line(match[2], float(match[1])) if match else Line(raw))
    return parsed


def last_attempt(lines: Sequence[Line]) -> list[Line]:
    """The lines after the last ``Starting docker.service`` (all of them when there is none)."""
    starts = [i for i, line in enumerate(lines) if START.match(line.text)]
    return list(lines[starts[-1] + 1:]) if starts else list(lines)


def first_match(lines: Sequence[Line], pattern: str) -> Line | None:
    regex = re.compile(pattern)
    return next((line for line in lines if regex.search(line.text)), None)


def first_error(lines: Sequence[Line]) -> Line | None:
    """The first line that is neither systemd's lifecycle chatter nor dockerd info/warning output."""
    return next((line for line in lines
                 if line.text.strip() and not LIFECYCLE.match(line.text) and not QUIET.search(line.text)), None)
