"""Shared fixtures: the end-to-end sandbox (real SSH hosts on a local Docker engine).

Outside CI, e2e tests skip with a reason when no Docker engine can be had; with
CI=true a sandbox that cannot start fails the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from hostsetup.errors import HostsetupError
from hostsetup.sandbox.hosts import Sandbox, SandboxHost

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    contract = sys.modules.get("tests.unit.contract")
    if contract is not None:
        terminalreporter.write_line(f"input contract: {contract.RUNS['count']} generated inputs tried")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own for this test session, removed at the end."""
    box = Sandbox(f"e2e-{os.getpid()}", progress=lambda msg: print(f"[sandbox] {msg}"))
    try:
        box.prepare()
        box.start_mirror()
    except HostsetupError as exc:
        box.down()
        if IN_CI:
            pytest.fail(f"CI=true and the sandbox cannot start: {exc}", pytrace=False)
        pytest.skip(f"e2e tests need a Docker engine ({exc}); run as root on Debian/Ubuntu "
                    "or start Docker to enable them")
    try:
        yield box
    finally:
        box.down()


@pytest.fixture
def fresh_hosts(sandbox: Sandbox) -> Iterator[Callable[..., list[SandboxHost]]]:
    """Factory for brand-new hosts, removed when the test ends (for destructive tests)."""
    started: list[SandboxHost] = []

    def start(*flavors: str) -> list[SandboxHost]:
        hosts = sandbox.start_hosts(list(flavors or ("debian12",)))
        started.extend(hosts)
        return hosts

    yield start
    sandbox.remove_hosts(started)
