"""Parsing facts output recorded from real sandbox hosts (tests/unit/data/facts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostsetup.facts import FactsError, facts_script, parse_facts
from hostsetup.host.units import parse_units

DATA = Path(__file__).parent / "data" / "facts"


def recorded(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def test_bare_debian12() -> None:
    facts = parse_facts(recorded("debian12-bare"))
    assert facts.os_release["VERSION_CODENAME"] == "bookworm"
    assert (facts.arch, facts.dpkg_arch, facts.user, facts.uid) == ("x86_64", "amd64", "hostsetup", 1000)
    assert facts.sudo == "nopasswd"
    assert "docker-ce" not in facts.packages and "curl" in facts.packages
    assert facts.docker_group is None
    assert facts.user_groups == {"hostsetup": frozenset({"hostsetup"}), "nobody2": None}
    assert facts.unit("docker.service").load == "not-found"
    assert not facts.unit("docker.service").running
    assert facts.available_versions == ()


def test_truncated_output_is_an_error() -> None:
    text = recorded("debian12-bare")
    with pytest.raises(FactsError):
        parse_facts(text[: text.index("@@end")])


def test_units_blocks() -> None:
    units = parse_units([
        "Id=docker.service", "LoadState=loaded", "ActiveState=active", "SubState=running",
        "UnitFileState=enabled", "Id=docker.socket", "LoadState=masked", "ActiveState=inactive",
        "SubState=dead", "UnitFileState=masked",
    ])
    assert units["docker.service"].running and units["docker.service"].enabled
    assert units["docker.socket"].load == "masked" and not units["docker.socket"].enabled


def test_script_is_valid_posix_sh_and_runs_locally() -> None:
    script = facts_script(("root", "no-such-user-x"))
    subprocess.run(["sh", "-n", "-c", script], check=True)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30).stdout
    facts = parse_facts(out)
    assert facts.user_groups["no-such-user-x"] is None
    assert facts.user_groups["root"] is not None and "root" in facts.user_groups["root"]


def test_homes_and_docker_configs_are_read_for_the_users_asked_and_the_login_user(tmp_path, monkeypatch) -> None:
    import getpass
    import os

    me = getpass.getuser()
    home = os.path.expanduser(f"~{me}")
    script = facts_script(("root", "no-such-user-x"), files=(str(tmp_path / "extra.crt"),), docker_configs=True)
    (tmp_path / "extra.crt").write_text("PEM\n")
    subprocess.run(["sh", "-n", "-c", script], check=True)
    facts = parse_facts(subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30).stdout)
    assert facts.homes["root"].home == "/root" and facts.homes["root"].uid == 0
    assert me in facts.homes and facts.homes[me].home == home
    assert "no-such-user-x" not in facts.homes
    assert facts.files[str(tmp_path / "extra.crt")] == "PEM\n"
    config = os.path.join(home, ".docker", "config.json")
    assert (config in facts.files) == os.path.exists(config)
