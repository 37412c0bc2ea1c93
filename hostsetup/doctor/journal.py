"""Reading the units' journal: the current failure, and the fatal lines in it.

A restart loop repeats the same error and systemd's own lines follow it
(``Start request repeated too quickly``); after the start limit, a later start
request never runs dockerd at all. So the doctor reads the whole current failure,
every attempt since the unit last started successfully, and keeps each distinct
fatal line: what dockerd or containerd said as it gave up (its plain stderr, or a
logrus ``level=fatal`` line), and systemd's own reasons (``status=203/EXEC``,
``Failed to execute ...``, ``Failed to resolve group ...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# systemd's own lines about the units, and dockerd's info chatter.
LIFECYCLE = re.compile(r"^(docker\.(service|socket): |Starting |Started |Stopping |Stopped |Failed to start |"
                       r"Listening on |Closed |Dependency failed|Scheduled restart)")
QUIET = re.compile(r"level=(info|debug|warning)\b")
# journalctl -o short-unix: "1795817521.111623 host dockerd[483]: message"
SHORT_UNIX = re.compile(r"^(\d+(?:\.\d+)?) \S+ ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$")
# logrus' text format, as dockerd and containerd log: time="..." level=fatal msg="..."
LOGRUS = re.compile(r'^time="[^"]*" level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S+)')
FATAL_LEVELS = ("fatal", "panic")
# The start of a unit's successful run: everything after the last one is the current failure.
STARTED = {
    "docker": re.compile(r"^Started (docker\.service|Docker Application Container Engine)"),
    "containerd": re.compile(r"^Started (containerd\.service|containerd container runtime)"),
}
# Which unit a systemd line speaks of ("docker.service: ...", "Stopping docker.service - ...", or by description).
SYSTEMD_UNIT = re.compile(r"\b(docker|containerd)\.(service|socket)\b")
DESCRIPTIONS = {"Docker Application Container Engine": "docker", "Docker Socket for the API": "docker",
                "containerd container runtime": "containerd"}
# systemd's reasons: the exit status of a process it could not even run as asked (exec, user, group,
# namespaces, ...: 200-243), and the lines that name the cause.
SYSTEMD_REASON = re.compile(r"(?:Main|Control) process exited, code=exited, status=(2\d\d)/(\w+)"
                            r"|Failed to execute |Failed at step |(?:Unable|Failed) to locate executable "
                            r"|Failed to resolve (?:user|group) "
                            r"|Failed to chown socket|Failed to create listening socket")
# Follow-on text that dockerd prints on lines of its own after a fatal error (iptables' advice).
CONTINUATION = re.compile(r"^(\s|\(exit status|Perhaps |See '\S+ --help')")


@dataclass(frozen=True)
class Line:
    """One journal message: when it was logged (seconds since the epoch; 0 when unknown), and by whom."""

    text: str
    time: float = 0.0
    source: str = ""      # the syslog identifier: dockerd, containerd, systemd ...
    pid: int = 0


def parse_journal(lines: Iterable[str]) -> list[Line]:
    """``journalctl -o short-unix`` lines; anything else is kept with time 0."""
    parsed = []
    for raw in lines:
        match = SHORT_UNIX.match(raw)
        parsed.append(Line(match[4], float(match[1]), match[2], int(match[3] or 0)) if match else Line(raw))
    return parsed


def _by_systemd(line: Line) -> bool:
    """systemd itself, or the child it forked to exec a unit's program (``(dockerd)``: not running it yet)."""
    return line.source == "systemd" or line.source.startswith("(")


def unit_of(line: Line) -> str:
    """``docker`` or ``containerd``: the unit a line belongs to ("" when it cannot be told)."""
    if _by_systemd(line):
        match = SYSTEMD_UNIT.search(line.text)
        if match:
            return match[1]
        return next((unit for words, unit in DESCRIPTIONS.items() if words in line.text), "")
    if line.source.startswith("containerd"):
        return "containerd"
    if line.source.startswith("docker"):
        return "docker"
    return ""


def current_failure(lines: Sequence[Line], unit: str) -> list[Line]:
    """``unit``'s lines (docker or containerd) since it last started successfully: every attempt of
    the failure now under way (all of this boot's lines when it never started)."""
    own = [line for line in lines if unit_of(line) == unit or (not line.source and unit == "docker")]
    started = [i for i, line in enumerate(own) if STARTED[unit].match(line.text)]
    return own[started[-1] + 1:] if started else own


def message(line: Line) -> str:
    """The message itself: logrus' ``msg`` unquoted, anything else as it is."""
    match = LOGRUS.match(line.text)
    if not match:
        return line.text.strip()
    text = match[2]
    if text.startswith('"'):
        text = re.sub(r'\\(.)', r'\1', text[1:-1])
    return text


@dataclass(frozen=True)
class Fatal:
    """A distinct fatal line of the current failure: its message, who said it, when first, how often."""

    text: str
    source: str
    time: float           # first logged
    count: int = 1
    last: float = 0.0     # last logged

    @property
    def evidence(self) -> str:
        repeat = f" (logged {self.count} times)" if self.count > 1 else ""
        said = self.text if self.text.startswith(f"{self.source}:") else f"{self.source or 'journal'}: {self.text}"
        return said + repeat


def _fatal_text(line: Line) -> str | None:
    if _by_systemd(line):
        return line.text if SYSTEMD_REASON.search(line.text) else None
    logrus = LOGRUS.match(line.text)
    if logrus:
        return message(line) if logrus[1] in FATAL_LEVELS else None
    text = line.text.strip()
    # A daemon's plain stderr is what main() printed as it gave up (its logging is logrus).
    if not text or CONTINUATION.match(line.text) or "[core]" in text or LIFECYCLE.match(text):
        return None
    return text


def fatal_lines(lines: Sequence[Line]) -> list[Fatal]:
    """Each distinct fatal message in ``lines``, in the order first logged (continuation lines joined)."""
    found: dict[str, Fatal] = {}
    last: tuple[str, int] | None = None
    for line in lines:
        if last and CONTINUATION.match(line.text) and (line.source, line.pid) == last:
            continue
        text = _fatal_text(line)
        last = None
        if text is None:
            continue
        key = re.sub(r"\b(pid|PID) \d+|\[\d+\]", "", text)
        seen = found.get(key)
        found[key] = Fatal(text, line.source, line.time, 1, line.time) if seen is None else \
            Fatal(seen.text, seen.source, seen.time, seen.count + 1, line.time)
        last = (line.source, line.pid)
    return list(found.values())


def first_match(lines: Sequence[Line], pattern: str) -> Line | None:
    regex = re.compile(pattern)
    return next((line for line in lines if regex.search(line.text)), None)


def first_error(lines: Sequence[Line]) -> Line | None:
    """The first line that is neither systemd's lifecycle chatter nor dockerd info/warning output."""
    return next((line for line in lines
                 if line.text.strip() and not LIFECYCLE.match(line.text) and not QUIET.search(line.text)), None)
