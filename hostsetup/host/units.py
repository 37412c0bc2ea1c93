"""systemd units as ``systemctl show`` reports them: one reading, one meaning of "running".

Install's facts and doctor's probes both ask ``systemctl show -p PROPS UNITS`` and read the answer
here; facts ask for fewer properties, the rest keep their defaults."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The units hostsetup looks at (install's facts, doctor's probes).
DOCKER_UNITS = ("docker.service", "docker.socket", "containerd.service")
# What install's facts read (enough to plan); doctor reads ``PROBED_PROPS``.
FACT_PROPS = "Id,LoadState,ActiveState,SubState,UnitFileState"
PROBED_PROPS = (f"{FACT_PROPS},Result,NRestarts,ExecMainStatus,"
                "ExecMainCode,MainPID,ExecStart,FragmentPath,DropInPaths,NeedDaemonReload,Listen,SocketGroup")


@dataclass(frozen=True)
class Unit:
    """What ``systemctl show`` says about one unit."""

    name: str = ""
    load: str = "not-found"
    active: str = "inactive"
    sub: str = "dead"
    file_state: str = ""
    result: str = ""
    restarts: int = 0
    exit_status: int = 0
    main_pid: int = 0
    argv: tuple[str, ...] = ()
    drop_ins: tuple[str, ...] = ()
    need_reload: bool = False
    listen: str = ""
    socket_group: str = ""

    @property
    def running(self) -> bool:
        """Up: active, or active and reloading its configuration."""
        return self.active in ("active", "reloading")

    @property
    def enabled(self) -> bool:
        return self.file_state in ("enabled", "enabled-runtime", "static", "alias")

    @property
    def masked(self) -> bool:
        return self.load == "masked" or self.file_state.startswith("masked")

    @property
    def installed(self) -> bool:
        return self.load != "not-found"


def whole(value: str, default: int = 0) -> int:
    """``value`` as an int; ``default`` when it is not one."""
    try:
        return int(value)
    except ValueError:
        return default


def key_values(lines: Iterable[str]) -> dict[str, str]:
    """``Key=value`` lines as a dict (the value may hold ``=``)."""
    return dict(line.partition("=")[::2] for line in lines if "=" in line)


def parse_unit(name: str, lines: Iterable[str]) -> Unit:
    """One unit's ``systemctl show`` lines (``Key=value``)."""
    p = key_values(lines)
    argv = re.search(r"argv\[\]=([^;]*) ;", p.get("ExecStart", ""))
    return Unit(name, p.get("LoadState", "not-found"), p.get("ActiveState", "inactive"),
                p.get("SubState", "dead"), p.get("UnitFileState", ""), p.get("Result", ""),
                whole(p.get("NRestarts", "0")), whole(p.get("ExecMainStatus", "0")), whole(p.get("MainPID", "0")),
                tuple(argv[1].split()) if argv else (), tuple(p.get("DropInPaths", "").split()),
                p.get("NeedDaemonReload") == "yes", p.get("Listen", ""), p.get("SocketGroup", ""))


def parse_units(lines: Iterable[str]) -> dict[str, Unit]:
    """``systemctl show -p Id,...`` output for several units: a block per unit, each starting at ``Id=``."""
    units: dict[str, Unit] = {}
    block: list[str] = []

    def flush() -> None:
        name = next((line.partition("=")[2] for line in block if line.startswith("Id=")), None)
        if name is not None:
            units[name] = parse_unit(name, block)
        block.clear()

    for line in lines:
        if line.startswith("Id=") and any(b.startswith("Id=") for b in block):
            flush()
        block.append(line)
    flush()
    return units
