"""Faults of a fleet run, on sandbox hosts (Debian 12 and the EL rehearsal's rocky9, real dnf/rpm):
Ctrl-C on the control machine, and a host that stops answering (``docker pause``: its TCP stack
stays up, its processes freeze). Each ends with a rerun that converges every host.

The fleet runs as a user runs it: ``python3 -m hostsetup -H a,b,c install`` in a subprocess of its
own, signalled like a terminal's Ctrl-C signals it (SIGINT to the process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hostsetup.host.files import TEMP_PREFIX
from hostsetup.sandbox.engine import docker
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror

# The files hostsetup writes (all of them on a fresh host: there, the old version is "absent").
MANAGED = {"debian12": ("/etc/apt/keyrings/docker.asc", "/etc/apt/sources.list.d/docker.sources"),
           "rocky9": ("/etc/pki/rpm-gpg/docker-ce.gpg", "/etc/yum.repos.d/docker-ce.repo")}
DAEMON_JSON = "/etc/docker/daemon.json"
# The package step's processes: the refresh of Docker's repository, then the transaction.
PACKAGE_STEP = "(apt-get|dnf|yum) .*(update|makecache|install)"
TRANSACTION = "(apt-get|dnf|yum) .*install"
# Anything hostsetup may have left running on a host after its connection went away.
BUSY = "apt-get|dpkg|dnf|rpm |sh -s"
FIRST_CTRL_C = ("interrupted: finishing the steps in progress on {n} host(s), starting nothing new; "
                "Ctrl-C again to stop now")


class Fleet:
    """``hostsetup -S <sandbox ssh_config> -H <hosts> install`` as a running process, its output
    read line by line as it comes."""

    def __init__(self, sandbox: Sandbox, mirror: SandboxMirror, tmp_path: Path, hosts: list[SandboxHost],
                 *flags: str, config: dict[str, Any]) -> None:
        self.report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
        config_path = tmp_path / f"config-{time.monotonic_ns()}.json"
        config_path.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "hostsetup", "-f", str(config_path), "-S", str(sandbox.ssh_config_path),
               "-H", ",".join(h.hostname for h in hosts), *flags, "install", "--mirror", mirror.url,
               "--insecure-mirror", "--key-fingerprint", mirror.build.key_fingerprint, "--no-verify",
               "--json", str(self.report_path)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def ctrl_c(self) -> float:
        self.proc.send_signal(signal.SIGINT)
        return time.monotonic()

    def finish(self, timeout: float = 300) -> tuple[int, dict[str, dict[str, Any]], str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(10)
        out = "\n".join(self.lines)
        assert "Traceback" not in out, out
        hosts = json.loads(self.report_path.read_text())["hosts"] if self.report_path.exists() else []
        return code, {h["host"]: h for h in hosts}, out


def on_host(host: SandboxHost, command: str) -> subprocess.CompletedProcess[str]:
    """A root shell command inside the host's container (also while its sshd is frozen or gone)."""
    return docker("exec", host.name, "sh", "-c", command, check=False, timeout=60)


def running(host: SandboxHost, pattern: str) -> bool:
    """A process matching ``pattern`` runs on the host (pgrep run directly: a shell around it
    would match its own command line)."""
    return docker("exec", host.name, "pgrep", "-f", pattern, check=False, timeout=60).returncode == 0


def wait_until(what: str, condition: Callable[[], bool], fleet: Fleet | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or (fleet is not None and fleet.proc.poll() is not None):
            output = "\n".join(fleet.lines) if fleet is not None else ""
            pytest.fail(f"{what}: not seen within {timeout:.0f}s\n{output}")
        time.sleep(0.2)


def wait_idle(hosts: list[SandboxHost]) -> None:
    """What a closed connection left running on a host (sshd does not stop it) runs to its end."""
    for host in hosts:
        wait_until(f"{host.hostname} idle", lambda h=host: not running(h, BUSY), timeout=180)  # type: ignore[misc]


def managed_files(host: SandboxHost) -> dict[str, str | None]:
    """Each file hostsetup manages on ``host``: its content, or None when absent."""
    files: dict[str, str | None] = {}
    for path in (*MANAGED[host.flavor], DAEMON_JSON):
        shown = on_host(host, f"cat {path}")
        files[path] = shown.stdout if shown.returncode == 0 else None
    return files


def assert_no_leftovers(host: SandboxHost) -> None:
    """No temporary file of hostsetup's own writes (nor of daemon.json's) anywhere on the host."""
    found = on_host(host, f"find / -xdev \\( -name '{TEMP_PREFIX}*' -o -name '.daemon.json.*' \\) -print "
                          "2>/dev/null").stdout.split()
    assert found == [], (host.hostname, found)


def assert_packages_whole(host: SandboxHost) -> None:
    """The package database holds no half-done transaction."""
    if host.flavor.startswith("debian"):
        audit = on_host(host, "dpkg --audit")
        assert audit.returncode == 0 and audit.stdout.strip() == "", (host.hostname, audit.stdout)
    else:
        check = on_host(host, "rpm -q docker-ce docker-ce-cli containerd.io && rpm -Va --nofiles --nodigest docker-ce")
        assert check.returncode == 0, (host.hostname, check.stdout + check.stderr)


def assert_old_or_new(before: dict[str, str | None], after: dict[str, str | None], where: str) -> None:
    """Every managed file as the interrupted run left it: absent (the fresh host's "old" version)
    or exactly what the converging rerun has (the new version, whole)."""
    for path, content in before.items():
        assert content is None or content == after[path], (where, path, content)


def steps_of(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report["steps"]}


def test_ctrl_c_during_a_fleet_run(sandbox, mirror, fresh_hosts, tmp_path) -> None:
    """First Ctrl-C: the steps in progress finish, nothing new starts, the report says who was
    interrupted and who never started (exit 130). Second Ctrl-C: connections closed at once."""
    deb_a, rocky_b, deb_c = hosts = fresh_hosts("debian12", "rocky9", "debian12")
    config = {"daemon": {"profiles": "log-rotation"}}

    # 1. Ctrl-C once while a and b are both in their package step; c waits for a free slot.
    fleet = Fleet(sandbox, mirror, tmp_path, hosts, "--parallel", "2", config=config)
    wait_until("the package step on a debian12 and the rocky9 host at once",
               lambda: running(deb_a, PACKAGE_STEP) and running(rocky_b, PACKAGE_STEP), fleet)
    fleet.ctrl_c()
    code, report, out = fleet.finish()
    assert code == 130, out
    assert out.count(FIRST_CTRL_C.format(n=2)) == 1, out
    assert "hostsetup: interrupted" in out and "3 hosts: 2 interrupted, 1 not started" in out
    for host in (deb_a, rocky_b):
        steps = steps_of(report[host.hostname])
        assert report[host.hostname]["status"] == "interrupted", report[host.hostname]
        # The step in progress ran to its end; the one after it (daemon.json) never started.
        assert steps["packages"] == "changed" and steps["daemon"] == "interrupted", steps
        assert report[host.hostname]["error"] == (
            "interrupted by Ctrl-C before step daemon; done: key, repository, packages, service, group; "
            "not done: daemon; rerun to finish")
        assert host.hostname in out and report[host.hostname]["error"] in out  # the table's error column
    assert report[deb_c.hostname]["status"] == "not started" and report[deb_c.hostname]["steps"] == []
    assert report[deb_c.hostname]["error"] == "not started: interrupted by Ctrl-C"
    assert set(managed_files(deb_c).values()) == {None}  # never touched
    after_first = {h.name: managed_files(h) for h in hosts}
    for host in hosts:
        assert_no_leftovers(host)
    for host in (deb_a, rocky_b):
        assert_packages_whole(host)
        assert after_first[host.name][DAEMON_JSON] is None

    # 2. All three: a and b only need daemon.json and finish; Ctrl-C twice while c's package
    # step runs: its connection is closed at once, the others keep their status.
    fleet = Fleet(sandbox, mirror, tmp_path, hosts, "--parallel", "3", config=config)
    wait_until("a and b done, c in its package step",
               lambda: (fleet.said(f"[{deb_a.hostname}] changed (") and fleet.said(f"[{rocky_b.hostname}] changed (")
                        and running(deb_c, PACKAGE_STEP)), fleet)
    fleet.ctrl_c()
    time.sleep(1)
    second = fleet.ctrl_c()
    code, report, out = fleet.finish()
    assert time.monotonic() - second < 10, out  # at once, not after the package step
    assert code == 130, out
    assert FIRST_CTRL_C.format(n=1) in out and "interrupted again: closing the connections to 1 host(s) now" in out
    for host in (deb_a, rocky_b):
        assert report[host.hostname]["status"] == "changed" and report[host.hostname]["error"] == ""
        assert steps_of(report[host.hostname])["daemon"] == "changed"
    cut = report[deb_c.hostname]
    assert cut["status"] == "interrupted", cut
    assert cut["error"].startswith("connection closed by the second Ctrl-C during step packages; "
                                   "done: key, repository; cut short: packages (may be half done); not done: "), cut
    assert steps_of(cut)["packages"] == "interrupted" and "@@hostsetup" not in out
    wait_idle(hosts)
    after_second = {h.name: managed_files(h) for h in hosts}
    for host in hosts:
        assert_no_leftovers(host)

    # 3. The rerun converges every host; then nothing is left to do.
    code, report, out = Fleet(sandbox, mirror, tmp_path, hosts, config=config).finish()
    assert code == 0, out
    assert {h: r["status"] for h, r in report.items()} == {
        deb_a.hostname: "ok", rocky_b.hostname: "ok", deb_c.hostname: report[deb_c.hostname]["status"]}
    assert report[deb_c.hostname]["status"] in ("changed", "ok") and report[deb_c.hostname]["error"] == ""
    final = {h.name: managed_files(h) for h in hosts}
    for host in hosts:
        assert all(content is not None for content in final[host.name].values()), final[host.name]
        assert_old_or_new(after_first[host.name], final[host.name], "after the first Ctrl-C")
        assert_old_or_new(after_second[host.name], final[host.name], "after the second Ctrl-C")
        assert_packages_whole(host)
        assert_no_leftovers(host)
    code, report, out = Fleet(sandbox, mirror, tmp_path, hosts, config=config).finish()
    assert code == 0 and "3 hosts: 3 ok" in out, out


def test_host_that_stops_answering_mid_run(sandbox, mirror, fresh_hosts, tmp_path) -> None:
    """A debian12 and the rocky9 host freeze in their package transaction: each is given up after
    dead_host_timeout with one line, the third host finishes; a frozen host's SSH port (TCP
    accepted, no greeting) fails fast too; unfrozen, the rerun converges them."""
    deb_a, rocky_b, deb_c = hosts = fresh_hosts("debian12", "rocky9", "debian12")
    frozen = [deb_a, rocky_b]
    config = {"daemon": {"profiles": "log-rotation"}, "dead_host_timeout": 5}
    paused: dict[str, float] = {}
    try:
        fleet = Fleet(sandbox, mirror, tmp_path, hosts, config=config)

        def freeze_in_transaction() -> bool:
            for host in frozen:
                if host.name not in paused and running(host, TRANSACTION):
                    docker("pause", host.name)
                    paused[host.name] = time.monotonic()
            return len(paused) == len(frozen)

        wait_until("both package transactions", freeze_in_transaction, fleet)
        code, report, out = fleet.finish()
        assert code == 1, out
        for host in frozen:
            result = report[host.hostname]
            assert result["status"] == "failed", result
            assert result["error"] == "stopped answering: no reply for 5 s during step packages", result
            assert f"{host.hostname}" in out and result["error"] in out
            # Given up within the bound (5 s of silence, checked every second), not at the end.
            assert paused[host.name] - fleet.started + 2 < result["seconds"] < paused[host.name] - fleet.started + 12
            assert steps_of(result)["packages"] == "failed" and steps_of(result)["daemon"] == "skipped"
        assert report[deb_c.hostname]["status"] == "changed", report[deb_c.hostname]
        assert set(steps_of(report[deb_c.hostname]).values()) <= {"ok", "changed"}
        assert "3 hosts: 1 changed, 2 failed" in out

        # A frozen host accepts TCP (its kernel answers) but no SSH greeting comes: bounded too.
        started = time.monotonic()
        code, report, out = Fleet(sandbox, mirror, tmp_path, [deb_a],
                                  config={**config, "dead_host_timeout": 3}).finish()
        assert code == 1 and time.monotonic() - started < 20, out
        assert report[deb_a.hostname]["error"] == ("cannot connect: no SSH greeting within 3 s (the port accepts "
                                                   "connections but nothing there speaks SSH)"), out
    finally:
        for name in paused:
            docker("unpause", name, check=False)

    wait_idle(hosts)
    code, report, out = Fleet(sandbox, mirror, tmp_path, hosts, config=config).finish()
    assert code == 0, out
    for host in hosts:
        assert report[host.hostname]["status"] in ("changed", "ok") and report[host.hostname]["error"] == ""
        assert_packages_whole(host)
        assert_no_leftovers(host)
        assert all(content is not None for content in managed_files(host).values())
    assert report[deb_c.hostname]["status"] == "ok"
