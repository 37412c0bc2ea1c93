"""Version changes: the plan names each package's change, refuses a downgrade unless allowed and a held
version unless the hold is asked to move, and says what the engine restart does to running containers."""

from __future__ import annotations

import dataclasses

import pytest

from hostsetup.facts import EngineState, facts_script, parse_engine_state
from hostsetup.plan import PlanError, plan_install
from tests.unit.test_plan import recorded, sandbox_settings


def _packages_step(plan):
    return next(s for s in plan.steps if s.name == "packages")


def test_upgrade_names_each_package_version_change() -> None:
    facts = recorded("debian12-pinned-held")
    step = _packages_step(plan_install(facts, sandbox_settings(facts, version="20.10.24", hold=True)))
    assert step.summary == "change docker-ce 20.10.5 -> 20.10.24, docker-ce-cli 20.10.5 -> 20.10.24"


def test_a_held_version_changes_only_when_the_hold_is_asked_to_move() -> None:
    facts = recorded("debian12-pinned-held")
    with pytest.raises(PlanError, match=r"docker-ce, docker-ce-cli held at 20\.10\.5 \(apt-mark\).*add --hold"):
        plan_install(facts, sandbox_settings(facts, version="20.10.24"))


def test_downgrade_is_refused_unless_allowed() -> None:
    facts = recorded("debian12-converged")
    with pytest.raises(PlanError, match=r"docker-ce 20\.10\.24.*20\.10\.5 is older.*--allow-downgrade"):
        plan_install(facts, sandbox_settings(facts, version="20.10.5"))
    step = _packages_step(plan_install(facts, sandbox_settings(facts, version="20.10.5", allow_downgrade=True)))
    assert step.summary == "change docker-ce 20.10.24 -> 20.10.5, docker-ce-cli 20.10.24 -> 20.10.5"


def test_short_pin_of_the_installed_series_is_no_change_and_no_downgrade() -> None:
    facts = recorded("debian12-converged")
    assert plan_install(facts, sandbox_settings(facts, version="20.10")).empty


@pytest.mark.parametrize(("state", "expected"), [
    (EngineState(True, ("web", "db"), True), "2 running container(s) (web, db): live-restore is on, they keep running"),
    (EngineState(True, ("web",), False), "1 running container(s) (web) stop while dockerd restarts: live-restore is "
                                         "off"),
    (EngineState(False), "could not ask the engine which containers run"),
])
def test_upgrade_warns_what_the_restart_does_to_running_containers(state: EngineState, expected: str) -> None:
    facts = dataclasses.replace(recorded("debian12-converged"), engine_state=state)
    step = _packages_step(plan_install(facts, sandbox_settings(facts, version="20.10.5", allow_downgrade=True)))
    assert len(step.warnings) == 1 and step.warnings[0].startswith(expected), step.warnings
    assert step.notice == step.warnings[0]   # also shown live as the step starts, before the restart
    if not state.live_restore and state.running:
        assert "--batch 1" in step.warnings[0]


def test_no_running_containers_no_warning() -> None:
    facts = dataclasses.replace(recorded("debian12-converged"), engine_state=EngineState(True))
    step = _packages_step(plan_install(facts, sandbox_settings(facts, version="20.10.5", allow_downgrade=True)))
    assert step.warnings == ()


def test_engine_state_section_parsing() -> None:
    assert parse_engine_state(None) is None
    assert parse_engine_state(["stopped"]) == EngineState(True)
    assert parse_engine_state(["?"]) == EngineState(False)
    assert parse_engine_state([]) == EngineState(False)
    assert parse_engine_state(["live-restore true", "running web", "running db"]) == EngineState(True, ("web", "db"),
                                                                                                  True)
    assert parse_engine_state(["live-restore false"]) == EngineState(True, (), False)


def test_engine_state_is_read_only_when_asked() -> None:
    assert "@@%s" in facts_script() and "engine-state" not in facts_script()
    assert "sec engine-state" in facts_script(engine_state=True)


def test_without_a_version_only_missing_packages_are_named_so_a_held_engine_stays() -> None:
    """A held docker-ce with a plugin missing: installing the plugin must not move the engine."""
    facts = recorded("debian12-pinned-held")
    packages = {k: v for k, v in facts.packages.items() if k != "docker-compose-plugin"}
    plan = plan_install(dataclasses.replace(facts, packages=packages), sandbox_settings(facts))
    step = _packages_step(plan)
    assert step.summary == "install docker-compose-plugin" and step.warnings == ()
    command = "\n".join(step.operations[0].describe())
    assert command.endswith("-o Dpkg::Options::=--force-confold docker-compose-plugin")
    assert "--allow-change-held-packages" not in command and "docker-ce" not in command.split("confold")[1]


def test_the_newest_of_a_release_is_chosen_by_revision_and_epoch_not_by_list_order() -> None:
    from hostsetup.plan import resolve_version

    rpm = ("3:24.0.7-1.el9", "3:24.0.7-2.el9")
    assert resolve_version("24.0.7", rpm) == resolve_version("24.0.7", rpm[::-1]) == "3:24.0.7-2.el9"
    deb = ("5:24.0.7-1~debian.12~bookworm", "5:24.0.7-1+b1~debian.12~bookworm", "5:24.0.7~rc1-1~debian.12~bookworm")
    assert resolve_version("24.0", deb) == "5:24.0.7-1+b1~debian.12~bookworm"
