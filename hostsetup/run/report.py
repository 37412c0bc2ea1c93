"""Per-host results as text for people and JSON for machines."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from hostsetup.run.fleet import HostReport
from hostsetup.run.status import INTERRUPTED, NOT_STARTED
from hostsetup.secrets import mask_data


def host_block(report: HostReport, verbose: bool = False, live: bool = False) -> list[str]:
    """A host's report; with ``live`` the step lines were already printed as they ran."""
    head = f"== {report.host}" + (f" ({report.system})" if report.system else "")
    lines = [head]
    if report.plan_text:
        lines += report.plan_text
    elif not live:
        for step in report.steps:
            if step.status == "ok" and not verbose:
                continue
            timing = f" ({step.seconds:.1f}s)" if step.seconds else ""
            lines.append(f"  {step.status:8} {step.name:14} {step.summary}{timing}")
            if step.error:
                lines += [f"           {line}" for line in step.error.splitlines()]
    stopped = report.status in (INTERRUPTED, NOT_STARTED)  # its one line says what was done and not
    if report.error and (stopped or (report.status == "failed" and not any(s.error for s in report.steps))):
        lines += [f"  error: {line}" for line in report.error.splitlines()]
    lines += [f"  WARNING: {w}" for w in report.warnings]
    changed = len(report.changed)
    ok = sum(1 for s in report.steps if s.status == "ok")
    lines.append(f"  -> {report.status}: {changed} changed, {ok} already done, "
                 f"{report.seconds:.2f}s, {report.sessions} SSH sessions")
    return lines


def summary_line(reports: Sequence[HostReport]) -> str:
    counts = Counter(r.status for r in reports)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{len(reports)} host{'s' if len(reports) != 1 else ''}: {parts}"


def write_json(reports: Sequence[HostReport], path: str | Path) -> None:
    """``--json``: every string masked (``hostsetup.secrets``)."""
    write_json_file(path, {"hosts": [r.as_dict() for r in reports]})


def write_json_file(path: str | Path, data: object) -> None:
    """Every machine-readable report: strings masked, the file private to its owner."""
    write_private(path, json.dumps(mask_data(data), indent=2) + "\n")


def write_private(path: str | Path, text: str) -> None:
    """Write ``text`` (already masked) to ``path``, mode 0600 (it names hosts, users, errors)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if os.path.isfile(path):  # an existing file keeps its mode otherwise (a FIFO or /dev/stdout is left alone)
        os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def fleet_table(reports: Sequence[HostReport]) -> list[str]:
    """One line per host: host, system, status, changed steps, duration, error in one line."""
    rows = [(r.host, r.system or "?", r.status, ",".join(r.changed) or "-", f"{r.seconds:.1f}s",
             (r.error.splitlines() or [""])[0]) for r in reports]
    heads = ("host", "system", "status", "changed", "time", "error")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads[:-1])]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    return [line(heads), *(line(row) for row in rows)]
