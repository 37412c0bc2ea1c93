"""The package-manager command lines hostsetup runs (apt-get, dnf, yum)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostsetup.operations import InstallPackages

PINNED_PACKAGES = ("docker-ce", "docker-ce-cli")


@dataclass(frozen=True)
class ManagerLocks:
    """Where a package manager keeps its locks: what another apt-get, dpkg, dnf or rpm holds."""

    name: str                      # for messages: "dpkg/apt", "rpm/dnf"
    files: tuple[str, ...]         # fcntl/flock-locked files: their holders are in /proc/locks
    pid_files: tuple[str, ...] = ()  # dnf/yum: the holder's pid is written in the file (if alive)


_APT_LOCKS = ManagerLocks("dpkg/apt", ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock",
                                       "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"))
# dnf 4 (dnf/lock.py): pid files under persistdir, cachedir and logdir; rpm's own transaction lock.
_DNF_LOCKS = ManagerLocks("rpm/dnf", ("/var/lib/rpm/.rpm.lock",),
                          ("/var/lib/dnf/rpmdb_lock.pid", "/var/cache/dnf/metadata_lock.pid",
                           "/var/cache/dnf/download_lock.pid", "/var/log/log_lock.pid"))
LOCKS = {
    "apt-get": _APT_LOCKS,
    "dnf": _DNF_LOCKS,
    # CentOS 7's yum 3 writes /var/run/yum.pid; the rehearsal's yum is dnf behind a wrapper.
    "yum": ManagerLocks("rpm/yum", _DNF_LOCKS.files, (*_DNF_LOCKS.pid_files, "/var/run/yum.pid")),
}
ALL_LOCKS = ManagerLocks("package manager", tuple(dict.fromkeys(f for lk in LOCKS.values() for f in lk.files)),
                         tuple(dict.fromkeys(f for lk in LOCKS.values() for f in lk.pid_files)))
LOCK_GIVE_UP = 75  # EX_TEMPFAIL: the lock stayed held for the whole wait

_HOLDERS = r"""hs_lock_holders() {
  { # the lock files' inodes in one stat, /proc/locks read once (a no-op run's facts pay for every process)
    i=$(stat -c %i FILES 2>/dev/null | tr '\n' ' ')
    [ -z "$i" ] || awk -v i=" $i" '$2 != "->" { n = split($6, a, ":")
      if (index(i, " " a[n] " ") && $5 > 0) print $5 }' /proc/locks
    for f in PIDFILES; do
      [ -e "$f" ] || continue
      p=$(head -c 20 "$f" 2>/dev/null | tr -cd 0-9)
      [ -n "$p" ] && [ -d "/proc/$p" ] && echo "$p"
    done; } 2>/dev/null | sort -un | while read -r p; do
    [ "$p" = "$$" ] && continue
    c=$(tr '\0\n' '  ' < "/proc/$p/cmdline" 2>/dev/null | awk '{ i = 1; n = $1; sub(".*/", "", n)
        if (n ~ /^(python[0-9.]*|perl|sh|bash|dash)$/ && NF > 1 && $2 !~ /^-/) { i = 2; n = $2; sub(".*/", "", n) }
        m = $(i + 1); sub(".*/", "", m); print n (m == "" ? "" : " " m) }')
    [ -n "$c" ] && printf '%s %s\n' "$p" "$c"
  done
}"""

# Quiet while it waits (what runs here is read once it ended; the live line is the plan's notice).
_WAIT = r"""hs_wait_lock() {
  w=0
  while h=$(hs_lock_holders | awk 'NR > 1 { printf ", " } { printf "%s", $0 }'); [ -n "$h" ]; do
    if [ "$w" -ge TIMEOUT ]; then
      echo "hostsetup: the NAME lock is still held by $h after TIMEOUT s: let it finish (or stop it), then rerun" >&2
      return GIVE_UP
    fi
    sleep 1; w=$((w + 1))
  done
}"""


def holders_script(locks: ManagerLocks = ALL_LOCKS) -> str:
    """Defines ``hs_lock_holders``: prints ``PID COMMAND`` of each process holding one of ``locks``."""
    return (_HOLDERS.replace("PIDFILES", " ".join(shlex.quote(f) for f in locks.pid_files) or "''")
            .replace("FILES", " ".join(shlex.quote(f) for f in locks.files)))


def lock_wait_script(manager: str, timeout: int) -> str:
    """Wait up to ``timeout`` s until no other process holds ``manager``'s locks; a holder that
    stays is named and the script fails (status ``LOCK_GIVE_UP``)."""
    locks = LOCKS[manager]
    wait = (_WAIT.replace("TIMEOUT", str(int(timeout))).replace("NAME", locks.name)
            .replace("GIVE_UP", str(LOCK_GIVE_UP)))
    return f"{holders_script(locks)}\n{wait}\nhs_wait_lock"


def locked(manager: str, command: str, timeout: int) -> str:
    """``command`` once ``manager``'s locks are free (``lock_wait_script``), as one AND list, so
    that it also works where its status is tested (``if ! { ...; }``), not only under ``set -e``."""
    return f"{lock_wait_script(manager, timeout)} && {{ {command}\n}}"


def apt_lock_option(timeout: int) -> str:
    """apt-get waits by itself too, for a lock taken after our wait, and as long."""
    return f" -o DPkg::Lock::Timeout={int(timeout)}"


# dnf would wait forever for a lock taken after our wait: it fails at once instead, naming the pid.
NO_LOCK_WAIT = " --setopt=exit_on_lock=True"


# Lines a full filesystem leaves in dpkg's and rpm's output.
_DISK_FULL = (r"No space left on device|more space needed on the|needs [0-9.]+[KMG]?B? more space"
              r"|Failed writing received data to disk")


_DIAGNOSE = r"""BEGIN { rc = 1 }
/^@@hostsetup-rc / { rc = $2; next }
{ print }
$0 ~ re && full == "" { full = $0 }
END {
  if (rc != 0 && full != "") {
    gsub(/^[ \t]+|[ \t\r]+$/, "", full)
    print "hostsetup: the disk is full: " full "; free space there, then rerun install"
  }
  exit rc
}"""


def diagnosed(command: str) -> str:
    """Run ``command`` with all its output on stderr (where a failing step's error comes from) and,
    when it failed because a filesystem is full, a last line saying so."""
    return (f'{{ set +e; {command}\necho "@@hostsetup-rc $?"; }} 2>&1 | '
            f"awk -v re={shlex.quote(_DISK_FULL)} {shlex.quote(_DIAGNOSE)} >&2")


def refresh_command(op: InstallPackages) -> str:
    """Refresh only the Docker repository's index (not every source on the host), once no other
    package manager holds the locks."""
    return locked(op.manager, repository_refresh_command(op.manager, op.repo_file), op.lock_timeout)


def repository_refresh_command(manager: str, repo_file: str) -> str:
    """``manager``'s refresh of the one repository in ``repo_file``: proves it serves signed metadata."""
    if manager == "apt-get":
        return ("apt-get update -q -o Dir::Etc::SourceList=" + repo_file
                + " -o Dir::Etc::SourceParts=/dev/null -o APT::Get::List-Cleanup=0")
    return f"{manager} makecache -y{NO_LOCK_WAIT} --disablerepo='*' --enablerepo='docker-ce-stable'"


def list_versions_command(op: InstallPackages) -> str:
    if op.manager == "apt-get":
        return "apt-cache madison docker-ce | awk -F'|' '{gsub(/ /,\"\",$2); print $2}'"
    return (f"{op.manager} list --showduplicates -q docker-ce 2>/dev/null | "
            "awk '$1 ~ /^docker-ce/ {print $2}' | sort -r")


def rpm_pin(version: str) -> str:
    """``3:24.0.7-1.el9`` -> ``24.0.7-1.el9``: the epoch cannot be shared by both pinned packages.

    Docker's RPMs carry epoch 3 (docker-ce) and 1 (docker-ce-cli); name-version-release
    matches whatever epoch a package has.
    """
    return version.split(":", 1)[-1]


def install_command(op: InstallPackages, version: str | None) -> str:
    """The transaction as it runs on the host: after the lock wait, a full disk named."""
    return locked(op.manager, diagnosed(transaction_command(op, version)), op.lock_timeout)


def transaction_command(op: InstallPackages, version: str | None) -> str:
    """The package manager's command line (what ``--dry-run`` shows)."""
    def spec(package: str) -> str:
        # Versions come from the repository's index (the host's output): quoted like any value.
        if version and package in PINNED_PACKAGES:
            return shlex.quote(f"{package}={version}" if op.manager == "apt-get" else f"{package}-{rpm_pin(version)}")
        return shlex.quote(package)
    names = " ".join([*(spec(p) for p in op.packages), *(shlex.quote(f) for f in op.local_files)])
    if op.manager == "apt-get":
        # A version asked for wins over a hold (the plan refused a held one unless --hold was given).
        moves = "--allow-downgrades --allow-change-held-packages " if version else ""
        command = (f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q{apt_lock_option(op.lock_timeout)} "
                   "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + moves + names)
        if op.hold:
            command += " && apt-mark hold " + " ".join(PINNED_PACKAGES)
        return command
    pinned = " ".join(spec(p) for p in PINNED_PACKAGES) if version else ""
    return rpm_install_command(op.manager, names, pinned, op.hold)


def lock_command(manager: str) -> str:
    """Lock docker-ce/-cli at the installed versions, replacing an older lock of them.

    A lock names one version and ``versionlock add`` keeps an existing one, so it is
    deleted first (apt's holds name packages, not versions).
    """
    names = " ".join(PINNED_PACKAGES)
    return f"{manager} versionlock delete {names} >/dev/null && {manager} versionlock add {names}"


def rpm_install_command(manager: str, names: str, pinned: str, hold: bool) -> str:
    """dnf/yum install; ``pinned`` (the version-pinned docker-ce and -cli) overrides a versionlock.

    Like apt's ``--allow-change-held-packages``, an explicit version wins over a hold, and a
    hold that was there follows the new version.
    """
    unlocked = " --disableplugin=versionlock" if pinned else ""
    command = (f"dnf install -y{NO_LOCK_WAIT} --allowerasing{unlocked} {names}" if manager == "dnf"
               else f"yum install -y{NO_LOCK_WAIT}{unlocked} {names}")
    if pinned:  # install refuses to go down a version; downgrade does not install new ones
        relock = lock_command(manager) if hold else (
            f"if {manager} versionlock list 2>/dev/null | grep -q docker-ce; then {lock_command(manager)}; fi")
        return f"({command}) || {manager} downgrade -y{NO_LOCK_WAIT}{unlocked} {pinned} && {relock}"
    if hold:
        command += f" && {manager} versionlock add " + " ".join(PINNED_PACKAGES)
    return command


def versionlocked(text: str) -> set[str]:
    """Names locked in a versionlock list: dnf writes ``name-E:V-R.*``, yum 3 ``E:name-V-R.*``."""
    names = set()
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith(("#", "!")) and entry.count("-") >= 2:
            names.add(re.sub(r"^\d+:", "", entry.rsplit("-", 2)[0]))
    return names
