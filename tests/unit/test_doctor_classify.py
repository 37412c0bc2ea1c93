"""Classifying probe output recorded from real broken hosts (engine 20.10 and 26.1).

Variants are made from the recordings with ``dataclasses.replace`` on state only
(file contents, unit states, times); every log line comes from a real host.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hostsetup.doctor.classify import classify, codes, parse_config
from hostsetup.doctor.findings import CODES, ERROR, WARNING, Finding
from hostsetup.doctor.probes import Client, Disk, Probes, parse_probes

DATA = Path(__file__).parent / "data" / "doctor"
ENGINES = ["engine20.10", "engine26.1"]

EXPECTED = {
    "healthy": ["HEALTHY"],
    "lazy-socket": ["HEALTHY"],
    "no-sudo": ["LIMITED_PROBES", "HEALTHY"],
    "stopped": ["DAEMON_STOPPED"],
    "disabled": ["DAEMON_DISABLED"],
    "socket-masked": ["SOCKET_MASKED"],
    "invalid-json": ["CONFIG_INVALID_JSON", "START_LIMIT_HIT"],
    "unknown-key": ["CONFIG_UNKNOWN_KEY", "START_LIMIT_HIT"],
    "hosts-conflict": ["CONFIG_FLAG_CONFLICT", "START_LIMIT_HIT"],
    "containerd-stopped": ["CONTAINERD_DOWN"],
    "containerd-masked": ["CONTAINERD_DOWN"],
    "not-in-group": ["USER_NOT_IN_GROUP"],
    "session-stale": ["USER_SESSION_STALE"],
    "socket-permissions": ["SOCKET_PERMISSIONS"],
    "group-missing": ["DOCKER_GROUP_MISSING", "DAEMON_STOPPED", "USER_NOT_IN_GROUP"],
    "docker-host": ["DOCKER_HOST_ELSEWHERE"],
    "start-limit": ["START_LIMIT_HIT"],
    "data-root-full": ["DATA_ROOT_FULL", "START_LIMIT_HIT"],
    "data-root-readonly": ["DATA_ROOT_UNWRITABLE", "START_LIMIT_HIT"],
    "stale-pidfile": ["STALE_PIDFILE", "START_LIMIT_HIT"],
}


def probes(name: str) -> Probes:
    return parse_probes((DATA / f"{name}.txt").read_text())


def find(findings: list[Finding], code: str) -> Finding:
    return next(f for f in findings if f.code == code)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cause", list(EXPECTED))
def test_recorded_causes(engine: str, cause: str) -> None:
    findings = classify(probes(f"{engine}-{cause}"))
    assert codes(findings) == EXPECTED[cause]
    assert all(f.evidence and f.fix for f in findings)


@pytest.mark.parametrize("flavor", ["debian12", "debian13"])
def test_not_installed(flavor: str) -> None:
    (finding,) = classify(probes(f"{flavor}-not-installed"))
    assert finding.code == "NOT_INSTALLED" and "install" in finding.command


def test_never_an_all_clear_when_the_client_fails() -> None:
    for path in DATA.glob("*.txt"):
        p = parse_probes(path.read_text())
        findings = classify(p)
        if not p.client.answers:
            assert "HEALTHY" not in codes(findings), path.name
            assert any(f.severity == ERROR for f in findings), path.name


@pytest.mark.parametrize(("engine", "line"), [
    ("engine20.10", "failed to start daemon: pid file found, ensure docker is not running or delete "
                    "/var/run/docker.pid"),
    ("engine26.1", "failed to start daemon, ensure docker is not running or delete /var/run/docker.pid: "
                   "process with PID {pid} is still running"),
])
def test_pidfile_evidence_is_the_engines_own_line(engine: str, line: str) -> None:
    p = probes(f"{engine}-stale-pidfile")
    finding = find(classify(p), "STALE_PIDFILE")
    assert finding.evidence == (f"/var/run/docker.pid: {p.pid} (a running sshd, not dockerd)",
                                line.format(pid=p.pid))


@pytest.mark.parametrize(("engine", "line"), [
    ("engine20.10", "failed to start daemon: error while opening volume store metadata database: write "
                    "/srv/small/docker/volumes/metadata.db: no space left on device"),
    ("engine26.1", "failed to start daemon: error while opening volume store metadata database "
                   "(/srv/small/docker/volumes/metadata.db): write /srv/small/docker/volumes/metadata.db: "
                   "no space left on device"),
])
def test_disk_full_evidence(engine: str, line: str) -> None:
    finding = find(classify(probes(f"{engine}-data-root-full")), "DATA_ROOT_FULL")
    assert finding.evidence[1] == line
    assert "0 KiB free" in finding.evidence[0]
    assert "rm " not in finding.command and "prune" not in finding.command  # never deletes data itself


@pytest.mark.parametrize("engine", ENGINES)
def test_the_real_error_comes_before_the_restart_loop(engine: str) -> None:
    findings = classify(probes(f"{engine}-invalid-json"))
    assert findings[0].evidence[0] == ("unable to configure the Docker daemon with file /etc/docker/daemon.json: "
                                       "invalid character '}' looking for beginning of object key string")
    assert find(findings, "START_LIMIT_HIT").evidence == (
        "docker.socket LoadState=loaded ActiveState=failed SubState=failed UnitFileState=enabled "
        "Result=service-start-limit-hit", "docker.service: Start request repeated too quickly.")


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_key_and_conflict_evidence(engine: str) -> None:
    unknown = find(classify(probes(f"{engine}-unknown-key")), "CONFIG_UNKNOWN_KEY")
    assert unknown.evidence == ("unable to configure the Docker daemon with file /etc/docker/daemon.json: the "
                                "following directives don't match any configuration option: no-such-option",)
    conflict = find(classify(probes(f"{engine}-hosts-conflict")), "CONFIG_FLAG_CONFLICT")
    assert conflict.evidence[1:] == (
        '/etc/docker/daemon.json: "hosts": ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"]',
        "ExecStart: /usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock")
    assert "specified both as a flag and in the configuration file: hosts" in conflict.evidence[0]


@pytest.mark.parametrize(("engine", "api"), [("engine20.10", "v1.24"), ("engine26.1", "v1.45")])
def test_permission_denied_as_each_client_says_it(engine: str, api: str) -> None:
    finding = find(classify(probes(f"{engine}-not-in-group")), "USER_NOT_IN_GROUP")
    assert finding.evidence == (
        "id -Gn hostsetup: hostsetup",
        "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
        f'Get "http://%2Fvar%2Frun%2Fdocker.sock/{api}/version": dial unix /var/run/docker.sock: connect: '
        "permission denied")
    assert finding.command == "sudo usermod -aG docker hostsetup"


def test_stale_session_says_a_fresh_login_works() -> None:
    finding = find(classify(probes("engine26.1-session-stale")), "USER_SESSION_STALE")
    assert finding.evidence[-1] == "a fresh login answers (sudo -u hostsetup docker version: 26.1.5+dfsg1)"
    assert "newgrp docker" in finding.fix


def test_docker_host_evidence_and_command() -> None:
    finding = find(classify(probes("engine20.10-docker-host")), "DOCKER_HOST_ELSEWHERE")
    assert finding.evidence == (
        "DOCKER_HOST=tcp://127.0.0.1:2375 (in the login environment)",
        "/etc/environment:1:DOCKER_HOST=tcp://127.0.0.1:2375",
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:2375. Is the docker daemon running?")
    assert finding.command == "sudo sed -i.bak '/^[^#]*DOCKER_\\(HOST\\|CONTEXT\\)=/d' /etc/environment"


def test_docker_host_in_a_startup_file_only() -> None:
    p = dataclasses.replace(probes("engine26.1-healthy"),
                            env_files=("/home/hostsetup/.bashrc:120:export DOCKER_HOST=tcp://10.0.0.9:2376",))
    findings = classify(p)
    assert codes(findings) == ["DOCKER_HOST_ELSEWHERE"]  # interactive shells would fail: no all-clear
    assert findings[0].command.startswith("sed -i.bak ")  # the user's own file: no sudo


def test_current_context_elsewhere() -> None:
    p = dataclasses.replace(probes("engine26.1-healthy"), current_context="remote",
                            contexts={"remote": "tcp://10.0.0.9:2376"})
    finding = find(classify(p), "DOCKER_HOST_ELSEWHERE")
    assert finding.evidence[0] == "docker context remote: tcp://10.0.0.9:2376"
    assert finding.command == "docker context use default"
    local = dataclasses.replace(p, contexts={"remote": "unix:///var/run/docker.sock"})
    assert codes(classify(local)) == ["HEALTHY"]


def test_containerd_socket_lost_while_its_unit_runs() -> None:
    p = probes("engine20.10-containerd-stopped")
    running = dataclasses.replace(p, units={**p.units, "containerd.service": probes("engine20.10-healthy").unit(
        "containerd.service")})
    finding = find(classify(running), "CONTAINERD_DOWN")
    assert finding.evidence[0] == "docker version: server components Engine runc docker-init (no containerd)"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_running_daemon_with_a_broken_file_is_a_warning(engine: str) -> None:
    broken = probes(f"{engine}-invalid-json")
    p = dataclasses.replace(probes(f"{engine}-healthy"), daemon_json=broken.daemon_json,
                            daemon_json_state="present", validation=broken.validation)
    findings = classify(p)
    assert codes(findings) == ["CONFIG_INVALID_JSON", "HEALTHY"]
    assert findings[0].severity == WARNING


def test_an_old_journal_line_about_a_since_changed_file_is_ignored() -> None:
    p = probes("engine20.10-unknown-key")
    newer = dataclasses.replace(p, daemon_json='{"log-level": "warn"}\n',
                                daemon_json_mtime=int(p.journal_errors[-1].time) + 60)
    assert codes(classify(newer)) == ["START_LIMIT_HIT"]
    same_file_later = dataclasses.replace(p, daemon_json_mtime=int(p.journal_errors[-1].time) + 60)
    assert codes(classify(same_file_later)) == ["START_LIMIT_HIT"]


def test_a_fixed_file_leaves_only_the_start_limit() -> None:
    # Recorded: three failures on an invalid file, then the file was removed.
    p = probes("engine26.1-start-limit")
    assert any("invalid character" in line.text for line in p.journal_errors)
    assert codes(classify(p)) == ["START_LIMIT_HIT"]


def test_no_rule_matches_is_unknown_with_evidence() -> None:
    p = probes("engine26.1-stopped")
    failed = dataclasses.replace(p.unit("docker.service"), active="failed", result="exit-code")
    findings = classify(dataclasses.replace(p, units={**p.units, "docker.service": failed}))
    assert codes(findings) == ["UNKNOWN"]
    assert findings[0].evidence[0] == ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                                       "Is the docker daemon running?")


def test_client_timeout_is_said() -> None:
    p = dataclasses.replace(probes("engine26.1-stopped"), client=Client(124))
    assert "did not answer within 5s" in find(classify(p), "DAEMON_STOPPED").evidence[-1]


def test_daemon_disabled_but_running_is_a_warning() -> None:
    p = probes("engine26.1-healthy")
    units = {name: dataclasses.replace(u, file_state="disabled") if name.startswith("docker") else u
             for name, u in p.units.items()}
    findings = classify(dataclasses.replace(p, units=units))
    assert codes(findings) == ["DAEMON_DISABLED", "HEALTHY"] and findings[0].severity == WARNING


def test_disk_thresholds() -> None:
    p = probes("engine26.1-healthy")
    run = p.disk("/run")
    assert run is not None
    small_run = Disk("/run", "/run", 51200, 48000, "/run", 100000, 99000, True)  # 50 MB /run, mostly free
    full_run = dataclasses.replace(small_run, avail_kb=1000)
    assert codes(classify(dataclasses.replace(p, disks=(p.disks[0], small_run)))) == ["HEALTHY"]
    assert codes(classify(dataclasses.replace(p, disks=(p.disks[0], full_run)))) == ["RUN_FULL", "HEALTHY"]
    no_inodes = dataclasses.replace(p.disks[0], inodes_free=10)
    assert codes(classify(dataclasses.replace(p, disks=(no_inodes,)))) == ["DATA_ROOT_FULL", "HEALTHY"]


@pytest.mark.parametrize(("text", "engine", "ok"), [
    ("", (20, 10), False), ("", (26, 1), True), ("  \n", (26, 1), True),
    ('\ufeff{"debug": true}', (20, 10), False), ('\ufeff{"debug": true}', (26, 1), True),
    ('{"x": NaN}', (26, 1), False), ("[]", (26, 1), False), ('{"debug": true}', (20, 10), True),
])
def test_parse_config_like_dockerd(text: str, engine: tuple[int, int], ok: bool) -> None:
    config, error = parse_config(text, engine)
    assert (config is not None) == ok and (error == "") == ok


def test_every_code_has_a_summary_and_rank() -> None:
    assert list(CODES)[-1] == "HEALTHY" and "UNKNOWN" in CODES
    assert all(CODES.values())
