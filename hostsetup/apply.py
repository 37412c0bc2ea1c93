"""Carrying out a plan on a host: each step in one root shell script where possible.

Files are written to a temporary file beside the target and renamed into place;
the previous version is kept under ``/var/backups/hostsetup`` (the last few).

The repository configuration (repository file, key, legacy files) is proven only by the
package manager's refresh of that repository's index. Until then each such file a run
changes is kept as it was (``hostsetup.rollback``); if the refresh fails, they are all put
back, so that a mirror that does not answer as it should never leaves a source behind that
breaks the host's own ``apt-get update`` / ``dnf makecache``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from invoke.runners import Result
from paramiko.ssh_exception import SSHException

from hostsetup import rollback
from hostsetup.bundle import unpack_script
from hostsetup.daemon.apply import apply_configure
from hostsetup.distros import Platform
from hostsetup.downloads import curl_failure, failed_download
from hostsetup.host.command import Command, Raw, command, join
from hostsetup.host.files import remove_with_backup, write_as_user, write_atomic
from hostsetup.login import check_login_script
from hostsetup.openpgp import key_file_problem
from hostsetup.operations import (
    CheckLogin,
    ConfigureDaemon,
    FetchKey,
    InstallPackages,
    Operation,
    RemoveFiles,
    Run,
    UploadBundle,
    WriteFile,
    WriteUserFile,
)
from hostsetup.plan import PlanError, resolve_version
from hostsetup.remote import Remote, RemoteError, tail
from hostsetup.run.status import Status
from hostsetup.steps import Plan, Step

MARK = "@@hostsetup-step"


@dataclass(frozen=True)
class StepResult:
    name: str
    status: Status
    summary: str
    seconds: float = 0.0
    error: str = ""


@dataclass
class RepositoryGuard:
    """The repository configuration files this run changed that no refresh has proven yet.

    Scripts are made in the order they run: a write of a guarded file first keeps it
    (``rollback.keep_script``); the next refresh of the repository is its proof."""

    repo_file: str
    key_file: str
    guarded: frozenset[str]
    refresh: str                  # the plan's refresh of the repository alone (a Run of it proves too)
    kept: list[str] = field(default_factory=list)
    started: bool = False
    proofs: dict[str, list[str]] = field(default_factory=dict)  # step name -> the files its refresh proves
    kept_by: dict[str, str] = field(default_factory=dict)       # path -> the step that changed it first
    reverted: set[str] = field(default_factory=set)             # steps whose files were put back

    @classmethod
    def for_platform(cls, platform: Platform) -> RepositoryGuard:
        family = platform.family
        return cls(family.repo_file, family.key_file,
                   frozenset((family.repo_file, family.key_file, *family.legacy_files)),
                   platform.manager.refresh_repository(family.repo_file))

    def keep(self, step: str, paths: Iterable[str]) -> str:
        """The script that keeps those of ``paths`` that are guarded and not kept yet ("" if none)."""
        new = [p for p in paths if p in self.guarded and p not in self.kept]
        if not new:
            return ""
        lines = [] if self.started else [rollback.begin_script()]
        self.started = True
        self.kept.extend(new)
        self.kept_by.update({p: step for p in new if p not in self.kept_by})
        return join([*lines, *(rollback.keep_script(p) for p in new), ""]).text

    def prove(self, step: str, command: str) -> str:
        """``command`` (a refresh) as the proof of the kept files: on failure they are put back."""
        self.proofs[step], self.kept = self.kept, []
        return rollback.proof_script(command, self.proofs[step])

    def put_back(self, paths: list[str]) -> str:
        """``'the repository file and key were'`` and the like, for ``paths``."""
        names = [name for name, path in (("the repository file", self.repo_file), ("the key", self.key_file))
                 if path in paths] + [p for p in paths if p not in (self.repo_file, self.key_file)]
        what = names[-1] if len(names) < 2 else f"{', '.join(names[:-1])} and {names[-1]}"
        plural = len(names) > 1
        return f"{what} {'were' if plural else 'was'} put back as {'they were' if plural else 'it was'}"

    def failure(self, step: Step, result: Result) -> str:
        """One line on why ``step`` failed in ``result``: the URL that failed and what it answered;
        after a failed refresh, what was put back."""
        output = f"{result.stdout}\n{result.stderr}"
        download = failed_download(output)
        if rollback.PROOF_FAILED in result.stdout:
            paths = self.proofs.get(step.name, [])
            cause = f"{download[0]} answered {download[1]}" if download else _clean_tail(result)
            message = f"refreshing the repository's index failed: {cause}"
            if rollback.RESTORED in result.stdout:
                message += f"; {self.put_back(paths)}"
                self.reverted |= {self.kept_by[p] for p in paths if p in self.kept_by}
            elif paths:
                message += (f"; putting back {', '.join(paths)} failed: the previous files are in "
                            f"{rollback.ROLLBACK_DIR}")
            return message
        if download and any(isinstance(op, InstallPackages) for op in step.operations):
            # apt and dnf fetch every package before they change any: nothing was installed.
            return (f"downloading {download[0]} failed: {download[1]}; no package was changed; the repository "
                    "stays configured (its index was read and verified)")
        return _clean_tail(result)


def _clean_tail(result: Result) -> str:
    """``tail`` without hostsetup's own marker lines."""
    lines = [line for line in (result.stderr.strip() or result.stdout.strip()).splitlines()
             if not line.startswith(("@@hostsetup", MARK))]
    return "\n".join(lines[-6:]) or f"exit code {result.exited}"


def _run_packages(remote: Remote, op: InstallPackages, step: Step, guard: RepositoryGuard) -> None:
    result = remote.root(join(("set -e", guard.prove(step.name, op.refresh_command()),
                               op.package_manager.list_versions())).text)
    if not result.ok:
        raise RemoteError(guard.failure(step, result))
    version = op.version
    if op.pin and not version:
        available = tuple(line.strip() for line in result.stdout.splitlines() if line.strip())
        try:
            version = resolve_version(op.pin, available)
        except PlanError as exc:
            raise RemoteError(str(exc)) from None
    result = remote.root(op.install_command(version))
    if connection_lost(result):
        raise RemoteError(CONNECTION_LOST.format(step=step.name))
    if not result.ok:
        raise RemoteError(f"installing packages failed: {guard.failure(step, result)}")


def _fetch_key(remote: Remote, op: FetchKey) -> str:
    """Download and check the key; return the script that installs it. Nothing is written
    on the host unless the key is the expected one."""
    # The URL may carry a mirror's password: curl reads it from stdin (-K -), never argv.
    result = remote.run("curl -fsSL --retry 2 --max-time 60 -K -", stdin=f'url = "{op.url}"\n')
    if not result.ok:
        raise RemoteError(f"downloading the repository key {op.url} failed: "
                          f"{curl_failure(result.stderr) or tail(result)}; nothing was written")
    problem = key_file_problem(result.stdout.encode(), op.fingerprints)
    if problem is not None:
        raise RemoteError(f"key from {op.url}: {problem}; refusing to trust it, nothing was written "
                          "(set install.key_fingerprint for a private mirror's own key)")
    return write_atomic(op.path, result.stdout, "0644").text  # apt's _apt reads it


def _script(op: Operation, step: Step, guard: RepositoryGuard) -> str | None:
    """The shell form of ``op``, or None when it needs this machine in the middle."""
    if isinstance(op, Run):
        return guard.prove(step.name, op.command) if op.command == guard.refresh else op.command
    if isinstance(op, WriteFile):
        return guard.keep(step.name, [op.path]) + write_atomic(op.path, op.content, op.mode).text
    if isinstance(op, RemoveFiles):
        return guard.keep(step.name, op.paths) + remove_with_backup(op.paths).text
    if isinstance(op, CheckLogin):
        return check_login_script(op).text
    if isinstance(op, WriteUserFile):
        return write_as_user(op.user, op.path, op.content).text
    if isinstance(op, InstallPackages) and not (op.pin and not op.version):
        return join((guard.prove(step.name, op.refresh_command()), op.install_command(op.version))).text
    return None


def _batchable(op: Operation) -> bool:
    return isinstance(op, Run | WriteFile | RemoveFiles | CheckLogin | WriteUserFile) or (
        isinstance(op, InstallPackages) and not (op.pin and not op.version))


def step_script(step: Step, guard: RepositoryGuard) -> str | None:
    """One shell script for the whole step, or None when a step needs a round trip of its own."""
    if not all(_batchable(op) for op in step.operations):
        return None
    return join(s for s in (_script(op, step, guard) for op in step.operations) if s is not None).text


def apply_step(remote: Remote, step: Step, guard: RepositoryGuard) -> None:
    """Run a step that cannot be batched: fetched keys and versions resolved on the host."""
    for op in step.operations:
        if isinstance(op, UploadBundle):
            _upload_bundle(remote, op)
        elif isinstance(op, FetchKey):
            script = guard.keep(step.name, [op.path]) + _fetch_key(remote, op)
            result = remote.root(join(("set -e", script)).text)
            if not result.ok:
                raise RemoteError(f"writing {op.path} failed: {tail(result)}")
        elif isinstance(op, ConfigureDaemon):
            apply_configure(remote, op)
        elif isinstance(op, InstallPackages) and op.pin and not op.version:
            _run_packages(remote, op, step, guard)
        else:
            result = remote.root(join(("set -e", _script(op, step, guard) or "")).text)
            if not result.ok:
                raise RemoteError(f"{step.name} failed: {guard.failure(step, result)}")


def _upload_bundle(remote: Remote, op: UploadBundle) -> None:
    """SFTP as the login user into a file only it can read, then as root: sha256 checked, unpacked, upload removed."""
    made = remote.run('umask 077 && mktemp "${TMPDIR:-/var/tmp}/.hostsetup-bundle-XXXXXXXX"', timeout=60)
    uploaded = made.stdout.strip()
    if not made.ok or not uploaded.startswith("/"):
        raise RemoteError(f"no temporary file for the bundle: {tail(made)}")
    remote.sessions += 1
    unpacking = False
    try:
        remote.conn.put(op.local, uploaded)
        unpacking = True   # the unpack script removes the upload however it ends
        remote.root_ok(unpack_script(op, uploaded), "unpacking the bundle", timeout=600)
    except (OSError, EOFError, SSHException) as exc:
        raise RemoteError(f"uploading the bundle failed: {exc}; nothing was unpacked") from None
    finally:
        if not unpacking:   # cut off in the upload (an error, Ctrl-C): the partial file goes
            remote.run(command("rm -f @PATH@", PATH=uploaded).text, timeout=60)


def batch_script(steps: list[tuple[Step, str]]) -> str:
    """Several steps in one session; markers tell which finished and when."""
    parts: list[Command | str] = [
        command("""mark() { printf '\\n@MARK@ %s %s %s\\n' "$1" "$2" "$(date +%s.%N)"; }""", MARK=Raw(MARK)),
        "mark start -"]
    for step, script in steps:
        # Not `( ... ) || ...`: inside a tested command `set -e` would be ignored.
        parts.append(command("( set -e\n@SCRIPT@\n)\nrc=$?\nif [ $rc -ne 0 ]; then mark failed @STEP@; exit $rc; fi",
                             SCRIPT=Raw(script), STEP=step.name))
        parts.append(command("mark done @STEP@", STEP=step.name))
    return join(parts).text


CONNECTION_LOST = ("the SSH connection was lost (no exit status) during step {step}; the host may still be "
                   "running it: rerun install (it waits for a package transaction still running and finishes "
                   "an interrupted one)")


def connection_lost(result: Result) -> bool:
    """The session ended without an exit status: sshd or the connection went away mid-command."""
    return result.exited == -1


def batch_results(steps: list[Step], stdout: str, error: str, lost: bool = False) -> list[StepResult]:
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
            step = steps[results.index(first)]
            results[results.index(first)] = StepResult(
                step.name, "failed", step.summary, 0.0, CONNECTION_LOST.format(step=step.name) if lost else error)
    return results


class _Application:
    """One plan being applied: consecutive shell steps wait in ``pending`` and run as one batch (one SSH
    session); a step that needs this machine in the middle runs on its own; after a failure the rest
    is skipped."""

    def __init__(self, remote: Remote, plan: Plan, progress: Callable[[StepResult], None]) -> None:
        self.remote, self.plan, self.progress = remote, plan, progress
        self.results: dict[str, StepResult] = {}
        self.pending: list[tuple[Step, str]] = []
        self.guard = RepositoryGuard.for_platform(plan.platform)
        self.failed = False

    def record(self, result: StepResult) -> None:
        self.results[result.name] = result
        self.progress(result)

    def reverted(self, result: StepResult) -> StepResult:
        if result.name not in self.guard.reverted or result.status != "changed":
            return result
        return replace(result, status="reverted", summary=f"{result.summary} (put back as it was)")

    def flush(self) -> bool:
        """Run the pending batch; False when it failed."""
        if not self.pending:
            return True
        steps = [step for step, _ in self.pending]
        output = self.remote.root(batch_script(self.pending))
        self.pending.clear()
        lost = connection_lost(output)
        batch = [replace(r, error=self.guard.failure(next(s for s in steps if s.name == r.name), output))
                 if r.status == "failed" and not lost else r
                 for r in batch_results(steps, output.stdout, "" if output.ok else tail(output), lost)]
        for result in batch:
            self.record(self.reverted(result))
        return output.ok

    def step(self, step: Step) -> None:
        if self.failed:
            self.record(StepResult(step.name, "skipped", "an earlier step failed"))
            return
        if not step.changes:
            self.record(StepResult(step.name, "ok", step.summary))
            return
        if step.notice:  # shown now, as the step is about to run (it is not a result)
            self.progress(StepResult(step.name, "waiting", step.notice))
        script = step_script(step, self.guard)
        if script is not None:
            self.pending.append((step, script))
            return
        if not self.flush():
            self.failed = True
            self.record(StepResult(step.name, "skipped", "an earlier step failed"))
            return
        self.alone(step)

    def alone(self, step: Step) -> None:
        """A step that needs this machine in the middle (a key to check, versions to resolve, a bundle)."""
        start = time.monotonic()
        try:
            if len(step.operations) == 1 and isinstance(step.operations[0], FetchKey):
                # Download and check now; installing the key joins the next batch.
                fetched = _fetch_key(self.remote, step.operations[0])
                self.pending.append((step, self.guard.keep(step.name, [step.operations[0].path]) + fetched))
                return
            apply_step(self.remote, step, self.guard)
            self.record(StepResult(step.name, "changed", step.summary, time.monotonic() - start))
        except RemoteError as exc:
            self.failed = True
            self.record(StepResult(step.name, "failed", step.summary, time.monotonic() - start, str(exc)))
            if not isinstance(step.operations[0], FetchKey) or len(step.operations) != 1:
                for earlier in [r for r in self.results.values() if self.reverted(r) != r]:  # an earlier session's
                    self.record(self.reverted(earlier))

    def finish(self) -> list[StepResult]:
        if not self.failed:
            if self.guard.kept and self.pending:  # written, and nothing in the plan reads them: nothing to put back
                last_step, last_script = self.pending[-1]
                self.pending[-1] = (last_step, join((last_script, rollback.discard_script())).text)
            elif self.guard.kept:
                self.remote.root(rollback.discard_script())
            self.flush()
        return [self.results[step.name] for step in self.plan.steps]


def apply_plan(remote: Remote, plan: Plan,
               progress: Callable[[StepResult], None] = lambda r: None) -> list[StepResult]:
    """Apply every step in order, batching consecutive shell steps into one SSH session.

    After a failure the remaining steps are skipped.
    """
    application = _Application(remote, plan, progress)
    for step in plan.steps:
        application.step(step)
    return application.finish()
