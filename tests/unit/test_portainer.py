"""Portainer planning: created, kept, recreated only on a change, removed; the script; bad input."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from hostsetup.facts import HostFacts, parse_facts
from hostsetup.operations import Run, WriteUserFile
from hostsetup.plan import PlanError
from hostsetup.portainer import LABEL, PASSWORD_FILE, PortainerSettings, deploy_script, plan_portainer
from hostsetup.run.fleet import describe_plan
from tests.unit.contract import run_cli

DATA = Path(__file__).parent / "data" / "facts"


def facts(containers: dict | None = None, volumes: frozenset[str] = frozenset(), password: str | None = None
          ) -> HostFacts:
    base = parse_facts((DATA / "debian12-converged.txt").read_text())
    return dataclasses.replace(base, containers=containers if containers is not None else {}, volumes=volumes,
                               files={**base.files, **({PASSWORD_FILE: password} if password else {})})


def running(settings: PortainerSettings, image: str | None = None, label: str | None = None,
            up: bool = True) -> dict:
    return {settings.name: {"Config": {"Image": image or settings.reference,
                                       "Labels": {LABEL: label or settings.config_hash()}},
                            "State": {"Running": up}}}


def test_created_then_kept_then_recreated_on_a_change() -> None:
    chosen = PortainerSettings()
    (step,) = plan_portainer(facts(), chosen).steps
    assert step.changes and "run portainer/portainer-ce:2.21.4 as portainer (new volume portainer_data)" in step.summary
    assert any("every address" in w for w in step.warnings)
    assert not plan_portainer(facts(running(chosen), frozenset({"portainer_data"})), chosen).steps[0].changes
    newer = dataclasses.replace(chosen, version="2.21.5")
    (step,) = plan_portainer(facts(running(chosen), frozenset({"portainer_data"})), newer).steps
    assert "2.21.4 -> portainer/portainer-ce:2.21.5 (volume portainer_data kept)" in step.summary
    edge = dataclasses.replace(chosen, edge=True)
    assert "options changed" in plan_portainer(facts(running(chosen)), edge).steps[0].summary
    assert "not running" in plan_portainer(facts(running(chosen, up=False)), chosen).steps[0].summary
    text = "\n".join(describe_plan(plan_portainer(facts(), edge)))
    assert "-p 0.0.0.0:9443:9443 -p 0.0.0.0:8000:8000" in text and "--restart=always" in text


def test_the_options_hash_follows_every_choice() -> None:
    base = PortainerSettings()
    variants = [dataclasses.replace(base, **change) for change in
                ({"version": "2.21.5"}, {"bind": "10.0.0.5"}, {"http": True}, {"edge": True},
                 {"admin_password": "x" * 12}, {"image": "registry.example.com/portainer/portainer-ce"})]
    assert len({base.config_hash(), *(v.config_hash() for v in variants)}) == len(variants) + 1
    assert dataclasses.replace(base, admin_password="y" * 12).config_hash() == variants[4].config_hash()


def test_admin_password_is_written_as_root_and_never_shown() -> None:
    chosen = PortainerSettings(admin_password="a-long-secret-pw")
    (step,) = plan_portainer(facts(), chosen).steps
    write = step.operations[0]
    assert isinstance(write, WriteUserFile) and write.path == PASSWORD_FILE and write.user == "root"
    assert "a-long-secret-pw" not in "\n".join(describe_plan(plan_portainer(facts(), chosen)))
    assert "--admin-password-file /run/secrets/portainer-admin-password" in chosen.run_command()
    done = facts(running(chosen), frozenset({"portainer_data"}), password="a-long-secret-pw")
    assert not plan_portainer(done, chosen).steps[0].changes


def test_remove_keeps_the_volume_unless_purged() -> None:
    chosen = PortainerSettings(remove=True)
    (step,) = plan_portainer(facts(running(PortainerSettings()), frozenset({"portainer_data"})), chosen).steps
    assert [op.command for op in step.operations if isinstance(op, Run)] == ["docker rm -f portainer"]
    assert "kept" in step.summary
    purge = dataclasses.replace(chosen, purge_data=True)
    (step,) = plan_portainer(facts({}, frozenset({"portainer_data"})), purge).steps
    assert [op.command for op in step.operations if isinstance(op, Run)] == ["docker volume rm portainer_data"]
    assert not plan_portainer(facts(), purge).steps[0].changes


def test_agent_and_unknown_engine_state() -> None:
    agent = PortainerSettings(agent=True)
    assert agent.name == "portainer_agent" and agent.ports() == (9001,) and agent.reference == "portainer/agent:2.21.4"
    assert "/var/lib/docker/volumes:/var/lib/docker/volumes" in agent.run_command()
    asks = dataclasses.replace(facts(), containers=None, uid=1000, sudo="password")
    with pytest.raises(PlanError, match="--prompt-for-sudo-password"):
        plan_portainer(asks, agent)
    with pytest.raises(PlanError, match=r"does not answer \(docker.service is"):
        plan_portainer(dataclasses.replace(asks, sudo="nopasswd"), agent)
    with pytest.raises(PlanError, match="curl is missing"):
        plan_portainer(dataclasses.replace(facts(), commands=frozenset({"apt-get"})), agent)
    with pytest.raises(PlanError, match="not installed"):
        plan_portainer(dataclasses.replace(facts(), dockerd_version=""), agent)


def test_deploy_script_is_valid_sh_and_puts_the_previous_container_back() -> None:
    script = deploy_script(PortainerSettings(bind="10.0.0.5", http=True))
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert "docker rename portainer portainer.hostsetup-previous" in script
    assert 'docker rename "$old" portainer && docker start portainer' in script
    assert "https://10.0.0.5:9443/" in script
    assert PortainerSettings(bind="::1").answer_url == "https://[::1]:9443/"
    assert "-p '[::1]:9443:9443'" in PortainerSettings(bind="::1").run_command()
    assert "cannot set portainer aside; nothing changed" in script and "could not start: " in script
    assert "docker rename portainer.hostsetup-previous portainer" in script  # a run cut short: put back first


def test_a_leftover_previous_container_is_handled_and_removed() -> None:
    chosen = PortainerSettings()
    leftover = {**running(chosen), "portainer.hostsetup-previous": {"Config": {}, "State": {}}}
    assert plan_portainer(facts(leftover, frozenset({"portainer_data"})), chosen).steps[0].changes
    (step,) = plan_portainer(facts(leftover), PortainerSettings(remove=True)).steps
    assert [op.command for op in step.operations if isinstance(op, Run)] == [
        "docker rm -f portainer portainer.hostsetup-previous"]


def test_only_a_new_password_file_recreates_nothing_and_purge_removes_it() -> None:
    chosen = PortainerSettings(admin_password="a-new-long-password")
    (step,) = plan_portainer(facts(running(chosen), frozenset({"portainer_data"}), password="old-password-xx"),
                             chosen).steps
    assert [type(op).__name__ for op in step.operations] == ["WriteUserFile"] and "first start" in step.summary
    purge = PortainerSettings(remove=True, purge_data=True)
    (step,) = plan_portainer(facts({}, frozenset(), password="old-password-xx"), purge).steps
    assert [op.command for op in step.operations if isinstance(op, Run)] == [f"rm -f {PASSWORD_FILE}"]


@pytest.mark.parametrize(("argv", "words"), [
    (["portainer", "--version", "2;id"], "is not a Portainer version"),
    (["portainer", "--bind", "a b"], "--bind"),
    (["portainer", "--bind", "localhost"], "is not an IP address"),
    (["portainer", "--bind", "fe80::1%eth0"], "is not an IP address"),
    (["portainer", "--version", "2.21.4\n"], "is not a Portainer version"),
    (["portainer", "--remove", "--edge"], "--remove takes no deployment options"),
    (["portainer", "--agent", "--remove", "--purge-data"], "not the agent's"),
    (["portainer", "--purge-data"], "--purge-data only goes with --remove"),
    (["portainer", "--agent", "--edge"], "not the agent's"),
    (["portainer", "--image", "portainer/portainer-ce:2.21"], "without a tag"),
    (["portainer", "--image", "Bad Name"], "--image"),
    (["portainer", "--admin-password-file", "short.txt"], "at least 12 characters"),
    (["portainer", "--admin-password-file", "/nonexistent"], "does not exist"),
    (["portainer", "--prompt-for-admin-password"], "needs a terminal"),
])
def test_bad_portainer_input_is_refused_before_any_host(tmp_path: Path, argv: list[str], words: str) -> None:
    (tmp_path / "short.txt").write_text("short\n")
    outcome = run_cli(["-H", "a", *argv], tmp_path)
    outcome.check()
    assert outcome.code == 2 and words in outcome.stderr, outcome
    assert not outcome.reached
