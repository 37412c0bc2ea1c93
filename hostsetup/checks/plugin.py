"""pytest plugin for the shipped checks: the desired state, read from ``--hostsetup-expect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testinfra.host import Host

from hostsetup.distros import Platform, parse_os_release, resolve_platform

# Hosts already connected by the fleet runner (``hostsetup.checks.fleet``), by target: the ``host`` fixture
# uses them as they are (and leaves closing them to the runner).
PREPARED: dict[str, Host] = {}


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("pytest11.testinfra"):
        raise pytest.UsageError("run the hostsetup checks with -p no:pytest11.testinfra: its `host` fixture "
                                "would shadow hostsetup's and run the checks on this machine")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hostsetup")
    group.addoption("--hostsetup-expect", dest="hostsetup_expect", default=None,
                    help="JSON file with the desired state hostsetup set up")
    group.addoption("--hostsetup-target", dest="hostsetup_target", default=None,
                    help="the host, as the fleet runner connected it (PREPARED)")


@pytest.fixture(scope="session")
def host(request: pytest.FixtureRequest) -> Host:
    """The testinfra host the fleet runner (``hostsetup.checks.fleet``) connected over hostsetup's own SSH
    connection: same ssh_config, keys and host-key checking as ``install`` (testinfra's own backends do not
    check host keys), or this machine for ``--local``."""
    target = request.config.getoption("hostsetup_target")
    if not target:
        pytest.skip("no --hostsetup-target given")
    if target not in PREPARED:
        pytest.fail(f"{target} is not connected: these checks run through `hostsetup verify`", pytrace=False)
    return PREPARED[target]


@pytest.fixture(scope="session")
def expected(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The desired state: ``install`` settings, ``daemon`` keys we own (``replace``), ``smoke``."""
    path = request.config.getoption("hostsetup_expect")
    if not path:
        pytest.skip("no --hostsetup-expect given")
    return dict(json.loads(Path(path).read_text()))


@pytest.fixture(scope="module")
def platform(host: Any) -> Platform:
    """The host's system, resolved against hostsetup's OS table."""
    return resolve_platform(parse_os_release(host.file("/etc/os-release").content_string))
