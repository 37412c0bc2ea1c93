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


@pytest.mark.parametrize("args", [("sandbox", "--help"), ("sandbox", "up", "-h"), ("demo", "--help"),
                                  ("-H", "h", "install", "--help")])
def test_task_help_after_the_task_name(args) -> None:
    result = hostsetup(*args)
    task = next(a for a in args if a in ("sandbox", "demo", "install"))
    assert result.returncode == 0, result.stderr
    assert f"Usage: hostsetup [--core-opts] {task} [--options]" in result.stdout


NO_ENGINE = "unix:///nonexistent/hostsetup-test.sock"  # a Docker host where no daemon answers


@pytest.mark.parametrize("args", [("sandbox", "status"), ("sandbox", "down"), ("demo", "--down")])
def test_without_an_engine_status_and_down_say_so_in_one_line(args, tmp_path) -> None:
    import os
    env = {**os.environ, "DOCKER_HOST": NO_ENGINE, "HOSTSETUP_SANDBOX_HOME": str(tmp_path)}
    result = hostsetup(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().count("\n") == 0 and "no Docker engine runs" in result.stdout
    assert "Cannot connect to the Docker daemon" not in result.stdout + result.stderr


def test_demo_without_a_reachable_engine_is_one_clear_line(tmp_path) -> None:
    import os
    env = {**os.environ, "DOCKER_HOST": NO_ENGINE, "HOSTSETUP_SANDBOX_HOME": str(tmp_path)}
    result = hostsetup("demo", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "DOCKER_HOST" in result.stderr
    assert "Cannot connect to the Docker daemon" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_source_tree_run_finds_the_templates(tmp_path) -> None:
    """``python3 -m hostsetup`` in a clone imports the tree, which has no ``hostsetup.templates``
    package: the templates come from ``templates/`` beside it (no site hooks, no editable finder)."""
    import shutil
    import site
    from pathlib import Path

    top = Path(__file__).resolve().parents[2]
    clone = tmp_path / "clone"
    shutil.copytree(top / "hostsetup", clone / "hostsetup", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(top / "templates", clone / "templates", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys; sys.path[:0] = sys.argv[1:]; import hostsetup.render as r; "
            "assert r.__file__.startswith(sys.argv[1]), r.__file__; "
            "print(r.render('docker.sources.j2', mirror_name='official', repo_url='U', codename='c', "
            "arch='amd64', key_file='K'))")
    result = subprocess.run([sys.executable, "-S", "-c", code, str(clone), *site.getsitepackages()],
                            capture_output=True, text=True, timeout=60, cwd=clone)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Managed by hostsetup: Docker CE repository (official).")


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE"])
def test_env_false_keeps_a_boolean_off(value) -> None:
    import os
    env = {**os.environ, "HOSTSETUP_INSTALL_INSECURE_MIRROR": value}
    result = hostsetup("-H", "h", "install", "--mirror", "http://mirror.example", env=env)
    assert result.returncode == 2 and "uses plain http" in result.stderr  # still off: http refused


def test_env_value_that_is_no_boolean_names_the_variable() -> None:
    import os
    env = {**os.environ, "HOSTSETUP_INSTALL_HOLD": "maybe"}
    result = hostsetup("-H", "h", "install", env=env)
    assert result.returncode == 2
    assert "HOSTSETUP_INSTALL_HOLD: 'maybe' is not a boolean" in result.stderr
    assert "Traceback" not in result.stderr


def test_yaml_quoted_no_is_false(tmp_path) -> None:
    (tmp_path / "hostsetup.yaml").write_text("install:\n  insecure_mirror: 'no'\n  mirror: http://mirror.example\n")
    result = subprocess.run([sys.executable, "-m", "hostsetup", "-H", "h", "install"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "uses plain http" in result.stderr


def test_debug_output_never_shows_the_sudo_password() -> None:
    """-d dumps Invoke's configuration (the sudo password given at the prompt among it)."""
    result = subprocess.run([sys.executable, "-m", "hostsetup", "-d", "--prompt-for-sudo-password", "-H",
                             "root@127.0.0.1:1", "-t", "1", "install", "--dry-run"], input="pw with 'quote\" @x\n",
                            capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert "'password': '***'" in out  # the debug dump ran, masked
    assert "pw with" not in out and "quote" not in out


def test_a_dead_end_behind_a_relay_is_one_line_not_a_paramiko_traceback(tmp_path) -> None:
    """A TCP relay (bastion, load balancer) that accepts and closes: paramiko would print a traceback."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_and_close() -> None:
        for _ in range(3):
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                return
    threading.Thread(target=accept_and_close, daemon=True).start()
    result = hostsetup("-H", f"root@127.0.0.1:{port}", "-t", "3", "install", "--dry-run")
    server.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "cannot connect" in result.stdout


def test_help_after_a_flag_value_that_names_a_task() -> None:
    result = hostsetup("-H", "demo", "install", "--help")
    assert result.returncode == 0 and "Usage: hostsetup [--core-opts] install [--options]" in result.stdout


def test_a_prompt_with_no_input_is_bad_input_not_a_bug() -> None:
    """--prompt-for-sudo-password with standard input closed (cron, CI): exit 2 and one hostsetup line."""
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "--prompt-for-sudo-password", "-H", "web1", "install",
                           "--dry-run"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    ours = [line for line in proc.stderr.splitlines() if "hostsetup: " in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(ours) == 1 and ours[0].endswith("give the password in the sudo.password setting")


def test_a_closed_pipe_is_not_an_error() -> None:
    """``hostsetup doctor --explain ALL | head -1``: the reader goes away; no internal error."""
    proc = subprocess.Popen([sys.executable, "-m", "hostsetup", "doctor", "--explain", "ALL"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # before the program writes: its first line meets a closed pipe
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "internal error" not in err, err
