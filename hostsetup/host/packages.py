"""The package managers hostsetup drives (apt-get, dnf, yum): one object each, chosen by the OS table
(``distros.Platform.manager``). Every package-manager command line is made here: refreshing the Docker
repository, listing its versions, the install transaction, removals, holds, repairs, lock waits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hostsetup.host.command import Quoted, Raw, command, words

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
LOCK_GIVE_UP = 75  # EX_TEMPFAIL: the lock stayed held for the whole wait

_HOLDERS = r"""hs_lock_holders() {
  { # the lock files' inodes in one stat, /proc/locks read once (a no-op run's facts pay for every process)
    i=$(stat -c %i @FILES@ 2>/dev/null | tr '\n' ' ')
    [ -z "$i" ] || awk -v i=" $i" '$2 != "->" { n = split($6, a, ":")
      if (index(i, " " a[n] " ") && $5 > 0) print $5 }' /proc/locks
    for f in @PIDFILES@; do
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
    if [ "$w" -ge @TIMEOUT@ ]; then
      echo "hostsetup: the @NAME@ lock is still held by $h after @TIMEOUT@ s:" \
        "let it finish (or stop it), then rerun" >&2
      return @GIVE_UP@
    fi
    sleep 1; w=$((w + 1))
  done
}"""


def holders_script(locks: ManagerLocks | None = None) -> str:
    """Defines ``hs_lock_holders``: prints ``PID COMMAND`` of each process holding one of ``locks``
    (default: every package manager's)."""
    locks = locks or ALL_LOCKS
    return command(_HOLDERS, FILES=words(*locks.files),
                   PIDFILES=words(*locks.pid_files) if locks.pid_files else Raw("''")).text


def lock_wait_script(manager: str, timeout: int) -> str:
    """Wait up to ``timeout`` s until no other process holds ``manager``'s locks; a holder that
    stays is named and the script fails (status ``LOCK_GIVE_UP``)."""
    locks = LOCKS[manager]
    wait = command(_WAIT, TIMEOUT=int(timeout), NAME=Raw(locks.name), GIVE_UP=LOCK_GIVE_UP).text
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


def diagnosed(script: str) -> str:
    """Run ``command`` with all its output on stderr (where a failing step's error comes from) and,
    when it failed because a filesystem is full, a last line saying so."""
    return command('{ set +e; @SCRIPT@\necho "@@hostsetup-rc $?"; } 2>&1 | awk -v re=@FULL@ @PROGRAM@ >&2',
                   SCRIPT=Raw(script), FULL=_DISK_FULL, PROGRAM=_DIAGNOSE).text


def rpm_pin(version: str) -> str:
    """``3:24.0.7-1.el9`` -> ``24.0.7-1.el9``: the epoch cannot be shared by both pinned packages.

    Docker's RPMs carry epoch 3 (docker-ce) and 1 (docker-ce-cli); name-version-release
    matches whatever epoch a package has.
    """
    return version.split(":", 1)[-1]


@dataclass(frozen=True)
class PackageManager:
    """What differs between package managers, as data and methods; ``AptGet``, ``Dnf`` and ``Yum``."""

    name: str                  # the command: apt-get, dnf, yum
    locks: ManagerLocks
    lock_plugin: str = ""      # the package that provides holds ("": built in)
    versionlock_list: str = ""  # where the holds are listed ("": asked with apt-mark)
    hold_tool: str = "apt-mark"

    def lock_flag(self, timeout: int) -> str:
        """How the manager itself treats a lock taken after hostsetup's wait."""
        raise NotImplementedError

    def refresh_repository(self, repo_file: str) -> str:
        """The refresh of the one repository in ``repo_file``: proves it serves signed metadata."""
        raise NotImplementedError

    def list_versions(self) -> str:
        """Prints docker-ce's versions in the repository, one a line."""
        raise NotImplementedError

    def pin(self, package: str, version: str) -> str:
        """The package name pinned at ``version`` (one word, quoted)."""
        raise NotImplementedError

    def transaction(self, names: str, version: str | None, hold: bool, timeout: int) -> str:
        """The install of ``names`` (quoted words); ``version``: docker-ce/-cli pinned at it, over a hold."""
        raise NotImplementedError

    def forced_flags(self) -> str:
        """The transaction's flags when a version is asked for: a hold (and, with dnf, a conflict) not in the way."""
        raise NotImplementedError

    def install(self, packages: list[str], timeout: int) -> str:
        """A plain install of ``packages`` from the host's repositories (prerequisites)."""
        raise NotImplementedError

    def remove(self, packages: list[str], timeout: int, purge: bool = False) -> str:
        """Remove ``packages`` (``purge``: their configuration files too, where the manager keeps them apart)."""
        raise NotImplementedError

    def repair(self, interrupted: bool, duplicates: bool, timeout: int) -> str | None:
        """Finish a transaction cut short (``interrupted``: dpkg's; ``duplicates``: rpm's two versions)."""
        raise NotImplementedError

    def hold(self) -> str:
        return f"{self.hold_tool} hold " + " ".join(PINNED_PACKAGES)

    def unhold(self, packages: list[str]) -> str:
        return f"{self.hold_tool} unhold {words(*packages).text} >/dev/null"

    def held(self, holds: frozenset[str] | set[str], files: dict[str, str | None]) -> set[str]:
        """Which of docker-ce and docker-ce-cli are held: apt-mark's list, or the versionlock file."""
        return set(PINNED_PACKAGES) & set(holds)


@dataclass(frozen=True)
class AptGet(PackageManager):
    def lock_flag(self, timeout: int) -> str:
        return apt_lock_option(timeout)

    def refresh_repository(self, repo_file: str) -> str:
        return ("apt-get update -q -o Dir::Etc::SourceList=" + repo_file
                + " -o Dir::Etc::SourceParts=/dev/null -o APT::Get::List-Cleanup=0")

    def list_versions(self) -> str:
        return "apt-cache madison docker-ce | awk -F'|' '{gsub(/ /,\"\",$2); print $2}'"

    def pin(self, package: str, version: str) -> str:
        return Quoted(f"{package}={version}").text()

    def transaction(self, names: str, version: str | None, hold: bool, timeout: int) -> str:
        # A version asked for wins over a hold (the plan refused a held one unless --hold was given).
        moves = f"{self.forced_flags()} " if version else ""
        command = (f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q{self.lock_flag(timeout)} "
                   "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + moves + names)
        return command + (f" && {self.hold()}" if hold else "")

    def forced_flags(self) -> str:
        return "--allow-downgrades --allow-change-held-packages"

    def install(self, packages: list[str], timeout: int) -> str:
        return ("apt-get update -q && DEBIAN_FRONTEND=noninteractive "
                f"apt-get install -y -q{self.lock_flag(timeout)} {words(*packages).text}")

    def remove(self, packages: list[str], timeout: int, purge: bool = False) -> str:
        return (f"DEBIAN_FRONTEND=noninteractive apt-get {'purge' if purge else 'remove'} -y -q"
                f"{self.lock_flag(timeout)} {words(*packages).text}")

    def repair(self, interrupted: bool, duplicates: bool, timeout: int) -> str | None:
        if not interrupted:
            return None
        return ("dpkg --configure -a && DEBIAN_FRONTEND=noninteractive apt-get install -f -y -q"
                + self.lock_flag(timeout))


@dataclass(frozen=True)
class Dnf(PackageManager):
    hold_tool: str = "dnf versionlock"
    install_flags: str = " --allowerasing"     # conflicting packages replaced in the same transaction
    remove_duplicates: str = f"dnf remove -y{NO_LOCK_WAIT} --duplicates"

    def lock_flag(self, timeout: int) -> str:
        return NO_LOCK_WAIT

    def refresh_repository(self, repo_file: str) -> str:
        return f"{self.name} makecache -y{NO_LOCK_WAIT} --disablerepo='*' --enablerepo='docker-ce-stable'"

    def list_versions(self) -> str:
        return (f"{self.name} list --showduplicates -q docker-ce 2>/dev/null | "
                "awk '$1 ~ /^docker-ce/ {print $2}' | sort -r")

    def pin(self, package: str, version: str) -> str:
        return Quoted(f"{package}-{rpm_pin(version)}").text()

    def hold(self) -> str:
        return f"{self.hold_tool} add " + " ".join(PINNED_PACKAGES)

    def unhold(self, packages: list[str]) -> str:
        return f"{self.hold_tool} delete {words(*packages).text} >/dev/null"

    def forced_flags(self) -> str:
        return f"{self.install_flags} --disableplugin=versionlock".strip()

    def relock(self) -> str:
        """Lock docker-ce/-cli at the installed versions, replacing an older lock of them.

        A lock names one version and ``versionlock add`` keeps an existing one, so it is
        deleted first (apt's holds name packages, not versions)."""
        names = " ".join(PINNED_PACKAGES)
        return f"{self.hold_tool} delete {names} >/dev/null && {self.hold_tool} add {names}"

    def transaction(self, names: str, version: str | None, hold: bool, timeout: int) -> str:
        """dnf/yum install; a pinned version overrides a versionlock.

        Like apt's ``--allow-change-held-packages``, an explicit version wins over a hold, and a
        hold that was there follows the new version."""
        unlocked = " --disableplugin=versionlock" if version else ""
        command = f"{self.name} install -y{NO_LOCK_WAIT}{self.install_flags}{unlocked} {names}"
        if version:  # install refuses to go down a version; downgrade does not install new ones
            pinned = " ".join(self.pin(p, version) for p in PINNED_PACKAGES)
            relock = self.relock() if hold else (
                f"if {self.name} versionlock list 2>/dev/null | grep -q docker-ce; then {self.relock()}; fi")
            return f"({command}) || {self.name} downgrade -y{NO_LOCK_WAIT}{unlocked} {pinned} && {relock}"
        return command + (f" && {self.hold()}" if hold else "")

    def install(self, packages: list[str], timeout: int) -> str:
        return f"{self.name} install -y{NO_LOCK_WAIT} {words(*packages).text}"

    def remove(self, packages: list[str], timeout: int, purge: bool = False) -> str:
        return f"{self.name} remove -y{NO_LOCK_WAIT} {words(*packages).text}"

    def repair(self, interrupted: bool, duplicates: bool, timeout: int) -> str | None:
        return self.remove_duplicates if duplicates else None

    def held(self, holds: frozenset[str] | set[str], files: dict[str, str | None]) -> set[str]:
        return set(PINNED_PACKAGES) & versionlocked(files.get(self.versionlock_list) or "")


APT_GET = AptGet("apt-get", _APT_LOCKS)
DNF = Dnf("dnf", _DNF_LOCKS, lock_plugin="python3-dnf-plugin-versionlock",
          versionlock_list="/etc/dnf/plugins/versionlock.list")
# CentOS 7's yum 3 (its versionlock plugin, package-cleanup for duplicates; no --allowerasing). yum 3 writes
# /var/run/yum.pid; the rehearsal's yum is dnf behind a wrapper.
YUM = Dnf("yum", ManagerLocks("rpm/yum", _DNF_LOCKS.files, (*_DNF_LOCKS.pid_files, "/var/run/yum.pid")),
          lock_plugin="yum-plugin-versionlock", versionlock_list="/etc/yum/pluginconf.d/versionlock.list",
          hold_tool="yum versionlock", install_flags="", remove_duplicates="package-cleanup -y --cleandupes")
MANAGERS: dict[str, PackageManager] = {m.name: m for m in (APT_GET, DNF, YUM)}
# Where the versionlock plugin keeps its list: dnf (EL 8+, Fedora) and yum 3's yum-plugin-versionlock.
VERSIONLOCK_LISTS = {name: m.versionlock_list for name, m in MANAGERS.items() if m.versionlock_list}
LOCKS = {name: manager.locks for name, manager in MANAGERS.items()}
ALL_LOCKS = ManagerLocks("package manager", tuple(dict.fromkeys(f for lk in LOCKS.values() for f in lk.files)),
                         tuple(dict.fromkeys(f for lk in LOCKS.values() for f in lk.pid_files)))


def manager_named(name: str) -> PackageManager:
    return MANAGERS[name]


def refresh_command(manager: str, repo_file: str, timeout: int) -> str:
    """Refresh only the Docker repository's index (not every source on the host), once no other
    package manager holds the locks."""
    return locked(manager, MANAGERS[manager].refresh_repository(repo_file), timeout)


def repository_refresh_command(manager: str, repo_file: str) -> str:
    return MANAGERS[manager].refresh_repository(repo_file)


def transaction_command(manager: str, packages: tuple[str, ...], local_files: tuple[str, ...], version: str | None,
                        hold: bool, timeout: int) -> str:
    """The package manager's command line (what ``--dry-run`` shows): ``packages`` from the repository (docker-ce
    and -cli pinned at ``version`` when given), ``local_files`` (package files on the host) in the same transaction."""
    pm = MANAGERS[manager]
    names = words(*(Raw(pm.pin(p, version)) if version and p in PINNED_PACKAGES else p for p in packages),
                  *local_files).text
    return pm.transaction(names, version, hold, timeout)


def install_command(manager: str, packages: tuple[str, ...], local_files: tuple[str, ...], version: str | None,
                    hold: bool, timeout: int) -> str:
    """The transaction as it runs on the host: after the lock wait, a full disk named."""
    return locked(manager, diagnosed(transaction_command(manager, packages, local_files, version, hold, timeout)),
                  timeout)


def versionlocked(text: str) -> set[str]:
    """Names locked in a versionlock list: dnf writes ``name-E:V-R.*``, yum 3 ``E:name-V-R.*``."""
    names = set()
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith(("#", "!")) and entry.count("-") >= 2:
            names.add(re.sub(r"^\d+:", "", entry.rsplit("-", 2)[0]))
    return names
