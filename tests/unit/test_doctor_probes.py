"""The doctor's probe script and its parser, on output recorded from real broken sandbox hosts.

tests/unit/data/doctor holds raw probe output recorded by ``python3 -m tests.tools.record_doctor``
on debian12 (engine 20.10) and debian13 (engine 26.1) hosts.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hostsetup.doctor.probes import Client, Probes, parse_probes, probe_command, probe_script
from hostsetup.facts import FactsError

DATA = Path(__file__).parent / "data" / "doctor"
ENGINES = ["engine20.10", "engine26.1"]


def recorded(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def test_every_recording_parses() -> None:
    files = sorted(DATA.glob("*.txt"))
    assert len(files) >= 40
    for path in files:
        probes = parse_probes(path.read_text())
        assert probes.user and probes.target, path.name
        if path.name.startswith("engine"):
            version = path.name.removeprefix("engine").split("-")[0]
            gone = path.name.endswith("-binary-missing.txt")  # dockerd itself is the missing program
            assert probes.engine.startswith(f"Docker version {version}") != gone, path.name


@pytest.mark.parametrize("engine", ENGINES)
def test_healthy_host(engine: str) -> None:
    p = parse_probes(recorded(f"{engine}-healthy"))
    assert (p.user, p.uid, p.target, p.privilege, p.home) == ("hostsetup", 1000, "hostsetup", "sudo", "/home/hostsetup")
    assert p.os.startswith("Debian GNU/Linux")
    svc, sock, ctd = p.unit("docker.service"), p.unit("docker.socket"), p.unit("containerd.service")
    assert svc.running and sock.running and ctd.running
    assert svc.argv == ("/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
    assert sock.listen == "/run/docker.sock (Stream)" and sock.socket_group == "docker"
    assert p.daemon_json is None and p.daemon_json_state == "absent" and p.validation is None
    assert p.socket["/run/docker.sock"] == ("socket", "root", "docker", "660")
    assert p.docker_group == ("hostsetup",)
    assert p.session_groups == p.database_groups == frozenset({"hostsetup", "docker"})
    assert p.env == {} and p.env_files == () and p.current_context == ""
    assert p.disks[0].path == "/var/lib/docker" and p.disks[0].writable is True and p.disk("/run") is not None
    assert p.pid == svc.main_pid and p.pid_comm == "dockerd"
    assert p.client.answers and p.client.version == p.engine.split()[2].rstrip(",")
    assert "containerd" in p.client.components
    assert p.client_fresh is None
    assert p.journal_errors and all(line.time > 0 for line in p.journal_errors)


def test_validate_exists_only_from_23() -> None:
    old = parse_probes(recorded("engine20.10-invalid-json"))
    new = parse_probes(recorded("engine26.1-invalid-json"))
    assert old.validation is not None and not old.validation.supported
    assert new.validation is not None and new.validation.supported and not new.validation.ok
    assert new.validation.args == "-H fd:// --containerd=/run/containerd/containerd.sock"
    assert new.validation.output[0] == ("unable to configure the Docker daemon with file /etc/docker/daemon.json: "
                                        "invalid character '}' looking for beginning of object key string")
    assert old.daemon_json == new.daemon_json == '{"log-level": "info",}\n'
    assert old.daemon_json_mtime > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_unit_failure_states(engine: str) -> None:
    p = parse_probes(recorded(f"{engine}-start-limit"))
    svc, sock = p.unit("docker.service"), p.unit("docker.socket")
    assert (svc.active, svc.result, svc.exit_status) == ("failed", "exit-code", 1) and svc.restarts >= 2
    assert (sock.active, sock.result) == ("failed", "service-start-limit-hit")
    masked = parse_probes(recorded(f"{engine}-socket-masked")).unit("docker.socket")
    assert masked.masked and masked.load == "masked"


@pytest.mark.parametrize("engine", ENGINES)
def test_user_side_probes(engine: str) -> None:
    stale = parse_probes(recorded(f"{engine}-session-stale"))
    assert "docker" not in stale.session_groups and stale.database_groups and "docker" in stale.database_groups
    assert stale.client_fresh is not None and stale.client_fresh.answers
    elsewhere = parse_probes(recorded(f"{engine}-docker-host"))
    assert elsewhere.env == {"DOCKER_HOST": "tcp://127.0.0.1:2375"}
    assert elsewhere.env_files == ("/etc/environment:1:DOCKER_HOST=tcp://127.0.0.1:2375",)
    plain = parse_probes(recorded(f"{engine}-no-sudo"))
    assert (plain.user, plain.privilege, plain.has_root) == ("plain", "password", False)
    assert plain.journal == () and plain.disks[0].writable is None


@pytest.mark.parametrize("engine", ENGINES)
def test_storage_and_pidfile(engine: str) -> None:
    full = parse_probes(recorded(f"{engine}-data-root-full"))
    assert full.disks[0].path == "/srv/small/docker" and full.disks[0].avail_kb == 0
    readonly = parse_probes(recorded(f"{engine}-data-root-readonly"))
    assert readonly.disks[0].existing == "/srv/ro" and readonly.disks[0].writable is False
    stale = parse_probes(recorded(f"{engine}-stale-pidfile"))
    assert stale.pid is not None and stale.pid_comm == "sshd"


def test_client_that_timed_out() -> None:
    p = parse_probes(recorded("engine26.1-containerd-masked"))
    assert p.client == Client(124) and not p.client.answers


def test_no_engine() -> None:
    p = parse_probes(recorded("debian12-not-installed"))
    assert p.engine == "" and not p.unit("docker.service").installed and p.client.rc == 127


def test_truncated_output_is_an_error() -> None:
    text = recorded("engine26.1-healthy")
    with pytest.raises(FactsError):
        parse_probes(text[: text.index("@@end")])


def test_script_is_posix_sh_and_quotes_the_user() -> None:
    subprocess.run(["sh", "-n", "-c", probe_script("o'brien; rm -rf /")], check=True)
    assert "T='o'\"'\"'brien; rm -rf /'" in probe_script("o'brien; rm -rf /")
    assert probe_command().startswith("sh -c '")


def test_script_runs_here_and_parses() -> None:
    out = subprocess.run(["sh", "-c", probe_script()], capture_output=True, text=True, timeout=60).stdout
    p = parse_probes(out)
    assert p.uid >= 0 and p.user and p.target == p.user
    assert set(p.units) == {"docker.service", "docker.socket", "containerd.service"}


# The target user's files, read through the real script against a fake home (getent is stubbed to name it;
# docker too, so the machine's engine is not asked).
LEAK = "leaked-by-root"
META = '{"Name": "%s", "Metadata": {}, "Endpoints": {"docker": {"Host": "%s"}}}'


def fake_home(base: Path, user: str, name: str = "home") -> tuple[Path, dict[str, str]]:
    """``base/name`` with a docker context; ``getent passwd user`` names it."""
    home = base / name
    (home / ".docker/contexts/meta/a b").mkdir(parents=True)
    (home / ".docker/contexts/meta/a b/meta.json").write_text(META % ("remote", "tcp://10.0.0.9:2376"))
    (home / ".docker/config.json").write_text('{\n  "currentContext": "remote"\n}\n')
    (home / ".profile").write_text("export DOCKER_HOST=tcp://10.0.0.9:2376\n")
    stubs = base / "bin"
    stubs.mkdir()
    (stubs / "getent").write_text(f'#!/bin/sh\n[ "$1 $2" = "passwd {user}" ] && '
                                  f'echo "{user}:x:65534:65534::{home}:/bin/sh" && exit 0\nexec /usr/bin/getent "$@"\n')
    (stubs / "docker").write_text("#!/bin/sh\nexit 1\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    return home, {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}


def probe_here(env: dict[str, str], user: str = "") -> Probes:
    out = subprocess.run(["sh", "-c", probe_script(user)], capture_output=True, text=True, timeout=60, env=env)
    return parse_probes(out.stdout)


def plant(home: Path, secret: Path) -> None:
    """What the user can do to their own home: symlinks to a file of someone else's."""
    secret.write_text(META % ("evil", f"tcp://{LEAK}:1") + f"\nDOCKER_HOST=tcp://{LEAK}:2\n")
    (home / ".docker/contexts/meta/evil").mkdir()
    (home / ".docker/contexts/meta/evil/meta.json").symlink_to(secret)


def test_paths_with_spaces_are_not_split(tmp_path: Path) -> None:
    home, env = fake_home(tmp_path, getpass.getuser(), "home dir")
    p = probe_here(env)
    assert p.home == str(home)
    assert (p.current_context, p.contexts) == ("remote", {"remote": "tcp://10.0.0.9:2376"})
    assert p.env_files == (f"{home}/.profile:1:export DOCKER_HOST=tcp://10.0.0.9:2376",)


def test_symlinked_context_metadata_is_not_followed(tmp_path: Path) -> None:
    home, env = fake_home(tmp_path, getpass.getuser())
    plant(home, tmp_path / "someone-elses.json")
    p = probe_here(env)
    assert (p.current_context, p.contexts) == ("remote", {"remote": "tcp://10.0.0.9:2376"})
    assert LEAK not in repr(p)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="reads as another user: needs root")
def test_another_users_files_are_read_as_that_user() -> None:
    base = Path(tempfile.mkdtemp(prefix="doctor-probe-"))
    try:
        base.chmod(0o755)  # nobody may look into the fake home, but not at root's secret
        home, env = fake_home(base, "nobody")
        secret = base / "root-only"
        plant(home, secret)
        secret.chmod(0o600)
        (home / ".bashrc").symlink_to(secret)
        (home / ".docker/config.json").unlink()
        (home / ".docker/config.json").symlink_to(secret)
        p = probe_here(env, "nobody")
        assert (p.target, p.privilege, p.home) == ("nobody", "root", str(home))
        assert p.contexts == {"remote": "tcp://10.0.0.9:2376"} and p.current_context == ""
        assert p.env_files == (f"{home}/.profile:1:export DOCKER_HOST=tcp://10.0.0.9:2376",)
        assert LEAK not in repr(p)
    finally:
        shutil.rmtree(base)
