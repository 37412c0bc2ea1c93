"""Batched steps: the shell script really runs (locally) and its markers give per-step results."""

from __future__ import annotations

import subprocess

from hostsetup.apply import batch_results, batch_script
from hostsetup.plan import Step


def run_batch(steps: list[tuple[Step, str]]) -> tuple[str, int]:
    proc = subprocess.run(["sh", "-c", batch_script(steps)], capture_output=True, text=True, timeout=30)
    return proc.stdout, proc.returncode


def test_all_steps_done() -> None:
    steps = [Step("a", "first"), Step("b", "second")]
    out, code = run_batch([(steps[0], "echo one"), (steps[1], "sleep 0.2; echo two")])
    assert code == 0
    results = batch_results(steps, out, "")
    assert [r.status for r in results] == ["changed", "changed"]
    assert results[1].seconds >= 0.19


def test_failure_names_the_step_and_skips_the_rest() -> None:
    steps = [Step("a", "ok"), Step("b", "breaks"), Step("c", "never")]
    out, code = run_batch([(steps[0], "true"), (steps[1], "true\nfalse\necho not reached"), (steps[2], "true")])
    assert code == 1 and "not reached" not in out
    results = batch_results(steps, out, "boom")
    assert [r.status for r in results] == ["changed", "failed", "skipped"]
    assert results[1].error == "boom"


def test_lost_session_blames_the_first_unfinished_step() -> None:
    steps = [Step("a", "ok"), Step("b", "cut off")]
    out, _ = run_batch([(steps[0], "true")])  # b never ran: the session died
    results = batch_results(steps, out, "connection lost")
    assert [r.status for r in results] == ["changed", "failed"]


def test_program_output_that_looks_like_a_marker_is_ignored() -> None:
    steps = [Step("a", "noisy")]
    out, code = run_batch([(steps[0], "echo '@@hostsetup-step done zzz'; echo @@end")])
    assert code == 0 and [r.status for r in batch_results(steps, out, "")] == ["changed"]
