"""``hostsetup -H HOSTS doctor``: why docker cannot reach the daemon, and the safe fixes."""

from __future__ import annotations

import re
import textwrap

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.doctor.findings import CODES, explain
from hostsetup.doctor.report import host_details, host_line
from hostsetup.doctor.run import DoctorOptions, doctor_host
from hostsetup.errors import HostsetupError
from hostsetup.inputs.values import did_you_mean
from hostsetup.run.fleet import run_hosts
from hostsetup.run.htmlreport import write_html
from hostsetup.run.report import summary_line, write_json
from hostsetup.run.status import doctor_exit_code
from hostsetup.secrets import register
from hostsetup.targets import targets_from

USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)
def print_explanation(code: str) -> None:
    """``--explain CODE`` (any case; ALL for every code), no host needed."""
    wanted = code.strip().upper()
    if wanted != "ALL" and wanted not in CODES:
        raise HostsetupError(f"--explain: {code!r} is not a finding code{did_you_mean(wanted, CODES)}; "
                             "give one of the codes doctor prints, or ALL")
    for index, name in enumerate(CODES if wanted == "ALL" else [wanted]):
        if index:
            print()
        print("\n".join(explain(name)))


@task(help={
    "fix": "apply the safe, reversible fixes, then diagnose again",
    "dry-run": "print the exact commands --fix would run; change nothing",
    "local": "diagnose this machine (no SSH)",
    "verbose": "show every finding's evidence and fix, and the timings",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the findings to this file (sortable, filterable, offline)",
    "user": "whose docker access to check (default: the login user)",
    "explain": "print what a finding code means: the cause, the evidence looked for, the fix (ALL: every code)",
})
def doctor(c: Context, fix: bool = False, dry_run: bool = False, local: bool = False, verbose: bool = False,
           json: str | None = None, user: str | None = None, explain: str | None = None,
           html: str | None = None) -> None:
    """Diagnose "Cannot connect to the Docker daemon" and "permission denied ... docker.sock".

    One read-only probe per host (one SSH session) -> one line per host with its finding codes,
    root cause first. --fix only unmasks, enables, resets and starts units, moves a refused
    daemon.json aside (or restores hostsetup's newest backup), moves a conflicting "hosts" into
    an ExecStart drop-in (never a plain-TCP one: that is printed, with a warning), starts
    containerd, moves a stale pid file aside and adds the user to the docker group; anything
    that could lose data is printed as a command, never run.

    @CODES@

    Exit status: 0 every host healthy (after --fix: fixed), 1 a host is not healthy, 2 bad
    input, 3 a host could not be diagnosed (unreachable, probe failed).
    """
    if explain is not None:
        print_explanation(explain)
        return
    if user is not None and not USER_NAME.match(user):
        raise HostsetupError(f"--user {user!r} is not a user name")
    register(c.config.sudo.password)  # masked in every line and in --json
    hosts = targets_from(c.config, local)
    options = DoctorOptions(fix=fix, dry_run=dry_run, local=local, user=user or "")
    reports = run_hosts(hosts, lambda h: doctor_host(h, c.config, options), parallel=int(c.config.parallel))
    width = max(len(r.host) for r in reports)
    for report in reports:
        print(host_line(report, width))
        for line in host_details(report, verbose, dry_run):
            print(line)
    if len(reports) > 1:
        print(summary_line(reports))
    if json:
        write_json(reports, json)
    if html:
        write_html(html, "doctor", [r.as_dict() for r in reports])
    code = doctor_exit_code(reports)
    if code:
        raise Exit(code=code)


# The codes, from the one table of them (a new code needs no word here).
doctor.__doc__ = (doctor.__doc__ or "").replace("@CODES@", textwrap.fill(
    f"Codes (doctor --explain CODE says what each means): {', '.join(CODES)}.", width=96,
    subsequent_indent="    ", break_on_hyphens=False))
