"""Running the shipped testinfra checks against hosts: one pytest process per host, in
parallel, over testinfra's SSH backend with hostsetup's connection settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostsetup.checks
from hostsetup.secrets import mask
from hostsetup.targets import LOCAL

CHECKS_FILE = Path(hostsetup.checks.__file__).parent / "test_docker_host.py"
ABSENT_CHECKS_FILE = CHECKS_FILE.with_name("test_docker_absent.py")   # after uninstall: expected {"absent": true}
# Where this hostsetup was imported from: the checks' pytest process imports the same one
# (a source tree run with ``python3 -m hostsetup`` must not mix with an installed wheel).
IMPORT_ROOT = Path(hostsetup.checks.__file__).resolve().parents[2]


def checks_environment() -> dict[str, str]:
    """The checks' environment: a source tree (a clone) goes first on PYTHONPATH; an installed
    hostsetup is found by the same interpreter anyway (and site-packages must not precede the stdlib)."""
    if not (IMPORT_ROOT / "pyproject.toml").is_file():
        return dict(os.environ)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(IMPORT_ROOT), path) if p)}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str      # passed, failed, skipped
    message: str = ""


@dataclass
class VerifyReport:
    host: str
    status: str = "passed"   # passed, failed
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "seconds": round(self.seconds, 3), "error": self.error,
                "checks": [{"name": c.name, "status": c.status, "message": c.message} for c in self.checks]}


@dataclass(frozen=True)
class SshOptions:
    """How testinfra reaches the hosts: the same settings hostsetup's own connections use."""

    ssh_config: str | None = None
    identity: str | None = None
    known_hosts: tuple[str, ...] = ()
    connect_timeout: int = 10


def needs_sudo(target: str) -> bool:
    if target == LOCAL:
        return os.geteuid() != 0
    return not target.startswith("root@")


def pytest_command(target: str, expect_file: Path, junit: Path, ssh: SshOptions,
                   extra_checks: Sequence[str] = (), ini: Path | None = None, absent: bool = False) -> list[str]:
    """pytest over the shipped checks (and the user's), with our ``host`` fixture instead of testinfra's."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:pytest11.testinfra", "-p", "hostsetup.checks.plugin",
           "-p", "no:cacheprovider", "-q", "--hostsetup-target", target, "--hostsetup-expect", str(expect_file),
           "--junit-xml", str(junit), "-o", "junit_family=xunit1",
           "--hostsetup-connect-timeout", str(ssh.connect_timeout)]
    if ini is not None:
        cmd += ["-c", str(ini), "--rootdir", str(ini.parent)]
    if needs_sudo(target):
        cmd.append("--hostsetup-sudo")
    if ssh.ssh_config:
        cmd += ["--hostsetup-ssh-config", ssh.ssh_config]
    if ssh.identity:
        cmd += ["--hostsetup-identity", ssh.identity]
    for known in ssh.known_hosts:
        cmd += ["--hostsetup-known-hosts", known]
    return [*cmd, str(ABSENT_CHECKS_FILE if absent else CHECKS_FILE), *extra_checks]


def parse_junit(path: Path) -> list[CheckResult]:
    """Per-check results from pytest's JUnit XML."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            message = (failure.get("message") or "").removeprefix("AssertionError: ").split("\nassert ")[0]
            results.append(CheckResult(name, "failed", message.strip()))
        elif skipped is not None:
            results.append(CheckResult(name, "skipped", skipped.get("message", "")))
        else:
            results.append(CheckResult(name, "passed"))
    return results


def verify_host(target: str, expected: dict[str, Any], ssh: SshOptions, extra_checks: Sequence[str] = (),
                junit_copy: Path | None = None) -> VerifyReport:
    """Run every check against one host; never raises."""
    report = VerifyReport(target)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hostsetup-verify-") as tmp:
        work = Path(tmp)
        expect_file, junit, ini = work / "expect.json", work / "junit.xml", work / "pytest.ini"
        expect_file.write_text(json.dumps(expected))
        ini.write_text("[pytest]\n")
        proc = subprocess.run(pytest_command(target, expect_file, junit, ssh, extra_checks, ini,
                                             bool(expected.get("absent"))),
                              capture_output=True, text=True, timeout=600, cwd=work,
                              env=checks_environment())
        if junit.exists():
            report.checks = parse_junit(junit)
            if junit_copy is not None:
                from hostsetup.report import write_private  # (report imports runner; keep verify light)

                write_private(junit_copy, mask(junit.read_text(errors="replace")))
        if not report.checks or proc.returncode not in (0, 1):
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            report.error = f"the checks did not run (pytest exit {proc.returncode}): {tail}"
    if report.error or report.count("failed"):
        report.status = "failed"
    report.seconds = time.monotonic() - start
    return report


def table(reports: Sequence[VerifyReport]) -> list[str]:
    """host | result | passed/failed/skipped | the first failure in plain words."""
    width = max([len(r.host) for r in reports] + [4])
    lines = [f"{'host':{width}}  result  pass fail skip  first failure"]
    for r in reports:
        first = next((f"{c.name}: {c.message}" for c in r.checks if c.status == "failed"), r.error)
        lines.append(f"{r.host:{width}}  {r.status:6}  {r.count('passed'):4} {r.count('failed'):4} "
                     f"{r.count('skipped'):4}  {first.splitlines()[0] if first else ''}")
    return lines


def failures(reports: Sequence[VerifyReport]) -> list[str]:
    return [f"{r.host}: {c.name}: {c.message}" for r in reports for c in r.checks if c.status == "failed"]
