"""Invoke tasks for people working on hostsetup: ``inv --list``.

The user-facing tasks (``demo``, ``sandbox``, ``install``) are here too; tasks
that work on remote hosts need ``-H``, which only the ``hostsetup`` program has.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from hostsetup.tasks import namespace as user_tasks


@task
def lint(c: Context) -> None:
    """ruff and mypy over the package, tests and this file."""
    c.run("python3 -m ruff check hostsetup tests tasks.py benchmarks", pty=False)
    c.run("python3 -m mypy", pty=False)


@task(help={"unit": "unit tests only (no sandbox hosts)", "k": "pytest -k expression"})
def test(c: Context, unit: bool = False, k: str = "") -> None:
    """Lint, then the whole test suite: unit tests and end-to-end tests on sandbox hosts."""
    lint(c)
    target = "tests/unit" if unit else "tests"
    select = f" -k {k!r}" if k else ""
    c.run(f"python3 -m pytest {target}{select}", pty=False)


@task
def bench(c: Context, sizes: str = "") -> None:
    """Fleet benchmark on sandbox hosts (1, 5, 10, 20 or --sizes 1,50): appends to benchmarks/RESULTS.md."""
    c.run(f"python3 -m benchmarks.fleet {' '.join(str(int(n)) for n in sizes.split(',') if n.strip())}", pty=False)


ns = Collection(bench, lint, test)
for name, user_task in user_tasks.tasks.items():
    ns.add_task(user_task, name=name)
