"""Host facts: one POSIX sh script, one SSH round trip, parsed by pure functions.

The script prints sections introduced by ``@@name`` lines; file contents travel
base64-encoded so any byte survives. ``parse_facts`` turns the output into a
``HostFacts`` value that planning reads; it never touches the network.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from hostsetup.distros import (
    ALL_CONFLICTS,
    APT,
    COMPANION_PACKAGES,
    ENGINE_PACKAGES,
    PLUGIN_PACKAGES,
    RPM,
    parse_os_release,
)
from hostsetup.host.command import Raw, command, words
from hostsetup.host.packages import MANAGERS, VERSIONLOCK_LISTS, holders_script
from hostsetup.host.paths import DAEMON_JSON, EXECSTART_DROPIN, PROXY_DROPIN
from hostsetup.host.units import DOCKER_UNITS, FACT_PROPS, Unit, parse_units
from hostsetup.host.versions import engine_version

# Every package a plan asks about, from the OS table and the package managers.
FACT_PACKAGES = tuple(dict.fromkeys((
    *ENGINE_PACKAGES, *PLUGIN_PACKAGES, *COMPANION_PACKAGES, *ALL_CONFLICTS, *APT.prerequisites, *RPM.prerequisites,
    *(m.lock_plugin for m in MANAGERS.values() if m.lock_plugin),
)))
FACT_FILES = tuple(dict.fromkeys((
    APT.repo_file, APT.key_file, *APT.legacy_files, RPM.repo_file, RPM.key_file,
    *RPM.legacy_files, DAEMON_JSON, *VERSIONLOCK_LISTS.values(),
    EXECSTART_DROPIN, PROXY_DROPIN,
)))
DPKG_UNFINISHED = "UHFWt"  # dpkg-query's ${db:Status-Abbrev} status letters of a package left mid-way

_SCRIPT = r"""
sec() { printf '\n@@%s\n' "$1"; }
# dockerd --version is the slowest probe (a Go binary starting): run it alongside.
dv=$(mktemp); dockerd --version > "$dv" 2>/dev/null & dpid=$!
sec os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
sec arch; uname -m; dpkg --print-architecture 2>/dev/null || echo
sec identity; id -u; id -un
sec sudo
if [ "$(id -u)" = 0 ]; then echo root
elif sudo -n true 2>/dev/null; then echo nopasswd
elif command -v sudo >/dev/null 2>&1; then echo password
else echo none; fi
sec commands; for c in apt-get dnf yum rpm dpkg curl systemctl; do command -v $c >/dev/null 2>&1 && echo $c; done
sec packages
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Abbrev}\n' @PACKAGES@ 2>/dev/null
elif command -v rpm >/dev/null 2>&1; then
  rpm -q --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\tii \n' @PACKAGES@ 2>/dev/null | grep '	'
fi
sec holds; apt-mark showhold 2>/dev/null
sec files
@READ_FILES@
@DOCKER_CONFIGS@
sec homes; for u in @USERS@ "$(id -un)"; do getent passwd "$u"; done
sec group; getent group docker
sec users
for u in @USERS@; do printf '%s\t' "$u"; id -nG "$u" 2>/dev/null || echo '!missing'; done
sec units; systemctl show -p @FACT_PROPS@ @UNITS@ 2>/dev/null
sec docker-unit; systemctl cat docker.service 2>/dev/null
sec dockerd; wait "$dpid" 2>/dev/null; cat "$dv"; rm -f "$dv"
sec available
if command -v apt-cache >/dev/null 2>&1; then
  apt-cache madison docker-ce 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}'
fi
sec pkg-state
if command -v dpkg >/dev/null 2>&1; then
  # (dpkg's journal directory spelled as a glob: this script's command line, seen in ps, must not
  # look like a package manager at work to a process search)
  [ -n "$(ls -A /var/lib/dpkg/upd[a]tes 2>/dev/null)" ] && echo dpkg-journal
  # as a user, dpkg --audit cannot check the lock while a journal is pending: then through sudo -n
  [ -n "$(dpkg --audit 2>/dev/null || sudo -n dpkg --audit 2>/dev/null)" ] && echo dpkg-audit
fi
@LOCK_HOLDERS@
hs_lock_holders | sed 's/^/holder /'
@CONTAINERS@
@ENGINE_STATE@
@SIZES@
sec end
"""


_READ_FILES = r"""# Files hostsetup wrote 0600 (they hold credentials), and files under directories a user cannot
# search, are read through passwordless sudo: ALL files in ONE sudo call (one per file cost 10 ms each,
# most of a no-op's time on the host); with a sudo password they stay "unreadable" here and the runner
# reads them as root.
hs_read_one='if [ -r "$f" ]; then printf "%s\tpresent\t" "$f"; base64 < "$f" | tr -d "\n"; echo
elif [ -e "$f" ]; then printf "%s\tunreadable\t\n" "$f"; fi'
if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then
  sudo -n sh -c "for f; do $hs_read_one; done" sh @FILES@
else
  for f in @FILES@; do eval "$hs_read_one"; done
fi
"""
# Each user's Docker client configuration (registry logins), read AS THAT USER (runuser): a link in
# a home must not lead root to another file (whose content hostsetup would write back into the
# user's); only a regular file is read, a FIFO or a dangling link is "unreadable". Where this shell
# cannot act as the user (sudo asks a password) the file is "unreadable" here, and read as root later.
_DOCKER_CONFIGS = r"""hs_as() { hs_u=$1; shift
  if [ "$hs_u" = "$(id -un)" ]; then "$@"
  elif [ "$(id -u)" = 0 ]; then runuser -u "$hs_u" -- "$@"
  else sudo -n runuser -u "$hs_u" -- "$@"; fi
}
for u in @USERS@; do
  h=$(getent passwd "$u" | cut -d: -f6); [ -n "$h" ] || continue
  while [ "$h" != "${h%/}" ]; do h=${h%/}; done
  f="$h/@DOCKER_CONFIG_PATH@"
  if ! hs_as "$u" true 2>/dev/null; then printf '%s\tunreadable\t\n' "$f"
  elif hs_as "$u" test -f "$f" 2>/dev/null && c=$(hs_as "$u" timeout 10 base64 "$f" 2>/dev/null); then
    printf '%s\tpresent\t%s\n' "$f" "$(printf '%s' "$c" | tr -d '\n')"
  elif hs_as "$u" test -e "$f" 2>/dev/null || hs_as "$u" test -L "$f" 2>/dev/null; then
    printf '%s\tunreadable\t\n' "$f"
  fi
done"""
DOCKER_CONFIG_PATH = ".docker/config.json"   # under a user's home


def docker_config_path(home: str) -> str:
    """Where a user's client configuration is, exactly as the facts script names it."""
    return f"{home.rstrip('/')}/{DOCKER_CONFIG_PATH}"


def docker_configs_script(users: tuple[str, ...], login_user: bool = True) -> str:
    """Print a file row for each user's ``~/.docker/config.json`` (``login_user``: the shell's user's too)."""
    return command(_DOCKER_CONFIGS, DOCKER_CONFIG_PATH=Raw(DOCKER_CONFIG_PATH),
                   USERS=words(*users, *([Raw('"$(id -un)"')] if login_user else []))).text


def read_files_script(paths: tuple[str, ...] | list[str]) -> str:
    """Print ``path<TAB>present<TAB>base64`` (or ``unreadable``) for each existing file."""
    return command(_READ_FILES, FILES=words(*paths)).text


def parse_file_rows(lines: list[str]) -> dict[str, str | None]:
    """``read_files_script``'s output: path -> content (None: exists but unreadable)."""
    files: dict[str, str | None] = {}
    for row in _tabbed(lines):
        if len(row) >= 2:
            files[row[0]] = (base64.b64decode(row[2]).decode("utf-8", errors="replace")
                             if row[1] == "present" and len(row) > 2 else
                             "" if row[1] == "present" else None)
    return files


def facts_script(users: tuple[str, ...] = (), files: tuple[str, ...] = (), docker_configs: bool = False,
                 containers: tuple[str, ...] = (), engine_state: bool = False, sizes: tuple[str, ...] = (),
                 packages: tuple[str, ...] = ()) -> str:
    """The remote script, with the packages, files and users to look at filled in: ``files``
    beyond the ones every plan reads; ``docker_configs``: each user's ``~/.docker/config.json``;
    ``containers``: containers (and volumes) to inspect; ``engine_state``: the running containers
    and whether live-restore is on (what an engine restart would do to them); ``sizes``: directories
    whose size (and whether they are empty) to report."""
    return command(
        _SCRIPT, READ_FILES=Raw(read_files_script((*FACT_FILES, *files))),
        DOCKER_CONFIGS=Raw(docker_configs_script(users) if docker_configs else ""),
        PACKAGES=words(*FACT_PACKAGES, *packages), USERS=words(*users), FACT_PROPS=Raw(FACT_PROPS),
        UNITS=words(*DOCKER_UNITS), LOCK_HOLDERS=Raw(holders_script()),
        CONTAINERS=Raw(containers_script(containers) if containers else ""),
        ENGINE_STATE=Raw(_ENGINE_STATE if engine_state else ""),
        SIZES=command(_SIZES, PATHS=words(*sizes)) if sizes else Raw("")).text


@dataclass(frozen=True)
class Wanted:
    """What a plan needs read beyond the facts every plan reads."""

    users: tuple[str, ...] = ()
    files: tuple[str, ...] = ()         # more files (e.g. registry certificates)
    docker_configs: bool = False        # each user's ~/.docker/config.json
    containers: tuple[str, ...] = ()    # containers to inspect (and volumes of the same names)
    engine_state: bool = False          # running containers and live-restore (before an engine upgrade)
    sizes: tuple[str, ...] = ()         # directories to measure (before deleting them)
    packages: tuple[str, ...] = ()      # more packages to ask about (a bundle's added distribution packages)

    @classmethod
    def of(cls, wanted: Wanted | tuple[str, ...]) -> Wanted:
        return wanted if isinstance(wanted, Wanted) else cls(tuple(wanted))

    def script(self) -> str:
        return facts_script(self.users, self.files, self.docker_configs, self.containers, self.engine_state,
                            self.sizes, self.packages)


# Containers and volumes, as the engine reports them: through the socket when the login user may use
# it, else passwordless sudo; when neither works, "?" (the runner asks again as root, or the plan says
# it cannot know).
# The engine's client as the login user when it may use the socket, else through passwordless sudo.
_HS_DOCKER = r"""sec() { printf '\n@@%s\n' "$1"; }
hs_docker() {
  if [ "$(id -u)" = 0 ] || [ -w /var/run/docker.sock ]; then timeout 20 docker "$@"
  else sudo -n timeout 20 docker "$@"; fi
}
"""
_CONTAINERS = _HS_DOCKER + r"""sec containers
if ! hs_docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then echo '?'; else
  for c in @NAMES@; do
    printf '%s\t' "$c"; hs_docker inspect --type container --format '{{json .}}' "$c" 2>/dev/null | tr -d '\n'; echo
  done
  sec volumes; for v in @NAMES@; do hs_docker volume inspect --format '{{.Name}}' "$v" 2>/dev/null; done
fi"""


# What restarting dockerd would do to running containers: ``live-restore true|false`` and a line per
# running container; "?" when the engine could not be asked (not running, or no passwordless access).
_ENGINE_STATE = _HS_DOCKER + r"""sec engine-state
if ! command -v docker >/dev/null 2>&1 || ! systemctl is-active -q docker.service 2>/dev/null; then echo stopped
elif s=$(hs_docker info --format 'live-restore {{.LiveRestoreEnabled}}' 2>/dev/null) \
    && p=$(hs_docker ps --format 'running {{.Names}}' 2>/dev/null); then
  echo "$s"; [ -z "$p" ] || echo "$p"
else echo '?'; fi"""


# Each existing path: ``path<TAB>bytes (empty when unknown)<TAB>empty|full|unknown`` (as root when it can: as
# a user whose sudo asks a password, "unknown", which a plan must treat as holding data).
_SIZES = r"""sec() { printf '\n@@%s\n' "$1"; }
sec sizes
hs_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
for p in @PATHS@; do
  [ -e "$p" ] || continue
  b=$(hs_root timeout 30 du -sxb "$p" 2>/dev/null | cut -f1)
  if ! l=$(hs_root ls -A "$p" 2>/dev/null); then e=unknown; elif [ -n "$l" ]; then e=full; else e=empty; fi
  printf '%s\t%s\t%s\n' "$p" "$b" "$e"
done"""


@dataclass(frozen=True)
class PathSize:
    """An existing path's size in bytes (None: could not be measured) and whether it is known to be empty."""

    size: int | None
    empty: bool


def parse_sizes(lines: list[str]) -> dict[str, PathSize]:
    found = {}
    for row in _tabbed(lines):
        if len(row) == 3:
            found[row[0]] = PathSize(int(row[1]) if row[1].isdigit() else None, row[2] == "empty")
    return found


@dataclass(frozen=True)
class EngineState:
    """What an engine restart would do: the running containers, and whether live-restore keeps them."""

    known: bool                        # False: the engine could not be asked
    running: tuple[str, ...] = ()      # names of the running containers
    live_restore: bool = False


def parse_engine_state(lines: list[str] | None) -> EngineState | None:
    """The ``engine-state`` section (None: not asked for)."""
    if lines is None:
        return None
    if lines[:1] == ["stopped"]:
        return EngineState(True)
    if not lines or lines[0] == "?":
        return EngineState(False)
    running = tuple(line.split(" ", 1)[1].strip() for line in lines if line.startswith("running "))
    return EngineState(True, running, any(line.strip() == "live-restore true" for line in lines))


def containers_script(names: tuple[str, ...]) -> str:
    """The ``containers`` and ``volumes`` sections for ``names`` (each also a volume name)."""
    return command(_CONTAINERS, NAMES=words(*names)).text


def parse_containers(sections: dict[str, list[str]]) -> tuple[dict[str, dict[str, Any]] | None, frozenset[str]]:
    """name -> ``docker inspect`` (absent: not there); None when the engine could not be asked."""
    lines = sections.get("containers")
    if lines is None or lines == ["?"]:
        return None, frozenset()
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        name, _, data = line.partition("\t")
        if data.strip():
            try:
                found[name] = json.loads(data)
            except json.JSONDecodeError:
                continue
    return found, frozenset(line.strip() for line in sections.get("volumes", []) if line.strip())


@dataclass(frozen=True)
class Account:
    """A user's passwd entry: who owns the files hostsetup writes in that user's home."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class HostFacts:
    """Everything planning needs to know about one host."""

    os_release: dict[str, str]
    arch: str
    dpkg_arch: str
    uid: int
    user: str
    sudo: str                      # root, nopasswd, password or none
    commands: frozenset[str]
    packages: dict[str, str]       # installed package -> version
    holds: frozenset[str]
    files: dict[str, str | None]   # path -> content (None: exists but unreadable)
    docker_group: tuple[str, ...] | None  # members, None when the group is missing
    user_groups: dict[str, frozenset[str] | None]  # None: no such user
    homes: dict[str, Account] = field(default_factory=dict)  # the users asked about that exist
    containers: dict[str, dict[str, Any]] | None = None  # asked-for containers (None: the engine was not asked)
    volumes: frozenset[str] = frozenset()
    units: dict[str, Unit] = field(default_factory=dict)
    dockerd_version: str = ""
    docker_unit: str = ""          # `systemctl cat docker.service`: unit and drop-ins
    available_versions: tuple[str, ...] = ()
    # An interrupted dpkg run: a journal in /var/lib/dpkg/updates or `dpkg --audit` not empty.
    dpkg_interrupted: bool = False
    lock_holders: tuple[str, ...] = ()   # "PID COMMAND" of whoever holds a package-manager lock
    duplicates: frozenset[str] = frozenset()  # rpm: names installed twice (an upgrade cut short)
    engine_state: EngineState | None = None   # None: not asked for (Wanted.engine_state)
    sizes: dict[str, PathSize] = field(default_factory=dict)  # the asked-for paths that exist (Wanted.sizes)

    def unit(self, name: str) -> Unit:
        return self.units.get(name, Unit())

    @property
    def engine(self) -> str:
        """dockerd's version as people write it (``26.1.5+dfsg1``), "" when there is none."""
        return engine_version(self.dockerd_version)


class FactsError(ValueError):
    """The facts output is not what the script prints (truncated or not a shell)."""


def split_sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    if "end" not in sections:
        raise FactsError("facts output is incomplete (no end marker)")
    return {name: [line for line in lines if line.strip()] for name, lines in sections.items()}


def _tabbed(lines: list[str]) -> list[list[str]]:
    return [line.split("\t") for line in lines]


def parse_facts(output: str) -> HostFacts:
    """Turn the facts script's output into ``HostFacts``."""
    s = split_sections(output)
    arch_lines = [*s.get("arch", []), "", ""]
    identity = [*s.get("identity", []), "-1", ""]
    packages: dict[str, str] = {}
    duplicates = set()
    half_installed = False
    for row in _tabbed(s.get("packages", [])):
        if len(row) >= 3 and len(row[2]) >= 2 and row[2][1] == "i":
            if row[0] in packages:
                duplicates.add(row[0])
            packages[row[0]] = row[1]
        # dpkg's status: unpacked, half-installed/-configured, triggers pending; R: reinstall required
        elif len(row) >= 3 and len(row[2]) >= 2 and (row[2][1] in DPKG_UNFINISHED or row[2][2:3] == "R"):
            half_installed = True
    state = s.get("pkg-state", [])
    files = parse_file_rows(s.get("files", []))
    group = s.get("group", [])
    members = tuple(m for m in group[0].split(":")[3].split(",") if m) if group else None
    user_groups: dict[str, frozenset[str] | None] = {}
    for row in _tabbed(s.get("users", [])):
        user_groups[row[0]] = None if row[1] == "!missing" else frozenset(row[1].split())
    homes = {}
    for line in s.get("homes", []):
        fields = line.split(":")
        if len(fields) >= 7 and fields[2].isdigit() and fields[3].isdigit():
            homes[fields[0]] = Account(fields[0], int(fields[2]), int(fields[3]), fields[5])
    containers, volumes = parse_containers(s)
    return HostFacts(
        homes=homes, containers=containers, volumes=volumes,
        os_release=parse_os_release("\n".join(s.get("os-release", []))),
        arch=arch_lines[0].strip(),
        dpkg_arch=arch_lines[1].strip() if len(s.get("arch", [])) > 1 else "",
        uid=int(identity[0]),
        user=identity[1],
        sudo=(s.get("sudo") or ["none"])[0].strip(),
        commands=frozenset(line.strip() for line in s.get("commands", [])),
        packages=packages,
        holds=frozenset(line.strip() for line in s.get("holds", [])),
        files=files,
        docker_group=members,
        user_groups=user_groups,
        units=parse_units(s.get("units", [])),
        dockerd_version=(s.get("dockerd") or [""])[0].strip(),
        docker_unit="\n".join(s.get("docker-unit", [])),
        available_versions=tuple(line.strip() for line in s.get("available", [])),
        dpkg_interrupted=half_installed or bool({"dpkg-journal", "dpkg-audit"} & {line.strip() for line in state}),
        lock_holders=tuple(line.split(" ", 1)[1].strip() for line in state if line.startswith("holder ")),
        duplicates=frozenset(duplicates),
        engine_state=parse_engine_state(s.get("engine-state")),
        sizes=parse_sizes(s.get("sizes", [])),
    )
