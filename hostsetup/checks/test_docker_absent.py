"""The shipped checks after ``uninstall``: nothing of Docker Engine is left that hostsetup put there."""

from __future__ import annotations

from typing import Any

import pytest

from hostsetup.bundle import BUNDLE_ROOT
from hostsetup.distros import Platform
from hostsetup.host.command import command
from hostsetup.host.units import DOCKER_UNITS
from hostsetup.uninstall import DATA_DIRS, DOCKER_SOCKET, DROPINS, MANAGED_MARK, REMOVED_PACKAGES

ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "linked", "linked-runtime")


def test_engine_packages_removed(host: Any) -> None:
    left = [name for name in REMOVED_PACKAGES if host.package(name).is_installed]
    assert not left, f"expected no Docker Engine packages; still installed: {', '.join(left)}"


def test_units_stopped_and_not_enabled(host: Any) -> None:
    # (testinfra's service module raises for a unit that is gone; systemctl answers for any name)
    left = [unit for unit in DOCKER_UNITS if host.run(command("systemctl is-active -q @UNIT@", UNIT=unit).text).rc == 0
            or host.run(command("systemctl is-enabled @UNIT@", UNIT=unit).text).stdout.strip() in ENABLED_STATES]
    assert not left, f"expected docker and containerd stopped and not enabled; found: {', '.join(left)}"


def test_no_dockerd_no_containers_and_no_socket(host: Any) -> None:
    assert not host.process.filter(comm="dockerd"), "expected no dockerd process; one is running"
    shims = host.run("pgrep -c -f '^/usr/bin/containerd-shim'").stdout.strip()
    assert shims in ("", "0"), f"expected no container left running; found {shims} containerd-shim process(es)"
    assert not host.file(DOCKER_SOCKET).exists, f"expected no {DOCKER_SOCKET}; it is there"


def test_repository_key_and_bundles_removed(host: Any, platform: Platform) -> None:
    repo = host.file(platform.family.repo_file)
    assert not (repo.exists and MANAGED_MARK in repo.content_string), \
        f"expected hostsetup's {platform.family.repo_file} removed; it is still there"
    if not repo.exists:   # (another tool's repository file keeps its key)
        assert not host.file(platform.family.key_file).exists, \
            f"expected the repository key {platform.family.key_file} removed with its file; it is still there"
    bundles = host.file(BUNDLE_ROOT)
    assert not (bundles.exists and host.run(command("ls -A @DIR@", DIR=BUNDLE_ROOT).text).stdout.strip()), \
        f"expected the offline bundles in {BUNDLE_ROOT} removed; they are still there"


def test_dropins_removed(host: Any) -> None:
    left = [p for p in DROPINS if host.file(p).exists and "hostsetup" in host.file(p).content_string]
    assert not left, f"expected hostsetup's drop-ins removed; still there: {', '.join(left)}"


def test_data_purged(host: Any, expected: dict[str, Any]) -> None:
    if not expected.get("purge_data"):
        pytest.skip("data kept (no --purge-data)")
    left = [p for p in DATA_DIRS if host.file(p).exists and host.run(command("ls -A @DIR@", DIR=p).text).stdout.strip()]
    assert not left, f"expected {', '.join(DATA_DIRS)} deleted (--purge-data); still holding data: {', '.join(left)}"
