"""Carrying out a plan on a host: each step in one root shell script where possible.

Files are written to a temporary file beside the target and renamed into place;
the previous version is kept under ``/var/backups/hostsetup`` (the last few).
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from hostsetup.openpgp import KeyFormatError, primary_fingerprints
from hostsetup.operations import (
    FetchKey,
    InstallPackages,
    Operation,
    RemoveFiles,
    Run,
    WriteFile,
)
from hostsetup.pkgcommands import install_command, list_versions_command, refresh_command
from hostsetup.plan import Plan, PlanError, Step, resolve_version
from hostsetup.remote import Remote, RemoteError, tail

BACKUP_DIR = "/var/backups/hostsetup"
BACKUPS_KEPT = 5


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str          # ok, changed, failed, skipped
    summary: str
    seconds: float = 0.0
    error: str = ""


def backup_script(path: str) -> str:
    """Copy ``path`` (if present) to the backup directory; keep the newest few."""
    name = path.strip("/").replace("/", "_")
    q = shlex.quote
    return (f"if [ -e {q(path)} ]; then install -d -m 0700 {BACKUP_DIR}; "
            f"cp -p {q(path)} {BACKUP_DIR}/{q(name)}.$(date +%Y%m%dT%H%M%S%N); "
            f"ls -1t {BACKUP_DIR}/{q(name)}.* | tail -n +{BACKUPS_KEPT + 1} | "
            "xargs -r rm -f; fi")


def write_file_script(op: WriteFile) -> str:
    q = shlex.quote
    payload = base64.b64encode(op.content.encode()).decode()
    return "\n".join((
        f'd=$(dirname {q(op.path)}); install -d -m 0755 "$d"',
        'tmp=$(mktemp "$d/.hostsetup.XXXXXX")',
        f'echo {payload} | base64 -d > "$tmp"',
        f'chmod {op.mode} "$tmp"',
        backup_script(op.path),
        f'mv -f "$tmp" {q(op.path)}',
    ))


def remove_files_script(op: RemoveFiles) -> str:
    return "\n".join(f"{backup_script(p)}\nrm -f {shlex.quote(p)}" for p in op.paths)


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


def _fetch_key(remote: Remote, op: FetchKey) -> None:
    result = remote.run(f"curl -fsSL --retry 2 --max-time 60 {shlex.quote(op.url)}")
    if not result.ok:
        raise RemoteError(f"downloading {op.url} failed: {tail(result)}")
    try:
        found = primary_fingerprints(result.stdout.encode())
    except KeyFormatError as exc:
        raise RemoteError(f"{op.url} is not an OpenPGP key ({exc})") from None
    if not set(found) & set(op.fingerprints):
        raise RemoteError(f"key from {op.url} has fingerprint {', '.join(found)}, expected "
                          f"{' or '.join(op.fingerprints)}: refusing to trust it "
                          "(set install.key_fingerprint for a private mirror's own key)")
    remote.root_ok(write_file_script(WriteFile(op.path, result.stdout, op.old)),
                   f"writing {op.path}")


def _script(op: Operation) -> str | None:
    if isinstance(op, Run):
        return op.command
    if isinstance(op, WriteFile):
        return write_file_script(op)
    if isinstance(op, RemoveFiles):
        return remove_files_script(op)
    return None


def apply_step(remote: Remote, step: Step) -> None:
    """Run one step's operations; consecutive shell operations share one session."""
    batch: list[str] = []

    def flush() -> None:
        if batch:
            remote.root_ok("set -e\n" + "\n".join(batch), step.name)
            batch.clear()

    for op in step.operations:
        script = _script(op)
        if script is not None:
            batch.append(script)
            continue
        flush()
        if isinstance(op, FetchKey):
            _fetch_key(remote, op)
        elif isinstance(op, InstallPackages):
            _run_packages(remote, op)
    flush()


def apply_plan(remote: Remote, plan: Plan,
               progress: Callable[[StepResult], None] = lambda r: None) -> list[StepResult]:
    """Apply every step in order; after a failure the rest are skipped."""
    results: list[StepResult] = []
    failed = False
    for step in plan.steps:
        if failed:
            result = StepResult(step.name, "skipped", "an earlier step failed")
        elif not step.changes:
            result = StepResult(step.name, "ok", step.summary)
        else:
            start = time.monotonic()
            try:
                apply_step(remote, step)
                result = StepResult(step.name, "changed", step.summary,
                                    time.monotonic() - start)
            except RemoteError as exc:
                failed = True
                result = StepResult(step.name, "failed", step.summary,
                                    time.monotonic() - start, str(exc))
        results.append(result)
        progress(result)
    return results

