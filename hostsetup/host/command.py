"""Commands and scripts as data: what runs on a host, and what is shown of it.

A ``Command`` is a sequence of parts, each rendered two ways: ``text`` is what the host runs,
``shown`` what a plan, ``--dry-run``, an error or a report prints. Values go in as parts, never by
string pasting, so each is quoted once and exactly once:

- ``Raw``: shell text written by hostsetup itself (no quoting);
- ``Quoted``: one value as one shell word (a path, a user, a version from a host's index);
- ``Masked``: a secret as one shell word; registered with ``secrets`` and shown as ``***``;
- ``Payload``: file content (or a secret) fed through base64, byte for byte; shown as a
  here-document of the content (masked), so a dry-run reads as what is written.

``command(template, NAME=value, ...)`` fills ``@NAME@`` markers in one pass: a substituted value is
never searched again, so a value that happens to contain another marker's name stays as it is.
(In the spirit of pyinfra's ``StringCommand``/``QuoteString``/``MaskString``.)
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, Union

from hostsetup import secrets


class Part(Protocol):
    def text(self) -> str: ...

    def shown(self) -> str: ...


@dataclass(frozen=True)
class Raw:
    """Shell text hostsetup wrote: runs and shows as it is."""

    value: str

    def text(self) -> str:
        return self.value

    def shown(self) -> str:
        return self.value


@dataclass(frozen=True)
class Quoted:
    """One value as one shell word."""

    value: str

    def text(self) -> str:
        return shlex.quote(self.value)

    def shown(self) -> str:
        return shlex.quote(self.value)


@dataclass(frozen=True)
class Masked:
    """A secret as one shell word: quoted where it runs, ``***`` wherever it is shown."""

    value: str

    def __post_init__(self) -> None:
        secrets.register(self.value)

    def text(self) -> str:
        return shlex.quote(self.value)

    def shown(self) -> str:
        return secrets.MASK


HEREDOC_MARK = "HOSTSETUP_EOF"


@dataclass(frozen=True)
class Payload:
    """Content as the output of a command (``printf %s BASE64 | base64 -d``): byte-exact, whatever
    it holds (quotes, a here-document marker, no final newline). Shown as ``cat`` of a here-document
    of the content (its body after the end of the line, as the shell reads it), a secret as ``***``."""

    content: str
    secret: bool = False

    def __post_init__(self) -> None:
        if self.secret:
            secrets.register(self.content)
        if self.secret or secrets.holds_credentials(self.content):
            # The encoded form hides a password from text masking: it is masked as a whole instead, so a
            # script that carries it is never printed with it (a log, an error's tail, a debug dump).
            secrets.register(self.encoded)

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.content.encode()).decode()

    def text(self) -> str:
        return f"printf %s {self.encoded} | base64 -d"

    def shown(self) -> str:
        return f"printf %s {secrets.MASK}" if self.secret else f"cat <<'{self.marker}'"

    @property
    def marker(self) -> str:
        """``HOSTSETUP_EOF``, or with a number when the content holds that line."""
        lines = set(self.content.splitlines())
        return next(m for m in (HEREDOC_MARK, *(f"{HEREDOC_MARK}_{n}" for n in range(1, len(lines) + 2)))
                    if m not in lines)

    def body(self) -> str:
        """The here-document's lines and its end marker ("" for a secret)."""
        return "" if self.secret else f"{self.content.rstrip(chr(10))}\n{self.marker}"


Value = Union[str, int, Part, "Command"]


@dataclass(frozen=True)
class Command:
    """A command or script: its parts, rendered for the host (``text``) or for people (``shown``)."""

    parts: tuple[Part, ...] = ()

    @property
    def text(self) -> str:
        return "".join(part.text() for part in self.parts)

    @property
    def shown(self) -> str:
        """What is printed: secrets masked (the parts' own masking, then every registered secret).
        A payload's here-document body follows the end of its line."""
        out: list[str] = []
        bodies: list[str] = []
        for part in self.parts:
            piece = part.shown()
            if bodies and "\n" in piece:
                head, _, rest = piece.partition("\n")
                piece = "\n".join((head, *bodies, rest))
                bodies = []
            out.append(piece)
            if isinstance(part, Payload) and part.body():
                bodies.append(part.body())
        return secrets.mask("\n".join(("".join(out), *bodies)))

    def __str__(self) -> str:  # printing a command never shows a secret
        return self.shown

    def __add__(self, other: Value) -> Command:
        return Command((*self.parts, *_parts(other)))



def _parts(value: Value) -> tuple[Part, ...]:
    if isinstance(value, Command):
        return value.parts
    if isinstance(value, str):
        return (Raw(value),)
    if isinstance(value, int):
        return (Raw(str(value)),)
    return (value,)


def raw(text: str) -> Command:
    """Shell text hostsetup wrote, as a command."""
    return Command((Raw(text),))


def join(items: Iterable[Value], separator: str = "\n") -> Command:
    """``items`` one after the other, ``separator`` (shell text) between them."""
    parts: list[Part] = []
    for index, item in enumerate(items):
        if index and separator:
            parts.append(Raw(separator))
        parts.extend(_parts(item))
    return Command(tuple(parts))


def words(*values: Value) -> Command:
    """A command line: plain strings quoted as one word each, parts and commands as they are."""
    return join((Quoted(v) if isinstance(v, str) else v for v in values), " ")


_MARKER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def command(template: str, **values: Value) -> Command:
    """``template`` with each ``@NAME@`` replaced by ``values[NAME]`` in one pass.

    A ``str`` value is one quoted shell word (``Quoted``), an ``int`` its digits; pass ``Raw``,
    ``Masked``, ``Payload`` or a ``Command`` for anything else. A marker without a value, or a value
    without a marker, is a mistake in hostsetup and raises ``KeyError``."""
    parts: list[Part] = []
    used: set[str] = set()
    position = 0
    for match in _MARKER.finditer(template):
        name = match[1]
        if name not in values:
            raise KeyError(f"no value for @{name}@ in the command template")
        used.add(name)
        if match.start() > position:
            parts.append(Raw(template[position:match.start()]))
        value = values[name]
        parts.extend(_parts(Quoted(value) if isinstance(value, str) else value))
        position = match.end()
    if position < len(template):
        parts.append(Raw(template[position:]))
    unused = set(values) - used
    if unused:
        raise KeyError(f"the command template has no marker for {', '.join(sorted(unused))}")
    return Command(tuple(parts))


def runnable(value: Command | str) -> str:
    """What runs on the host: a ``Command``'s text, or a string as it is."""
    return value.text if isinstance(value, Command) else value
