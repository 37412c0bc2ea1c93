"""Uninstall planning on facts recorded from real sandbox hosts: what goes, what stays, and that an
uninstalled host plans nothing."""

from __future__ import annotations

import dataclasses

import pytest

from hostsetup.bundle import BUNDLE_ROOT
from hostsetup.facts import EngineState, PathSize, facts_script, parse_sizes
from hostsetup.operations import Run
from hostsetup.run.fleet import describe_plan
from hostsetup.uninstall import UninstallSettings, human_size, plan_uninstall, wanted
from tests.unit.test_plan import recorded, synthetic


def _steps(plan) -> dict[str, str]:
    return {s.name: s.summary for s in plan.changes}


def test_installed_host_loses_units_packages_repository_and_key_but_keeps_data() -> None:
    plan = plan_uninstall(recorded("debian12-converged"), UninstallSettings())
    assert _steps(plan) == {
        "service": "stop any running containers, then stop and disable docker.service, docker.socket, "
                   "containerd.service",
        "packages": "remove docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin, docker-compose-plugin",
        "repository": "remove /etc/apt/sources.list.d/docker.sources and /etc/apt/keyrings/docker.asc",
    }
    text = "\n".join(describe_plan(plan))
    assert "apt-get remove -y -q -o DPkg::Lock::Timeout=120 docker-ce docker-ce-cli containerd.io" in text
    assert "kept: /var/lib/docker, /var/lib/containerd, /etc/docker" in text


def test_held_packages_are_released_as_they_go() -> None:
    plan = plan_uninstall(recorded("debian12-pinned-held"), UninstallSettings())
    assert _steps(plan)["packages"].endswith("; release the hold on docker-ce, docker-ce-cli")
    assert "apt-mark unhold docker-ce docker-ce-cli >/dev/null && DEBIAN_FRONTEND" in "\n".join(describe_plan(plan))


def test_rpm_family_removes_with_dnf() -> None:
    text = "\n".join(describe_plan(plan_uninstall(synthetic("rocky9", "debian12-converged"), UninstallSettings())))
    assert "$ dnf remove -y --setopt=exit_on_lock=True docker-ce docker-ce-cli containerd.io" in text


def test_bare_host_plans_nothing() -> None:
    assert plan_uninstall(recorded("debian12-bare"), UninstallSettings(purge_data=True)).empty


def test_repository_file_not_written_by_hostsetup_is_kept() -> None:
    facts = recorded("debian12-converged")
    files = {**facts.files, "/etc/apt/sources.list.d/docker.sources": "Types: deb\nURIs: https://x\n"}
    plan = plan_uninstall(dataclasses.replace(facts, files=files), UninstallSettings())
    assert "repository" not in _steps(plan)
    assert "was not written by hostsetup: kept" in "\n".join(describe_plan(plan))


def test_hostsetup_dropins_go_and_systemd_reloads() -> None:
    facts = recorded("debian12-converged")
    dropin = "/etc/systemd/system/docker.service.d/hostsetup-execstart.conf"
    plan = plan_uninstall(dataclasses.replace(facts, files={**facts.files, dropin: "# Managed by hostsetup: x\n"}),
                          UninstallSettings())
    assert _steps(plan)["drop-ins"] == f"remove {dropin}"
    assert "$ systemctl daemon-reload" in "\n".join(describe_plan(plan))


def test_purge_lists_what_it_deletes_with_sizes_and_skips_empty_directories() -> None:
    facts = dataclasses.replace(recorded("debian12-bare"), sizes={
        "/var/lib/docker": PathSize(123456789, False), "/var/lib/containerd": PathSize(None, False),
        "/etc/docker": PathSize(4096, True)})
    plan = plan_uninstall(facts, UninstallSettings(purge_data=True))
    assert _steps(plan) == {"data": "delete /var/lib/docker (117.7 MiB), /var/lib/containerd (size unknown)"}
    assert plan.changes[0].warnings[0].startswith("deleting /var/lib/docker (117.7 MiB)")
    text = "\n".join(describe_plan(plan))
    assert "find /var/lib/docker -xdev -mindepth 1 -delete" in text and "/etc/docker" not in text.split("data")[1]


def test_data_sizes_are_read_only_when_purging() -> None:
    assert wanted(UninstallSettings()).sizes == (BUNDLE_ROOT,)   # offline bundles go with the repository
    assert "sec sizes" in facts_script(sizes=wanted(UninstallSettings(purge_data=True)).sizes)
    assert "sec sizes" not in facts_script()
    assert parse_sizes(["/var/lib/docker\t4096\tempty", "/etc/docker\t\tfull", "junk"]) == {
        "/var/lib/docker": PathSize(4096, True), "/etc/docker": PathSize(None, False)}


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (2048, "2.0 KiB"),
                                             (5 * 1024 ** 3, "5.0 GiB"), (None, "size unknown")])
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(("state", "start"), [
    (EngineState(True, ("web", "db"), True), "stop 2 running container(s) (web, db), then stop and disable"),
    (EngineState(True), "stop and disable"),
])
def test_running_containers_are_stopped_before_the_engine(state: EngineState, start: str) -> None:
    """With live-restore, containers outlive a stopped dockerd (and its removed packages): they stop first."""
    plan = plan_uninstall(dataclasses.replace(recorded("debian12-converged"), engine_state=state),
                          UninstallSettings())
    assert _steps(plan)["service"].startswith(start)
    stop = plan.changes[0].operations[0]
    assert isinstance(stop, Run)
    command = stop.command
    assert command.index("docker stop") < command.index("systemctl disable --now")


def test_offline_bundles_go_whatever_names_them() -> None:
    facts = dataclasses.replace(recorded("debian12-bare"), sizes={BUNDLE_ROOT: PathSize(240 * 1024 ** 2, False)})
    plan = plan_uninstall(facts, UninstallSettings())
    assert _steps(plan) == {"bundles": f"remove the offline bundles in {BUNDLE_ROOT} (240.0 MiB)"}
    assert f"$ rm -rf {BUNDLE_ROOT}" in "\n".join(describe_plan(plan))


def test_purge_data_also_purges_the_packages_configuration() -> None:
    text = "\n".join(describe_plan(plan_uninstall(recorded("debian12-converged"), UninstallSettings(purge_data=True))))
    assert "apt-get purge -y -q -o DPkg::Lock::Timeout=120 docker-ce" in text
