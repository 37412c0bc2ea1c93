"""One host through the doctor: probe, classify, (fix, probe again), report.

Every failure ends up in the host's report, never raised, so one unreachable
host does not stop the others (``hostsetup.run.fleet.run_hosts`` runs them in parallel).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fabric import Config
from invoke.exceptions import AuthFailure, CommandTimedOut, Failure
from paramiko.ssh_exception import SSHException

from hostsetup.apply import StepResult
from hostsetup.doctor.classify import classify
from hostsetup.doctor.findings import Finding, healthy
from hostsetup.doctor.fixes import FixPlan, FixStep, plan_fixes
from hostsetup.doctor.probes import Probes, parse_probes, probe_command
from hostsetup.errors import HostsetupError
from hostsetup.facts import FactsError
from hostsetup.remote import Remote, tail
from hostsetup.run.fleet import HostReport, open_connection
from hostsetup.targets import LOCAL, Target

Shell = Remote


@dataclass(frozen=True)
class DoctorOptions:
    """What the doctor task was asked to do."""

    fix: bool = False
    dry_run: bool = False
    local: bool = False
    user: str = ""


@dataclass
class DoctorReport(HostReport):
    """A host's diagnosis, the repairs tried and the diagnosis after them.

    ``status``: healthy, fixed (healthy after --fix), unhealthy, or failed (could not diagnose).
    """

    engine: str = ""
    user: str = ""
    findings: list[Finding] = field(default_factory=list)
    plan: FixPlan | None = None
    after: list[Finding] | None = None

    @property
    def final(self) -> list[Finding]:
        return self.after if self.after is not None else self.findings

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.final]

    def as_dict(self) -> dict[str, object]:
        plan = self.plan
        results = {s.name: s for s in self.steps}
        return {
            "host": self.host, "system": self.system, "engine": self.engine, "user": self.user,
            "status": self.status, "error": self.error, "codes": self.codes,
            "seconds": round(self.seconds, 3), "ssh_sessions": self.sessions,
            "findings": [f.as_dict() for f in self.findings],
            "fixes": None if plan is None else {
                "steps": [_step_dict(s, results.get(s.name)) for s in plan.steps],
                "manual": [{"code": f.code, "fix": f.fix, "command": f.command} for f in plan.manual],
                "notes": list(plan.notes)},
            "after": None if self.after is None else [f.as_dict() for f in self.after],
        }


def _step_dict(step: FixStep, result: StepResult | None) -> dict[str, object]:
    return {"name": step.name, "codes": list(step.codes), "script": step.shown or step.script, "note": step.note,
            "status": result.status if result else "planned", "seconds": round(result.seconds, 3) if result else 0,
            "error": result.error if result else ""}


def probe(shell: Shell, user: str = "") -> Probes:
    """Run the probe script (one session) and parse it."""
    result = shell.run(probe_command(user), timeout=90)
    try:
        probes = parse_probes(result.stdout)
    except FactsError as exc:
        raise HostsetupError(f"probing failed ({exc}): {tail(result)}") from None
    except Exception as exc:  # the parser is pure: whatever it raises, the output was not what it knows
        raise HostsetupError(f"probing failed: output not understood ({type(exc).__name__}: {exc})") from None
    if isinstance(shell, Remote):
        shell.as_root, shell.sudo_asks = probes.uid == 0, probes.privilege == "password"
    return probes


def apply_fixes(shell: Shell, plan: FixPlan) -> list[StepResult]:
    """Run each repair as root; after a failure the rest are skipped."""
    results: list[StepResult] = []
    for step in plan.steps:
        if results and results[-1].status != "changed":
            results.append(StepResult(step.name, "skipped", "an earlier fix failed"))
            continue
        start = time.monotonic()
        result = shell.root("set -e\n" + step.script, timeout=300)
        summary = step.note or (f"for {', '.join(step.codes)}" if step.codes else "")
        results.append(StepResult(step.name, "changed" if result.ok else "failed", summary,
                                  time.monotonic() - start, "" if result.ok else tail(result)))
    return results


def _can_fix(probes: Probes, config: Config, local: bool) -> str:
    if probes.has_root or (probes.privilege == "password" and not local and config.sudo.password):
        return ""
    if probes.privilege == "password":
        return (f"sudo asks {probes.user} for a password: "
                + ("run as root or with passwordless sudo" if local else "run with --prompt-for-sudo-password"))
    return f"{probes.user} is not root and cannot use sudo"


class _Doctor:
    """The per-host sequence, holding the open shell so a re-probe can reconnect."""

    def __init__(self, target: Target, config: Config, options: DoctorOptions) -> None:
        self.target, self.config, self.options = target, config, options
        self.report = DoctorReport(LOCAL if options.local else target.name)
        self.shell: Shell | None = None
        self.sessions = 0

    def open(self) -> Shell:
        self.close()
        self.shell = open_connection(self.target, self.config)
        return self.shell

    def close(self) -> None:
        if self.shell is not None:
            self.sessions += self.shell.sessions
            self.shell.conn.close()
            self.shell = None

    def run(self) -> None:
        report, options = self.report, self.options
        shell = self.open()
        probes = probe(shell, options.user)
        report.system, report.engine, report.user = probes.os, probes.engine, probes.target
        report.findings = classify(probes)
        report.status = "healthy" if healthy(report.findings) else "unhealthy"
        if not (options.fix or options.dry_run) or report.status == "healthy":
            return
        report.plan = plan_fixes(report.findings, probes, time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
        if options.dry_run or not report.plan.steps:
            return
        refused = _can_fix(probes, self.config, options.local)
        if refused:
            report.error = f"cannot fix: {refused}"
            return
        report.steps = apply_fixes(shell, report.plan)
        # Group changes reach only new logins: look again from one.
        again = probe(self.open() if report.plan.regroup else shell, options.user)
        report.after = classify(again)
        report.status = "fixed" if healthy(report.after) else "unhealthy"


def doctor_host(target: Target, config: Config, options: DoctorOptions) -> DoctorReport:
    """Diagnose (and with ``options.fix`` repair) one host; never raises."""
    doctor = _Doctor(target, config, options)
    start = time.monotonic()
    try:
        doctor.run()
    except HostsetupError as exc:
        doctor.report.status, doctor.report.error = "failed", str(exc)
    except CommandTimedOut as exc:
        doctor.report.status, doctor.report.error = "failed", f"timed out after {exc.timeout}s"
    except (TimeoutError, SSHException, OSError, EOFError) as exc:
        doctor.report.status, doctor.report.error = "failed", f"cannot connect: {exc or type(exc).__name__}"
    except AuthFailure:
        doctor.report.status, doctor.report.error = "failed", "sudo did not accept the password"
    except Failure as exc:  # UnexpectedExit and the like: a command invoke or fabric gave up on
        doctor.report.status, doctor.report.error = "failed", f"command failed: {tail(exc.result)}"
    except Exception as exc:  # one host's surprise must not take the others down
        doctor.report.status, doctor.report.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        doctor.close()
        doctor.report.sessions = doctor.sessions
        doctor.report.seconds = time.monotonic() - start
    return doctor.report
