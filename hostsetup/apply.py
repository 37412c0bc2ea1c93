"""Carrying out a plan on a host: each step in one root shell script where possible.

Files are written to a temporary file beside the target and renamed into place;
the previous version is kept under ``/var/backups/hostsetup`` (the last few).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hostsetup.daemon.apply import apply_configure
from hostsetup.openpgp import key_file_problem
from hostsetup.operations import (
    ConfigureDaemon,
    FetchKey,
    InstallPackages,
    Operation,
    RemoveFiles,
    Run,
    WriteFile,
)
from hostsetup.pkgcommands import install_command, list_versions_command, refresh_command
from hostsetup.plan import PlanError, resolve_version
from hostsetup.remote import Remote, RemoteError, tail
from hostsetup.scripts import remove_files_script, write_file_script
from hostsetup.steps import Plan, Step

BACKUP_DIR = "/var/backups/hostsetup"
MARK = "@@hostsetup-step"
BACKUPS_KEPT = 5


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str          # ok, changed, failed, skipped
    summary: str
    seconds: float = 0.0
    error: str = ""


def _run_packages(remote: Remote, op: InstallPackages) -> None:
    result = remote.root_ok(refresh_command(op) + " >/dev/null && " + list_versions_command(op),
                            "refreshing the Docker repository index")
    version = op.version
    if op.pin and not version:
        available = tuple(line.strip() for line in result.stdout.splitlines() if line.strip())
        try:
            version = resolve_version(op.pin, available)
        except PlanError as exc:
            raise RemoteError(str(exc)) from None
    remote.root_ok(install_command(op, version), "installing packages")


def _fetch_key(remote: Remote, op: FetchKey) -> str:
    """Download and check the key; return the script that installs it."""
    # The URL may carry a mirror's password: curl reads it from stdin (-K -), never argv.
    result = remote.run("curl -fsSL --retry 2 --max-time 60 -K -", stdin=f'url = "{op.url}"\n')
    if not result.ok:
        raise RemoteError(f"downloading {op.url} failed: {tail(result)}")
    problem = key_file_problem(result.stdout.encode(), op.fingerprints)
    if problem is not None:
        raise RemoteError(f"key from {op.url}: {problem}; refusing to trust it "
                          "(set install.key_fingerprint for a private mirror's own key)")
    return write_file_script(WriteFile(op.path, result.stdout, op.old, mode="0644"))  # apt's _apt reads it


def _script(op: Operation) -> str | None:
    """The shell form of ``op``, or None when it needs this machine in the middle."""
    if isinstance(op, Run):
        return op.command
    if isinstance(op, WriteFile):
        return write_file_script(op)
    if isinstance(op, RemoveFiles):
        return remove_files_script(op)
    if isinstance(op, InstallPackages) and not (op.pin and not op.version):
        return f"{refresh_command(op)} >/dev/null\n{install_command(op, op.version)}"
    return None


def step_script(step: Step) -> str | None:
    """One shell script for the whole step, or None when a step needs a round trip of its own."""
    scripts = [_script(op) for op in step.operations]
    if any(script is None for script in scripts):
        return None
    return "\n".join(s for s in scripts if s is not None)


def apply_step(remote: Remote, step: Step) -> None:
    """Run a step that cannot be batched: fetched keys and versions resolved on the host."""
    for op in step.operations:
        if isinstance(op, FetchKey):
            remote.root_ok(_fetch_key(remote, op), f"writing {op.path}")
        elif isinstance(op, ConfigureDaemon):
            apply_configure(remote, op)
        elif isinstance(op, InstallPackages) and op.pin and not op.version:
            _run_packages(remote, op)
        else:
            remote.root_ok("set -e\n" + (_script(op) or ""), step.name)


def batch_script(steps: list[tuple[Step, str]]) -> str:
    """Several steps in one session; markers tell which finished and when."""
    parts = [f'mark() {{ printf \'\\n{MARK} %s %s %s\\n\' "$1" "$2" "$(date +%s.%N)"; }}', "mark start -"]
    for step, script in steps:
        # Not `( ... ) || ...`: inside a tested command `set -e` would be ignored.
        parts.append(f"( set -e\n{script}\n)\nrc=$?\n"
                     f"if [ $rc -ne 0 ]; then mark failed {step.name}; exit $rc; fi")
        parts.append(f"mark done {step.name}")
    return "\n".join(parts)


def batch_results(steps: list[Step], stdout: str, error: str) -> list[StepResult]:
    """Per-step results from a batch's markers (steps after a failure are skipped)."""
    marks = [line.split()[1:] for line in stdout.splitlines()
             if line.startswith(MARK + " ") and len(line.split()) == 4]
    times = {name: float(at) for kind, name, at in marks if kind in ("start", "done", "failed")}
    results, previous = [], times.get("-", 0.0)
    for step in steps:
        if step.name in times and any(k == "done" and n == step.name for k, n, _ in marks):
            results.append(StepResult(step.name, "changed", step.summary, times[step.name] - previous))
            previous = times[step.name]
        elif step.name in times:
            results.append(StepResult(step.name, "failed", step.summary, times[step.name] - previous, error))
            previous = times[step.name]
        else:
            results.append(StepResult(step.name, "skipped", "an earlier step failed"))
    if not any(r.status == "failed" for r in results) and error:
        first = next((r for r in results if r.status == "skipped"), None)
        if first is not None:  # the session itself broke before the next marker
            results[results.index(first)] = StepResult(first.name, "failed", first.summary, 0.0, error)
    return results


def apply_plan(remote: Remote, plan: Plan,
               progress: Callable[[StepResult], None] = lambda r: None) -> list[StepResult]:
    """Apply every step in order, batching consecutive shell steps into one SSH session.

    After a failure the remaining steps are skipped.
    """
    results: dict[str, StepResult] = {}
    pending: list[tuple[Step, str]] = []

    def record(result: StepResult) -> None:
        results[result.name] = result
        progress(result)

    def flush() -> bool:
        if not pending:
            return True
        steps = [step for step, _ in pending]
        output = remote.root(batch_script(pending))
        pending.clear()
        for result in batch_results(steps, output.stdout, "" if output.ok else tail(output)):
            record(result)
        return output.ok

    failed = False
    for step in plan.steps:
        if failed:
            record(StepResult(step.name, "skipped", "an earlier step failed"))
            continue
        if not step.changes:
            record(StepResult(step.name, "ok", step.summary))
            continue
        script = step_script(step)
        if script is not None:
            pending.append((step, script))
            continue
        if not flush():
            failed = True
            record(StepResult(step.name, "skipped", "an earlier step failed"))
            continue
        start = time.monotonic()
        if len(step.operations) == 1 and isinstance(step.operations[0], FetchKey):
            # Download and check now; installing the key joins the next batch.
            try:
                pending.append((step, _fetch_key(remote, step.operations[0])))
            except RemoteError as exc:
                failed = True
                record(StepResult(step.name, "failed", step.summary, time.monotonic() - start, str(exc)))
            continue
        try:
            apply_step(remote, step)
            record(StepResult(step.name, "changed", step.summary, time.monotonic() - start))
        except RemoteError as exc:
            failed = True
            record(StepResult(step.name, "failed", step.summary, time.monotonic() - start, str(exc)))
    if not failed:
        flush()
    return [results[step.name] for step in plan.steps]
