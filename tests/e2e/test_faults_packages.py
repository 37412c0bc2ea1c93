"""Package-manager faults on real sandbox hosts (Debian 12 and the EL rehearsal's rocky9), one host per
OS through four faults in turn, each ending with a rerun of ``install`` that converges:

1. the dpkg/apt (rpm/dnf) lock held by another process: a live "waiting" line, a bounded wait
   (``install.lock_timeout``), then a clear failure naming the holder; no package touched, and the
   key and repository file written before it put back;
2. the SSH session killed with everything it ran while dpkg or rpm installs docker-ce: "connection
   was lost during step packages", exit 1; dpkg is left interrupted, and the rerun repairs it first;
3. only the connection killed (the session's sshd processes on the host) mid-transaction: the
   transaction goes on on the host, and the rerun waits for its lock and converges;
4. the filesystem the packages write to fills (a small tmpfs mounted over the plugins' directory):
   "the disk is full" naming it; after it is unmounted the rerun converges.

The holders are what a real unattended upgrade would be: on Debian an ``apt-get`` (waiting at its
prompt, holding the dpkg locks), on rocky9 a process taking dnf's own rpmdb lock with dnf's lock code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fabric import Connection

from hostsetup.distros import APT, RPM
from hostsetup.sandbox.hosts import Sandbox, SandboxHost
from tests.e2e.conftest import only_host, ssh, steps_with

ALL_STEPS = ["conflicts", "prerequisites", "key", "repository", "packages", "service", "group"]
PLUGINS_DIR = "/usr/libexec/docker/cli-plugins"
HOLDER_UNIT = "hostsetup-test-lock-holder"
HOLDER = {
    # apt-get at its "Do you want to continue?" prompt holds the dpkg frontend lock (stdin: a pipe
    # that stays open), as an admin's or unattended-upgrades' apt-get would.
    "debian12": ("sh -c 'sleep 300 | apt-get remove curl'", "apt-get remove", "dpkg/apt"),
    # dnf's own ProcessLock code, exactly as a running dnf (dnf-automatic) holds it.
    "rocky9": ("python3 -c 'import dnf.lock, time; dnf.lock.build_rpmdb_lock(\"/var/lib/dnf\", False).__enter__(); "
               "time.sleep(300)'", "python3 -c", "rpm/dnf"),
}
# The holder has its lock: apt-get has the frontend lock file open; dnf's pid file names a live process.
HOLDER_READY = {"debian12": "ls -l /proc/$(pgrep -x apt-get)/fd 2>/dev/null | grep -q lock-frontend",
                "rocky9": "test -d /proc/$(cat /var/lib/dnf/rpmdb_lock.pid 2>/dev/null || echo none)"}
# A sign, read in a separate root session, that the package transaction is writing to the system:
# dpkg unpacking; rpm having installed the first package (of all of them, or of the two plugins).
IN_TRANSACTION = {"debian12": "ps -C dpkg -o args= | grep -q -e --unpack",
                  "rocky9": "rpm -qa 'docker*' 'containerd*' | grep -q ."}
IN_PLUGIN_TRANSACTION = {**IN_TRANSACTION,
                         "rocky9": "rpm -q docker-compose-plugin docker-buildx-plugin | grep -qv 'not installed'"}
REMOVE_PLUGINS = {"debian12": "apt-get remove -y -q docker-buildx-plugin docker-compose-plugin",
                  "rocky9": "dnf remove -y -q docker-buildx-plugin docker-compose-plugin"}
PACKAGE_STATE = {"debian12": "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'docker*' "
                             "'containerd*' 2>/dev/null; dpkg --audit",
                 "rocky9": "rpm -qa 'docker*' 'containerd*' | sort"}
TEMP_FILES = ("for d in /etc/apt /etc/yum.repos.d /etc/pki/rpm-gpg /etc/docker; do "
              "if [ -d $d ]; then find $d -name '.hostsetup.*'; fi; done")

LOST = "the SSH connection was lost (no exit status) during step packages"
# The hostsetup session's sshd processes (not the test's root session's): the connection drops.
KILL_SSHD = "for p in $(pgrep -f '^sshd: hostsetup'); do kill \"$p\"; done"
# ... and every process under them: sudo, sh, apt-get/dpkg or dnf.
KILL_SESSION_TREE = ("pids=$(pgrep -f '^sshd: hostsetup'); all=$pids; while [ -n \"$pids\" ]; do "
                     "pids=$(for p in $pids; do pgrep -P \"$p\"; done); all=\"$all $pids\"; done; kill -9 $all")

Cli = Callable[..., tuple[int, dict[str, Any], str]]


def interrupted(cli: Cli, host: SandboxHost, root: Connection, writing: str,
                kill: str) -> tuple[int, dict[str, Any], str]:
    """``install`` with ``kill`` run on the host (another session) once ``writing`` says the
    package transaction writes to the system."""
    result: list[tuple[int, dict[str, Any], str]] = []
    thread = threading.Thread(target=lambda: result.append(cli(host, "--users", "hostsetup")))
    thread.start()
    deadline = time.monotonic() + 180
    while root.run(writing, hide=True, warn=True).failed:
        assert thread.is_alive() and time.monotonic() < deadline, result or "no transaction seen"
        time.sleep(0.1)
    run(root, kill)
    thread.join(120)
    assert result, "install did not end after its connection was killed"
    return result[0]


def assert_clean(root: Connection, flavor: str) -> None:
    """Every package installed, the package database without loose ends, the engine running."""
    state = run(root, PACKAGE_STATE[flavor])
    assert all(p in state for p in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
                                    "docker-compose-plugin")), state
    if flavor == "debian12":
        assert run(root, "dpkg --audit; ls -A /var/lib/dpkg/updates").strip() == ""
    else:
        assert run(root, "rpm -qa --qf '%{NAME}\\n' | sort | uniq -d").strip() == "", state  # no duplicates
    assert run(root, "systemctl is-active docker").strip() == "active"


def run(c: Connection, command: str, warn: bool = False) -> str:
    return c.run(command, hide=True, warn=warn, timeout=120).stdout


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in only_host(report)["steps"] if s["name"] == name)


def converges(cli: Cli, host: SandboxHost, also: str | None = None) -> None:
    """A rerun finishes the job (with step ``also`` among the changed ones; or it finds it done: a
    transaction that went on without its connection may have finished it); the run after it has
    nothing to do (facts only: one session)."""
    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0, out
    assert only_host(report)["status"] in ("changed", "ok"), out
    assert also is None or also in steps_with(report, "changed"), out
    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0 and only_host(report)["status"] == "ok", out
    assert steps_with(report, "ok") == ALL_STEPS and only_host(report)["ssh_sessions"] == 1, out


@pytest.mark.parametrize("flavor", ["debian12", "rocky9"])
def test_package_manager_faults_then_rerun_converges(sandbox: Sandbox, mirror, cli: Cli, fresh_hosts,
                                                     flavor: str) -> None:
    host = fresh_hosts(flavor)[0]
    with ssh(sandbox, host, "root") as root:
        # -- 1. the lock held by another package manager: bounded wait, clear failure, nothing done --
        command, holder_name, lock_name = HOLDER[flavor]
        run(root, f"systemd-run --unit={HOLDER_UNIT} {command}")
        deadline = time.monotonic() + 30
        while root.run(HOLDER_READY[flavor], hide=True, warn=True).failed:
            assert time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.2)
        packages_before = run(root, PACKAGE_STATE[flavor], warn=True)
        started = time.monotonic()
        code, report, out = cli(host, "--users", "hostsetup", extra_env={"HOSTSETUP_INSTALL_LOCK_TIMEOUT": "3"})
        assert code == 1, out
        assert time.monotonic() - started < 60, out
        assert f"waiting  packages       the {lock_name} lock is held by " in out, out  # live, before it
        error = step(report, "packages")["error"]
        assert step(report, "packages")["status"] == "failed", out
        assert f"the {lock_name} lock is still held by " in error and f"{holder_name} after 3 s" in error, error
        assert "rerun" in error and "Traceback" not in out
        assert [s for s in ("service", "group") if step(report, s)["status"] != "skipped"] == []
        assert run(root, PACKAGE_STATE[flavor], warn=True) == packages_before  # no package touched
        # Nothing half-done: the key and repository file written before the wait were put back (none here).
        assert "were put back as they were" in error and steps_with(report, "reverted") == ["key", "repository"]
        family = APT if flavor == "debian12" else RPM
        assert run(root, f"ls {family.repo_file} {family.key_file} 2>&1; true").count("No such file") == 2
        assert run(root, f"systemctl is-active {HOLDER_UNIT}").strip() == "active"  # hostsetup left it alone
        run(root, f"systemctl stop {HOLDER_UNIT}")

        # -- 2. the session killed with everything it ran, mid-transaction ------------------------
        # (as logind's KillUserProcesses=yes, or an OOM kill of the session, would): dpkg and rpm are
        # cut short; the rerun finishes what they left (dpkg --configure -a) and converges.
        code, report, out = interrupted(cli, host, root, IN_TRANSACTION[flavor], KILL_SESSION_TREE)
        assert code == 1, out
        assert step(report, "packages")["error"].startswith(LOST), out
        if flavor == "debian12":
            assert run(root, "dpkg --audit; ls -A /var/lib/dpkg/updates").strip() != ""  # really interrupted
        converges(cli, host, "repair" if flavor == "debian12" else None)
        assert_clean(root, flavor)

        # -- 3. only the connection killed (the session's sshd processes), mid-transaction ----------
        # The transaction goes on without it on the host; the rerun waits for its lock and converges.
        run(root, f"{REMOVE_PLUGINS[flavor]} >/dev/null 2>&1")
        code, report, out = interrupted(cli, host, root, IN_PLUGIN_TRANSACTION[flavor], KILL_SSHD)
        assert code == 1, out
        packages = step(report, "packages")
        assert packages["status"] == "failed" and packages["error"].startswith(LOST), out
        assert "rerun install" in packages["error"] and "Traceback" not in out
        converges(cli, host)
        assert_clean(root, flavor)

        # -- 4. the disk fills under the transaction ------------------------------------------------
        run(root, f"{REMOVE_PLUGINS[flavor]} >/dev/null 2>&1; mkdir -p {PLUGINS_DIR} && "
                  f"mount -t tmpfs -o size=1m hostsetup-test-full {PLUGINS_DIR}")
        try:
            code, report, out = cli(host, "--users", "hostsetup")
            assert code == 1, out
            error = step(report, "packages")["error"]
            assert step(report, "packages")["status"] == "failed", out
            assert error.splitlines()[-1].startswith("hostsetup: the disk is full: "), error
            assert PLUGINS_DIR in error.splitlines()[-1] and "rerun install" in error, error
            assert "Traceback" not in out
            assert run(root, TEMP_FILES) == ""  # nothing half-written by hostsetup itself
        finally:
            run(root, f"umount {PLUGINS_DIR}")
        converges(cli, host)
        assert_clean(root, flavor)
