"""Running the shipped testinfra checks against hosts: one process for the whole fleet
(``hostsetup.checks.fleet``), over testinfra's SSH backend with hostsetup's connection settings."""

from __future__ import annotations

import contextlib
import hashlib
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
from xml.sax.saxutils import quoteattr

from invoke.config import Config

import hostsetup.checks
from hostsetup.daemon.settings import DaemonSettings
from hostsetup.portainer import PortainerSettings
from hostsetup.run.htmlreport import write_html
from hostsetup.run.report import write_json_file, write_private
from hostsetup.run.status import CheckStatus
from hostsetup.secrets import mask
from hostsetup.settings import InstallSettings, settings_as_dict
from hostsetup.targets import LOCAL, Target

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
    status: CheckStatus
    message: str = ""


@dataclass
class VerifyReport:
    host: str
    status: CheckStatus = "passed"
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


def host_error(result: dict[str, Any] | None, crashed: str) -> str:
    """Why a host has no check results ("" when it has them): never reached, or could not be checked."""
    if result is None:   # the run crashed or ran out of time before this host
        return f"the checks did not run: {crashed or 'no result'}"
    return str(result.get("error") or "")


def junit_error(message: str) -> str:
    """A JUnit file with one error: what a host whose checks could not run reports."""
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="hostsetup" tests="1" errors="1">'
            f'<testcase classname="hostsetup" name="checks"><error message={quoteattr(message)}/></testcase>'
            "</testsuite></testsuites>\n")


@dataclass(frozen=True)
class CommandsMemory:
    """The read-only commands a set of checks ran last time (``hostsetup.checks.fleet`` has every host answer
    them ahead), kept per checks' content in the user's cache; a stale list costs nothing but a few answers."""

    path: Path
    key: str
    limit: int = 400

    def read(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text())
            return [str(c) for c in data.get(self.key, [])][: self.limit]
        except (OSError, ValueError, AttributeError):
            return []

    def write(self, commands: list[str]) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}   # none yet, or unreadable: start afresh
        if not isinstance(data, dict):
            data = {}
        try:
            data[self.key] = commands[: self.limit]
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.part")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(data))
            partial.replace(self.path)
        except OSError:
            pass   # a cache: next time the first host runs live again


def commands_memory(hosts: list[dict[str, Any]]) -> CommandsMemory:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hostsetup" / "verify-commands.json"
    digest = hashlib.sha256()
    for path in sorted({c for h in hosts for c in h["checks"]}):
        digest.update(path.encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(Path(path).read_bytes())
    return CommandsMemory(cache, digest.hexdigest()[:16])


@dataclass(frozen=True)
class VerifyJob:
    """One host to check: its name in reports, how to reach it, what it must be."""

    name: str
    target: str
    expected: dict[str, Any]
    identity: str | None = None
    junit_copy: Path | None = None


def verify_fleet(jobs: Sequence[VerifyJob], ssh: SshOptions, extra_checks: Sequence[str] = (),
                 parallel: int = 10) -> list[VerifyReport]:
    """Run the checks on every host in ONE process (``hostsetup.checks.fleet``: connections and answers
    ahead in parallel, one pytest run per host); a report per job, in order; never raises."""
    reports = [VerifyReport(job.name) for job in jobs]
    if not jobs:
        return reports
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hostsetup-verify-") as tmp:
        work = Path(tmp)
        ini = work / "pytest.ini"
        ini.write_text("[pytest]\n")
        hosts = []
        for index, job in enumerate(jobs):
            expect = work / f"expect-{index}.json"
            expect.write_text(json.dumps(job.expected))
            checks = [str(ABSENT_CHECKS_FILE if job.expected.get("absent") else CHECKS_FILE), *extra_checks]
            hosts.append({"name": str(index), "target": job.target, "expect": str(expect), "checks": checks,
                          "junit": str(work / f"junit-{index}.xml"), "sudo": needs_sudo(job.target),
                          "identity": job.identity})
        job_file, results_file = work / "job.json", work / "results.json"
        memory = commands_memory(hosts)
        job_file.write_text(json.dumps({
            "hosts": hosts, "ini": str(ini), "results": str(results_file), "parallel": parallel,
            "known": memory.read(),
            "ssh": {"ssh_config": ssh.ssh_config, "identity": ssh.identity, "known_hosts": list(ssh.known_hosts),
                    "connect_timeout": ssh.connect_timeout}}))
        limit = 600 + 30 * len(jobs)
        try:
            proc = subprocess.run([sys.executable, "-m", "hostsetup.checks.fleet", str(job_file)],
                                  capture_output=True, text=True, timeout=limit, cwd=work, env=checks_environment())
            crashed = "" if proc.returncode == 0 else "\n".join(
                (proc.stdout + proc.stderr).strip().splitlines()[-5:]) or f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            crashed = f"the checks of every host together did not finish within {limit} s"
        try:   # written after each host: what finished counts even when the run was cut short
            outcome = json.loads(results_file.read_text())
        except (OSError, ValueError):
            outcome = {}
        results = outcome.get("hosts", {})
        if outcome.get("commands") and not crashed:
            memory.write(outcome["commands"])
        for index, (job, report) in enumerate(zip(jobs, reports, strict=True)):
            junit = work / f"junit-{index}.xml"
            found = results.get(str(index))
            report.error = host_error(found, crashed)
            result = found or {}
            if not report.error and junit.exists():
                report.checks = parse_junit(junit)
                if not report.checks or result.get("exit") not in (0, 1):
                    report.error = (f"the checks did not run (pytest exit {result.get('exit')}): "
                                    f"{result.get('output', '')}")
            elif not report.error:
                report.error = f"the checks did not run: {result.get('output') or 'no JUnit report'}"
            if job.junit_copy is not None:
                # A host whose checks never ran gets a JUnit file saying so, never the file of an earlier run.
                text = junit.read_text(errors="replace") if report.checks else junit_error(report.error)
                write_private(job.junit_copy, mask(text))
            report.seconds = float(result.get("seconds") or time.monotonic() - start)
            if report.error or report.count("failed"):
                report.status = "failed"
    return reports


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


def ssh_options(config: Config) -> SshOptions:
    keys = config.connect_kwargs.get("key_filename") or []
    return SshOptions(ssh_config=getattr(config, "_runtime_ssh_path", None) or None,
                      identity=str(keys[0]) if keys else None,
                      known_hosts=tuple(str(k) for k in config.known_hosts),
                      connect_timeout=int(config.timeouts.connect or 10))


def expected_state(settings: InstallSettings, daemon: DaemonSettings | None, smoke: bool,
                   pull: tuple[str, ...] = (), portainer: PortainerSettings | None = None) -> dict[str, Any]:
    """What the checks expect: the very settings install used (JSON), the daemon keys we own, smoke,
    images each user must be able to pull."""
    return {"install": settings_as_dict(settings), "pull": list(pull),
            "portainer": {"name": portainer.name, "port": portainer.port} if portainer else None,
            "daemon": {"config": daemon.config, "replace": daemon.replace, "registry_cas": daemon.registry_cas}
            if daemon and daemon.configured else None,
            "smoke": smoke}


ABSENT: dict[str, Any] = {"absent": True}   # the "nothing left" check set (uninstall's)


def run_verify(config: Config, targets: list[Target], expected: dict[str, dict[str, Any]],
               checks: list[str] | None = None, junit_xml: str | None = None,
               json_path: str | None = None, html_path: str | None = None) -> list[VerifyReport]:
    """Verify hosts in parallel; print the per-host table and each failure in plain words."""
    base = ssh_options(config)
    extra = [str(Path(p).expanduser()) for p in checks or []]

    def copy(target: Target) -> Path | None:
        if junit_xml and len(targets) > 1:
            return Path(f"{junit_xml}.{target.name.replace('/', '_')}.xml")
        return Path(junit_xml) if junit_xml else None

    jobs = [VerifyJob(t.name, t.address, expected[t.name], t.key, copy(t)) for t in targets]
    reports = verify_fleet(jobs, base, extra, parallel=int(config.parallel))
    print("\n".join(table(reports)))
    for line in failures(reports):
        print(f"FAILED {line}")
    if json_path:
        write_json_file(json_path, {"hosts": [r.as_dict() for r in reports]})
    if html_path:
        write_html(html_path, "verify", [r.as_dict() for r in reports])
    return reports
