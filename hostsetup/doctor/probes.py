"""Doctor probes: one read-only POSIX sh script and a pure parser for its output.

The script runs as the login user (one SSH round trip, or ``sh -c`` locally).
Whatever needs root goes through ``sudo -n`` and is simply skipped when sudo
wants a password; ``privilege`` says which. The target user's own files (profiles,
~/.docker) are read as that user (``runuser``/``sudo -u``), never as root, and only
regular files, context metadata not through symlinks, each at most 64 KiB, with no
word splitting of names. Every command is bounded by
``timeout``: a docker client hangs on a socket-activated daemon whose containerd
is gone. Sections start with ``@@name`` lines, as in ``hostsetup.facts``; file
contents travel base64-encoded.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from hostsetup.doctor.journal import Line, parse_journal
from hostsetup.facts import split_sections
from hostsetup.host.command import Raw, command, words
from hostsetup.host.files import backup_glob
from hostsetup.host.paths import DAEMON_JSON
from hostsetup.host.units import DOCKER_UNITS, PROBED_PROPS, Unit, key_values, parse_unit, whole
from hostsetup.host.versions import parse_engine_version

PIDFILE = "/var/run/docker.pid"
DEFAULT_DATA_ROOT = "/var/lib/docker"
CLIENT_TIMEOUT = 5
# The server's version, and its components: "containerd" is missing while dockerd has lost it.
CLIENT_FORMAT = "{{.Server.Version}}|{{range .Server.Components}}{{.Name}} {{end}}"
# dockerd lines worth keeping from a long journal, plus the unit start lines that
# delimit attempts (grpc "[core]" chatter on 20.10 would push them out of a short tail).
JOURNAL_ERRORS = ("unable to configure|failed to start daemon|Error starting daemon|level=fatal|"
                  "no sockets found|pid file|is still running|no space left|read-only file system|"
                  "permission denied|failed to dial|Start request repeated|start-limit|"
                  "Failed to resolve group|is masked|Starting |Started |Dependency failed")

# A line of a profile or environment file that sets the client's endpoint (no quote: it sits in '' and "").
ENV_LINE = "^[^#]*DOCKER_(HOST|CONTEXT|API_VERSION|TLS_VERIFY|CERT_PATH)="

_SCRIPT = r"""
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" LC_ALL=C
sec() { printf '\n@@%s\n' "$1"; }
me=$(id -un); T=@TARGET@; [ -n "$T" ] || T=$me
if [ "$(id -u)" = 0 ]; then S=; priv=root
elif sudo -n true 2>/dev/null; then S="sudo -n"; priv=sudo
elif command -v sudo >/dev/null 2>&1; then S=; priv=password
else S=; priv=none; fi
R() { $S "$@"; }
# The target user's own files are read as that user, never as root: a symlink they plant must not
# make root read other files (/etc/shadow) into the report.
U() {
  if [ "$T" = "$me" ]; then "$@"
  elif [ "$priv" = root ]; then runuser -u "$T" -- "$@"
  elif [ "$priv" = sudo ]; then sudo -n -u "$T" -- "$@"
  else "$@"; fi
}
home=$(getent passwd "$T" | cut -d: -f6)
sec meta
printf 'user=%s\nuid=%s\ntarget=%s\npriv=%s\nhome=%s\n' "$me" "$(id -u)" "$T" "$priv" "$home"
echo "os=$( . /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-}")"
echo "os_ids=$( . /etc/os-release 2>/dev/null; echo "${ID:-} ${ID_LIKE:-}")"
for u in @UNITS@; do sec "unit $u"; timeout 10 systemctl show -p @PROPS@ "$u" 2>&1; done
sec journal-access; if [ "$priv" = sudo ] || [ "$priv" = root ]; then echo root; else echo "$priv"; fi
sec journal-docker
R timeout 10 journalctl -u docker.service -u docker.socket -b -n 400 --no-pager -o cat 2>/dev/null \
  | grep -v '\[core\]' | tail -n 30
# The current failure of both daemons: systemd's lines and the daemons' plain stderr (what main() says as it
# gives up), their logrus lines only when fatal or naming a known cause; grpc chatter never.
sec journal-errors
R timeout 10 journalctl -u docker.service -u docker.socket -u containerd.service -b -n 5000 --no-pager \
  -o short-unix 2>/dev/null \
  | awk 'index($0, "[core]") == 0 && ($0 !~ / time="/ || $0 ~ /level=(fatal|panic)/ || $0 ~ /@ERRORS@/)' \
  | tail -n 120
sec journal-containerd
R timeout 10 journalctl -u containerd.service -b -n 30 --no-pager -o cat 2>/dev/null
sec socket
for p in /run/docker.sock /var/run/docker.sock; do
  printf '%s|' "$p"; stat -L -c '%F|%U|%G|%a' "$p" 2>/dev/null || echo missing
done
sec pidfile
if [ -e @PIDFILE@ ]; then
  p=$(cat @PIDFILE@ 2>/dev/null); case "$p" in ''|*[!0-9]*) p=;; esac
  echo "pid=$p"
  if [ -n "$p" ] && [ -d "/proc/$p" ]; then echo "comm=$(cat "/proc/$p/comm" 2>/dev/null)"; fi
fi
# The user's client may socket-activate the daemon: everything it could change is read above, and it runs
# in the background while the rest (files, validation, disks) is read.
cr=$(mktemp -d)
(
  if [ "$T" = "$me" ]; then
    timeout @CLIENT@ docker version --format '@FORMAT@' > "$cr/out" 2> "$cr/err"; echo $? > "$cr/rc"
    case " $(id -Gn) " in *" docker "*) ;; *)
      case " $(id -Gn "$me" 2>/dev/null) " in *" docker "*)
        if [ "$priv" = sudo ] || [ "$priv" = root ]; then
          timeout 8 sudo -n -u "$me" timeout @CLIENT@ docker version --format '@FORMAT@' \
            > "$cr/fout" 2> "$cr/ferr"; echo $? > "$cr/frc"
        fi;;
      esac;;
    esac
  elif [ "$priv" = sudo ] || [ "$priv" = root ]; then
    timeout 8 sudo -n -u "$T" -i timeout @CLIENT@ docker version --format '@FORMAT@' \
      > "$cr/out" 2> "$cr/err"; echo $? > "$cr/rc"
  fi
) & cpid=$!
sec engine; timeout 10 dockerd --version 2>&1; timeout 10 docker --version 2>&1
sec unit-files; timeout 10 systemctl cat docker.service docker.socket 2>&1 | head -n 200
f=@DAEMON_JSON@
sec daemon-json
if [ ! -e "$f" ]; then echo absent
elif R test -r "$f"; then
  printf 'present\t%s\t' "$(stat -c %Y "$f" 2>/dev/null)"; R cat "$f" | base64 | tr -d '\n'; echo
else echo unreadable; fi
sec validate
if [ -e "$f" ] && command -v dockerd >/dev/null 2>&1; then
  a=$(timeout 10 systemctl show -p ExecStart --value docker.service 2>/dev/null \
    | sed -n 's/.*argv\[\]=\([^;]*\) ;.*/\1/p' | head -n 1)
  case "$a" in *" "*) a=${a#* };; *) a=;; esac
  case "$a" in *'$'*) a=;; esac
  echo "args=$a"
  v=$(R timeout 20 dockerd --validate --config-file "$f" $a 2>&1); echo "rc=$?"; printf '%s\n' "$v" | head -n 20
fi
sec group; getent group docker
sec groups; printf 'session=%s\ndatabase=%s\n' "$(id -Gn)" "$(id -Gn "$T" 2>/dev/null || echo '!missing')"
sec env; [ "$T" = "$me" ] && env | grep -E '^DOCKER_(HOST|CONTEXT|CONFIG|TLS_VERIFY|CERT_PATH|API_VERSION)='
sec env-files
R grep -sHnE '@ENV_LINE@' /etc/environment /etc/profile /etc/bash.bashrc /etc/profile.d/*.sh 2>/dev/null
U timeout 10 sh -c 'for f; do [ -f "$f" ] && grep -sHnE "@ENV_LINE@" -- "$f"; done' - "$home/.bashrc" \
  "$home/.profile" "$home/.bash_profile" "$home/.bash_login" "$home/.zshrc" "$home/.zprofile" "$home/.zshenv" \
  "$home/.pam_environment" 2>/dev/null
sec docker-context
c=${DOCKER_CONFIG:-$home/.docker}; [ "$T" = "$me" ] || c=$home/.docker
# Regular files only (no device or fifo to hang on), at most 64 KiB; context metadata not through symlinks.
U timeout 10 sh -c '[ -f "$1" ] && head -c 65536 -- "$1"' - "$c/config.json" 2>/dev/null \
  | sed -n 's/.*"currentContext"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/current=\1/p' | head -n 1
U timeout 10 find -P "$c/contexts/meta" -mindepth 2 -maxdepth 2 -name meta.json -type f -exec sh -c \
  'for m; do printf "meta\t"; head -c 65536 -- "$m" | base64 | tr -d "\n"; echo; done' - {} + 2>/dev/null \
  | head -n 50
sec disk
dr=$(R cat "$f" 2>/dev/null | tr -d '\n' | sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
for p in "${dr:-@DATA_ROOT@}" /run /var/lib/containerd; do
  e=$p; while [ "$e" != / ] && ! R test -e "$e"; do e=$(dirname "$e"); done
  if [ "$priv" = sudo ] || [ "$priv" = root ]; then if R test -w "$e"; then w=yes; else w=no; fi; else w=unknown; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$e" \
    "$(R timeout 10 df -Pk "$e" 2>/dev/null | awk 'NR==2{print $2" "$4" "$6}')" \
    "$(R timeout 10 df -Pi "$e" 2>/dev/null | awk 'NR==2{print $2" "$4}')" "$w" \
    "$(stat -fc %T "$e" 2>/dev/null)"
done
sec system
if command -v getenforce >/dev/null 2>&1; then echo "selinux=$(getenforce 2>/dev/null)"
elif [ -r /sys/fs/selinux/enforce ]; then echo "selinux=$(cat /sys/fs/selinux/enforce)"; else echo selinux=absent; fi
echo "apparmor=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo absent)"
echo "cgroup=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
if command -v iptables >/dev/null 2>&1; then
  echo "iptables=$(timeout 5 iptables -V 2>&1 | head -n 1)"
  if [ "$priv" = sudo ] || [ "$priv" = root ]; then
    if R timeout 5 iptables -t nat -S >/dev/null 2>&1; then echo iptables-nat=ok; else echo iptables-nat=failed; fi
  fi
else echo iptables=absent; fi
sec backup
b=$(R sh -c 'ls -1t @BACKUPS@ 2>/dev/null | head -n 1')
if [ -n "$b" ]; then printf '%s\t' "$b"; R cat "$b" | base64 | tr -d '\n'; echo; fi
wait "$cpid" 2>/dev/null
sec client; [ -e "$cr/rc" ] && echo "rc=$(cat "$cr/rc")"
sec client-out; cat "$cr/out" 2>/dev/null
sec client-err; cat "$cr/err" 2>/dev/null
sec client-fresh; [ -e "$cr/frc" ] && echo "rc=$(cat "$cr/frc")"
sec client-fresh-out; cat "$cr/fout" 2>/dev/null
sec client-fresh-err; cat "$cr/ferr" 2>/dev/null
rm -rf "$cr"
sec end
"""


def probe_script(target_user: str = "") -> str:
    """The probe script; ``target_user`` is whose docker access to check (default: the login user)."""
    return command(_SCRIPT, TARGET=target_user, UNITS=words(*DOCKER_UNITS), PROPS=Raw(PROBED_PROPS),
                   CLIENT=CLIENT_TIMEOUT, DAEMON_JSON=DAEMON_JSON, PIDFILE=PIDFILE,
                   BACKUPS=Raw(backup_glob(DAEMON_JSON)), DATA_ROOT=DEFAULT_DATA_ROOT, ERRORS=Raw(JOURNAL_ERRORS),
                   FORMAT=Raw(CLIENT_FORMAT), ENV_LINE=Raw(ENV_LINE)).text


def probe_command(target_user: str = "") -> str:
    """The probe as one command line: POSIX sh whatever the login shell is."""
    return command("sh -c @SCRIPT@", SCRIPT=probe_script(target_user)).text


@dataclass(frozen=True)
class Validation:
    """``dockerd --validate`` (23.0+) on daemon.json with the unit's flags."""

    supported: bool
    ok: bool
    output: tuple[str, ...] = ()
    args: str = ""


@dataclass(frozen=True)
class Disk:
    """Space on the filesystem holding ``path`` (``existing``: its nearest existing ancestor)."""

    path: str
    existing: str
    size_kb: int
    avail_kb: int
    mount: str
    inodes: int
    inodes_free: int
    writable: bool | None   # None: not checked (no root)
    fs_type: str = ""        # stat -f: ext2/ext3, xfs, btrfs, tmpfs, overlayfs, zfs ...


@dataclass(frozen=True)
class Client:
    """``timeout 5 docker version`` as the user: exit code (124: timed out) and output."""

    rc: int
    out: str = ""
    err: str = ""

    @property
    def version(self) -> str:
        return self.out.partition("|")[0].strip()

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.out.partition("|")[2].split())

    @property
    def answers(self) -> bool:
        return self.rc == 0 and bool(self.version)


@dataclass(frozen=True)
class Probes:
    """Everything the doctor learned about one host in one round trip."""

    user: str
    uid: int
    target: str
    privilege: str                              # root, sudo, password (sudo asks), none
    home: str = ""
    os: str = ""
    os_ids: tuple[str, ...] = ()                # os-release ID, then ID_LIKE
    units: dict[str, Unit] = field(default_factory=dict)
    engine: str = ""                            # dockerd --version
    unit_files: tuple[str, ...] = ()
    daemon_json: str | None = None              # None: absent or unreadable
    daemon_json_state: str = "absent"           # absent, present, unreadable
    daemon_json_mtime: int = 0
    validation: Validation | None = None        # None: no daemon.json or no dockerd
    journal_access: str = "root"
    journal: tuple[str, ...] = ()
    journal_errors: tuple[Line, ...] = ()       # with timestamps, to tell old errors from current ones
    journal_containerd: tuple[str, ...] = ()
    socket: dict[str, tuple[str, str, str, str] | None] = field(default_factory=dict)  # type, owner, group, mode
    docker_group: tuple[str, ...] | None = None  # members; None: no such group
    session_groups: frozenset[str] = frozenset()
    database_groups: frozenset[str] | None = None  # None: no such user
    env: dict[str, str] = field(default_factory=dict)
    env_files: tuple[str, ...] = ()             # "file:line:text"
    current_context: str = ""
    contexts: dict[str, str] = field(default_factory=dict)  # context name -> docker endpoint
    disks: tuple[Disk, ...] = ()
    system: dict[str, str] = field(default_factory=dict)
    pid: int | None = None                      # pid in the pid file (None: no usable pid file)
    pid_comm: str | None = None                 # that process's name (None: not running)
    backup_path: str = ""
    backup: str | None = None
    client: Client = Client(-1)
    client_fresh: Client | None = None          # with groups fresh from the database (sudo -u user)

    def unit(self, name: str) -> Unit:
        return self.units.get(name, Unit(name))

    @property
    def has_root(self) -> bool:
        return self.privilege in ("root", "sudo")

    @property
    def engine_version(self) -> tuple[int, int]:
        version = parse_engine_version(self.engine) if self.engine else None
        return (version[0], version[1]) if version else (0, 0)

    def disk(self, path: str) -> Disk | None:
        return next((d for d in self.disks if d.path == path), None)


def _engine(lines: list[str]) -> str:
    """``dockerd --version`` (the section's first line), "" when dockerd is missing."""
    first = lines[0].strip() if lines else ""
    return first if first.startswith("Docker version") else ""


def _b64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace")


def _client(lines: list[str] | None, out: list[str], err: list[str]) -> Client | None:
    if not lines:
        return None
    return Client(whole(lines[0].removeprefix("rc="), -1), "\n".join(out), "\n".join(err))


def _disk(row: list[str]) -> Disk | None:
    if len(row) < 5:
        return None
    space, inodes = row[2].split(), row[3].split()
    fs_type = row[5].strip() if len(row) > 5 else ""
    if len(space) < 3 or len(inodes) < 2:
        return Disk(row[0], row[1], 0, 0, "", 0, 0, None, fs_type)
    return Disk(row[0], row[1], whole(space[0]), whole(space[1]), space[2], whole(inodes[0]), whole(inodes[1]),
                {"yes": True, "no": False}.get(row[4]), fs_type)


def _contexts(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        if line.startswith("meta\t"):
            text = _b64(line.split("\t", 1)[1])
            name = re.search(r'"Name"\s*:\s*"([^"]*)"', text)
            host = re.search(r'"Host"\s*:\s*"([^"]*)"', text)
            if name:
                found[name[1]] = host[1] if host else ""
    return found


def parse_probes(output: str) -> Probes:
    """Turn the probe script's output into ``Probes`` (``FactsError`` when truncated)."""
    s = split_sections(output)
    meta = key_values(s.get("meta", []))
    units = {name: parse_unit(name, s.get(f"unit {name}", [])) for name in DOCKER_UNITS}
    daemon = (s.get("daemon-json") or ["absent"])[0].split("\t")
    validate = key_values(s.get("validate", [])[:2])
    validation = None
    if "rc" in validate:
        text = tuple(s["validate"][2:])
        supported = not any("unknown flag: --validate" in line for line in text)
        validation = Validation(supported, supported and validate["rc"] == "0", text, validate.get("args", ""))
    socket: dict[str, tuple[str, str, str, str] | None] = {}
    for line in s.get("socket", []):
        path, _, rest = line.partition("|")
        parts = rest.split("|")
        socket[path] = (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 else None
    group = s.get("group", [])
    groups = key_values(s.get("groups", []))
    env = key_values(s.get("env", []))
    context = key_values(line for line in s.get("docker-context", []) if line.startswith("current="))
    pidfile = key_values(s.get("pidfile", []))
    backup = (s.get("backup") or [""])[0].split("\t")
    return Probes(
        user=meta.get("user", ""), uid=whole(meta.get("uid", "-1"), -1), target=meta.get("target", ""),
        privilege=meta.get("priv", "none"), home=meta.get("home", ""), os=meta.get("os", ""),
        os_ids=tuple(meta.get("os_ids", "").split()),
        units=units,
        engine=_engine(s.get("engine", [])),
        unit_files=tuple(s.get("unit-files", [])),
        daemon_json=_b64(daemon[2]) if daemon[0] == "present" and len(daemon) > 2 else
        ("" if daemon[0] == "present" else None),
        daemon_json_state=daemon[0].strip(),
        daemon_json_mtime=whole(daemon[1]) if len(daemon) > 1 else 0,
        validation=validation,
        journal_access=(s.get("journal-access") or ["none"])[0].strip(),
        journal=tuple(s.get("journal-docker", [])),
        journal_errors=tuple(parse_journal(s.get("journal-errors", []))),
        journal_containerd=tuple(s.get("journal-containerd", [])),
        socket=socket,
        docker_group=tuple(m for m in group[0].split(":")[3].split(",") if m) if group else None,
        session_groups=frozenset(groups.get("session", "").split()),
        database_groups=None if groups.get("database", "!missing") == "!missing"
        else frozenset(groups["database"].split()),
        env=env,
        env_files=tuple(s.get("env-files", [])),
        current_context=context.get("current", ""),
        contexts=_contexts(s.get("docker-context", [])),
        disks=tuple(d for d in (_disk(line.split("\t")) for line in s.get("disk", [])) if d),
        system=key_values(s.get("system", [])),
        pid=whole(pidfile["pid"]) if pidfile.get("pid") else None,
        pid_comm=pidfile.get("comm"),
        backup_path=backup[0] if len(backup) > 1 else "",
        backup=_b64(backup[1]) if len(backup) > 1 else None,
        client=_client(s.get("client"), s.get("client-out", []), s.get("client-err", [])) or Client(-1),
        client_fresh=_client(s.get("client-fresh"), s.get("client-fresh-out", []), s.get("client-fresh-err", [])),
    )
