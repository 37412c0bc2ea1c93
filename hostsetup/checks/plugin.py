"""pytest plugin for the shipped checks: the desired state, read from ``--hostsetup-expect``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
from fabric import Config
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from hostsetup.connection import connect
from hostsetup.distros import Platform, parse_os_release, resolve_platform
from hostsetup.targets import LOCAL

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
                    help="the host: user@host[:port] or an ssh_config alias")
    group.addoption("--hostsetup-ssh-config", dest="hostsetup_ssh_config", default=None)
    group.addoption("--hostsetup-identity", dest="hostsetup_identity", action="append", default=[])
    group.addoption("--hostsetup-known-hosts", dest="hostsetup_known_hosts", action="append", default=[])
    group.addoption("--hostsetup-connect-timeout", dest="hostsetup_connect_timeout", type=int, default=10)
    group.addoption("--hostsetup-sudo", dest="hostsetup_sudo", action="store_true", default=False)


@pytest.fixture(scope="session")
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A testinfra host over hostsetup's own SSH connection: same ssh_config, keys and
    host-key checking as ``install`` (testinfra's own backends do not check host keys)."""
    opt = request.config.getoption
    target = opt("hostsetup_target")
    if not target:
        pytest.skip("no --hostsetup-target given")
    if target in PREPARED:
        yield PREPARED[target]
        return
    if target == LOCAL:   # verify --local: this machine, through sudo unless root
        here = testinfra.get_host("local://", sudo=opt("hostsetup_sudo"))
        here.login_user = getpass.getuser()
        yield here
        return
    config = Config(runtime_ssh_path=opt("hostsetup_ssh_config"), overrides={
        "known_hosts": opt("hostsetup_known_hosts"),
        "connect_kwargs": {"key_filename": opt("hostsetup_identity")} if opt("hostsetup_identity") else {},
        "timeouts": {"connect": opt("hostsetup_connect_timeout")},
    })
    conn = connect(target, config)
    conn.open()
    backend = ParamikoBackend(f"paramiko://{conn.user}@{conn.host}:{conn.port}", sudo=opt("hostsetup_sudo"))
    backend.__dict__["client"] = conn.client  # the cached_property, already connected and checked
    found = Host(backend)
    found.login_user = conn.user  # who hostsetup logs in as (with sudo, `host.user()` is root)
    try:
        yield found
    finally:
        conn.close()


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
