"""dockerd's command line: the ExecStart in force (``systemctl cat docker``), its -H/--host values,
flags removed (pure). Daemon planning and doctor's rules and fixes all read it here."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

# dockerd's command line in Docker's own docker.service (what a host runs without a drop-in).
DEFAULT_ARGV = ("/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
DEFAULT_COMMAND = shlex.join(DEFAULT_ARGV)


def effective_execstart(unit_text: str) -> str | None:
    """The ExecStart in force: drop-ins override in order, and an empty value resets."""
    command: str | None = None
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            value = line.removeprefix("ExecStart=").strip()
            command = value or None
    return command


def drop_flags(command: str, flags: set[str], takes_value: bool = True) -> tuple[str, list[str]]:
    """Remove ``flags`` (with their values, if they take one) from a dockerd command line.

    Handles ``-H fd://``, ``-Hfd://``, ``--host fd://``, ``--host=fd://`` and boolean ``-D``.
    Returns the new command and the removed words.
    """
    words = shlex.split(command)
    kept: list[str] = []
    removed: list[str] = []
    skip_value = False
    for word in words:
        if skip_value:
            removed.append(word)
            skip_value = False
            continue
        name = word.split("=", 1)[0]
        short = next((f for f in flags if len(f) == 2 and f.startswith("-") and not f.startswith("--")
                      and word.startswith(f) and len(word) > 2), None) if takes_value else None
        if name in flags:
            removed.append(word)
            skip_value = takes_value and "=" not in word
        elif short is not None:
            removed.append(word)
        else:
            kept.append(word)
    return shlex.join(kept), removed


def flag_names(spec: str | None) -> set[str]:
    """``"-H, --host"`` or ``"-H/--host"`` -> ``{"-H", "--host"}``."""
    if not spec:
        return set()
    return {part.strip() for part in spec.replace("/", ",").split(",") if part.strip().startswith("-")}


def host_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split dockerd's words into its -H/--host values (``-H x``, ``-Hx``, ``-H=x``, ``--host x``,
    ``--host=x``; a trailing ``-H`` gives "") and the other words."""
    hosts, rest = [], []
    words = iter(argv)
    for word in words:
        if word in ("-H", "--host"):
            hosts.append(next(words, ""))
        elif word.startswith("--host="):
            hosts.append(word.split("=", 1)[1])
        elif word.startswith("-H") and len(word) > 2:
            hosts.append(word[2:].removeprefix("="))
        else:
            rest.append(word)
    return hosts, rest


def sets_hosts(argv: Sequence[str]) -> bool:
    """Whether the command line (program first) sets an address with -H/--host."""
    return bool(host_flags(argv[1:])[0])
