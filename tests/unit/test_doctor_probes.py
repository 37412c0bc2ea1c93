"""The doctor's probe script and its parser, on output recorded from real broken sandbox hosts.

tests/unit/data/doctor holds raw probe output recorded by ``python3 -m tests.tools.record_doctor``
on debian12 (engine 20.10) and debian13 (engine 26.1) hosts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostsetup.doctor.probes import Client, parse_probes, probe_command, probe_script
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
            assert probes.engine.startswith(f"Docker version {version}"), path.name


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
