"""The doctor's output: one line per host, details with ``--verbose``, commands with ``--dry-run``.

Every line goes through ``hostsetup.secrets.mask``: evidence, errors and fix scripts may carry
daemon.json's proxy credentials or the sudo password.
"""

from __future__ import annotations

from hostsetup.doctor.findings import Finding
from hostsetup.doctor.run import DoctorReport
from hostsetup.secrets import mask
from hostsetup.targets import LOCAL


def _codes(findings: list[Finding]) -> str:
    return ",".join(f.code for f in findings) or "-"


def host_line(report: DoctorReport, width: int = 0) -> str:
    """``web1  unhealthy  CONFIG_INVALID_JSON,START_LIMIT_HIT`` (``-> HEALTHY`` after a fix)."""
    codes = "-" if report.status == "failed" and not report.findings else _codes(report.findings)
    if report.after is not None:
        codes += f" -> {_codes(report.after)}"
    line = f"{report.host:{width}}  {report.status:9}  {codes}"
    return mask(line + (f"  ({report.error})" if report.error else ""))


def finding_lines(findings: list[Finding]) -> list[str]:
    lines = []
    for f in findings:
        lines.append(f"    {f.code} [{f.severity}] {f.summary}")
        lines += [f"        evidence: {e}" for e in f.evidence]
        lines.append(f"        fix: {f.fix}")
        if f.command:
            lines.append(f"        run: {f.command}")
    return lines


def host_details(report: DoctorReport, verbose: bool, dry_run: bool) -> list[str]:
    """What follows a host's line: the plan (always on --dry-run), results, and with --verbose everything."""
    lines: list[str] = []
    if verbose:
        head = ", ".join(x for x in (report.system, report.engine, f"user {report.user}" if report.user else "") if x)
        lines.append(f"  {head}" if head else "")
        lines += finding_lines(report.findings)
    plan = report.plan
    if plan is not None and (dry_run or (verbose and not report.steps)):
        lines.append("  would run as root:" if dry_run else "  fixes (not applied):")
        lines += [f"    {line}" for line in plan.describe()]
    for step in report.steps:
        summary = f": {step.summary}" if step.summary else ""
        lines.append(f"  {step.status:8} {step.name}{summary}" + (f" ({step.seconds:.1f}s)" if step.seconds else ""))
        lines += [f"           {line}" for line in step.error.splitlines()]
    if plan is not None and not dry_run and not verbose:
        lines += [f"  by hand ({f.code}): {f.command or f.fix}" for f in plan.manual]
        lines += [f"  note: {n}" for n in plan.notes]
    if report.after is not None and verbose:
        lines.append("  after the fixes:")
        lines += finding_lines(report.after)
    if verbose:
        unit = "processes" if report.host == LOCAL else "SSH sessions"
        lines.append(f"  {report.seconds:.2f}s, {report.sessions} {unit}")
    return [mask(line) for line in lines if line]
