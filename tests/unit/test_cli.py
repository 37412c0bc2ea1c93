"""The hostsetup program: Fabric-style options, task list, clear errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest


def hostsetup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostsetup", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_help_has_fabric_options() -> None:
    out = hostsetup("--help").stdout
    for option in ("-H STRING, --hosts", "-i, --identity", "-S STRING, --ssh-config",
                   "--prompt-for-sudo-password", "--list"):
        assert option in out


def test_list_shows_only_real_tasks() -> None:
    out = hostsetup("--list").stdout
    names = [line.split()[0] for line in out.splitlines()[2:] if line.startswith("  ") and line.split()]
    assert {"demo", "install", "sandbox"} <= set(names)


@pytest.mark.parametrize(("args", "message"), [
    (("install",), "no hosts given"),
    (("-H", "h", "install", "--mirror", "nope"), "neither a preset"),
    (("-H", "h", "install", "--version", "latest"), "neither a short version"),
    (("sandbox", "sideways"), "unknown sandbox action"),
])
def test_bad_input_is_a_clear_error(args, message) -> None:
    result = hostsetup(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_host_is_reported_not_raised() -> None:
    result = hostsetup("-H", "root@127.0.0.1:1", "-t", "2", "install")
    assert result.returncode == 1
    assert "cannot connect" in result.stdout and "1 failed" in result.stdout
    assert "Traceback" not in result.stderr


def test_env_layer_reaches_install_settings(tmp_path) -> None:
    import os
    env = {**os.environ, "HOSTSETUP_INSTALL_MIRROR": "not-a-mirror"}
    result = hostsetup("-H", "h", "install", env=env)
    assert "mirror 'not-a-mirror'" in result.stderr


def test_project_config_file_is_read_from_the_working_directory(tmp_path) -> None:
    (tmp_path / "hostsetup.yaml").write_text("install:\n  mirror: from-project-file\n")
    result = subprocess.run([sys.executable, "-m", "hostsetup", "-H", "h", "install"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert "mirror 'from-project-file'" in result.stderr


def test_flag_overrides_project_file(tmp_path) -> None:
    (tmp_path / "hostsetup.yaml").write_text("install:\n  mirror: from-project-file\n")
    result = subprocess.run([sys.executable, "-m", "hostsetup", "-H", "h", "install", "--mirror", "flagged"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "mirror 'flagged'" in result.stderr
