"""The words a run reports in, and the exit codes they end in: one vocabulary for every task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from invoke.exceptions import Exit

# A host of a run, or one step of its plan. Converging (install, configure, login, portainer, uninstall):
# ok, changed, failed, skipped (failed fleet limit), planned (--dry-run), interrupted, not started; a step
# also: waiting (for the package-manager lock), reverted (changed, then put back as it was). Doctor: healthy,
# unhealthy, fixed, failed (could not be diagnosed).
Status = Literal["ok", "changed", "failed", "planned", "skipped", "interrupted", "not started", "waiting", "reverted",
                 "healthy", "unhealthy", "fixed"]
# One check of ``verify``, and a host's checks as a whole.
CheckStatus = Literal["passed", "failed", "skipped"]

INTERRUPTED: Status = "interrupted"
NOT_STARTED: Status = "not started"

EXIT_OK = 0
EXIT_FAILED = 1          # a host failed (or was not started); doctor: a host is not healthy
EXIT_BAD_INPUT = 2       # the command line, a configuration file or an inventory is wrong: nothing was done
EXIT_UNREACHABLE = 3     # doctor: a host could not be diagnosed
EXIT_INTERNAL = 70       # hostsetup's own fault (EX_SOFTWARE): a one-line message, never a traceback
EXIT_INTERRUPTED = 130   # Ctrl-C stopped the run


class HasStatus(Protocol):
    @property
    def status(self) -> Status: ...


def exit_code(reports: Sequence[HasStatus], interrupted: bool = False) -> None:
    """End a converging run: 0 when every host is ok or changed (returns); 1 when a host failed or was
    not started; 130 when Ctrl-C stopped the run (raises ``Exit``)."""
    if interrupted or any(r.status in (INTERRUPTED, NOT_STARTED) for r in reports):
        raise Exit("hostsetup: interrupted; the report above says what each host did (rerun to finish)",
                   code=EXIT_INTERRUPTED)
    if any(r.status in ("failed", "skipped") for r in reports):
        raise Exit(code=EXIT_FAILED)


def doctor_exit_code(reports: Sequence[HasStatus]) -> int:
    """3 when a host could not be diagnosed, else 1 when one is not healthy, else 0."""
    if any(r.status == "failed" for r in reports):
        return EXIT_UNREACHABLE
    if any(r.status not in ("healthy", "fixed") for r in reports):
        return EXIT_FAILED
    return EXIT_OK
