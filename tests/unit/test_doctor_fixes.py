"""Planning ``--fix`` from recorded probes: exact scripts, safe and reversible only."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from hostsetup.doctor.classify import classify
from hostsetup.doctor.fixes import FixPlan, hosts_execstart, plan_fixes
from hostsetup.doctor.probes import Probes, parse_probes
from hostsetup.host.files import write_atomic

DATA = Path(__file__).parent / "data" / "doctor"
ENGINES = ["engine20.10", "engine26.1"]
STAMP = "20260101T000000"
START = "systemctl reset-failed docker.service docker.socket\ntimeout 120 systemctl start docker.socket docker.service"
DEFAULT_ARGV = ("/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")


def probes(name: str) -> Probes:
    return parse_probes((DATA / f"{name}.txt").read_text())


def plan(p: Probes) -> FixPlan:
    return plan_fixes(classify(p), p, STAMP)


def steps(p: Probes) -> list[tuple[str, str]]:
    return [(s.name, s.script) for s in plan(p).steps]


@pytest.mark.parametrize("engine", ENGINES)
def test_unit_repairs(engine: str) -> None:
    assert steps(probes(f"{engine}-stopped")) == [("start docker", START)]
    assert steps(probes(f"{engine}-start-limit")) == [("start docker", START)]
    assert steps(probes(f"{engine}-disabled")) == [
        ("enable", "systemctl enable docker.socket docker.service"), ("start docker", START)]
    assert steps(probes(f"{engine}-socket-masked")) == [
        ("unmask", "systemctl unmask docker.socket"), ("start docker", START)]


@pytest.mark.parametrize("engine", ENGINES)
def test_healthy_needs_nothing(engine: str) -> None:
    for cause in ("healthy", "lazy-socket", "no-sudo"):
        result = plan(probes(f"{engine}-{cause}"))
        assert (result.steps, result.manual) == ((), ())


@pytest.mark.parametrize(("engine", "cause"), [(e, c) for e in ENGINES for c in ("invalid-json", "unknown-key")])
def test_refused_file_is_moved_aside_without_a_backup(engine: str, cause: str) -> None:
    result = plan(probes(f"{engine}-{cause}"))
    assert [(s.name, s.script) for s in result.steps] == [
        ("move daemon.json aside", f"mv /etc/docker/daemon.json /etc/docker/daemon.json.invalid.{STAMP}"),
        ("start docker", START)]
    assert result.manual == ()


def with_backup(p: Probes, content: str) -> Probes:
    return dataclasses.replace(p, backup=content,
                               backup_path="/var/backups/hostsetup/etc_docker_daemon.json.20250101T1")


@pytest.mark.parametrize("engine", ENGINES)
def test_newest_backup_is_restored_when_usable(engine: str) -> None:
    p = with_backup(probes(f"{engine}-unknown-key"), '{"log-level": "warn"}\n')
    first = plan(p).steps[0]
    assert first.name == "restore daemon.json"
    assert first.script == (f"mv /etc/docker/daemon.json /etc/docker/daemon.json.invalid.{STAMP}\n"
                            "cp -p /var/backups/hostsetup/etc_docker_daemon.json.20250101T1 /etc/docker/daemon.json")
    assert "kept as /etc/docker/daemon.json.invalid." in first.note


@pytest.mark.parametrize("backup", [
    '{"log-level": "warn",}',                                       # not JSON either
    '{"no-such-option": true}',                                    # the key dockerd refused
    '{"hosts": ["tcp://0.0.0.0:2375"]}',                           # conflicts with -H fd://
])
def test_unusable_backups_are_not_restored(backup: str) -> None:
    p = with_backup(probes("engine26.1-unknown-key"), backup)
    assert plan(p).steps[0].name == "move daemon.json aside"
    same = with_backup(probes("engine26.1-invalid-json"), probes("engine26.1-invalid-json").daemon_json or "")
    assert plan(same).steps[0].name == "move daemon.json aside"


SAFE_HOSTS = '{"hosts": ["unix:///var/run/docker.sock", "unix:///run/docker-alt.sock"]}'
TLS = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
       "tlskey": "/etc/docker/key.pem"}


def with_daemon_json(p: Probes, text: str, argv: tuple[str, ...] | None = None) -> Probes:
    units = dict(p.units)
    if argv is not None:
        units["docker.service"] = dataclasses.replace(units["docker.service"], argv=argv)
    return dataclasses.replace(p, daemon_json=text, units=units)


@pytest.mark.parametrize("engine", ENGINES)
def test_hosts_move_into_the_execstart_dropin(engine: str, tmp_path: Path) -> None:
    (move, start) = plan(with_daemon_json(probes(f"{engine}-hosts-conflict"), SAFE_HOSTS)).steps
    assert move.name == "move hosts to a drop-in" and move.codes == ("CONFIG_FLAG_CONFLICT",)
    assert (start.name, start.script) == ("start docker", START)
    script = move.script
    assert "cp -p /etc/docker/daemon.json /var/backups/hostsetup/etc_docker_daemon.json." in script
    shown = move.shown  # what --dry-run prints: the files' contents as here-documents, written atomically
    assert ("d=$(dirname /etc/docker/daemon.json)" in shown and "cat <<'HOSTSETUP_EOF' > \"$tmp\"\n{}\nHOSTSETUP_EOF\n"
            in shown and 'mv -f "$tmp" /etc/docker/daemon.json' in shown)
    assert ("[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H unix:///run/docker-alt.sock "
            "--containerd=/run/containerd/containerd.sock\nHOSTSETUP_EOF\n") in shown
    assert script.endswith("systemctl daemon-reload")
    # The script is valid sh and writes exactly those files (run against a scratch root).
    subprocess.run(["sh", "-n", "-c", script], check=True)
    local = script.replace("/etc/", f"{tmp_path}/etc/").replace("/var/backups/", f"{tmp_path}/backups/")
    (tmp_path / "etc/docker").mkdir(parents=True)
    (tmp_path / "etc/docker/daemon.json").write_text(SAFE_HOSTS)
    subprocess.run(["sh", "-ec", local.replace("systemctl daemon-reload", "true")], check=True)
    assert (tmp_path / "etc/docker/daemon.json").read_text() == "{}\n"
    dropin = (tmp_path / "etc/systemd/system/docker.service.d/hostsetup-execstart.conf").read_text()
    assert dropin.splitlines()[-2:] == ["ExecStart=", "ExecStart=/usr/bin/dockerd -H fd:// -H unix:///run/docker-alt."
                                        "sock --containerd=/run/containerd/containerd.sock"]
    assert [p.name.split(".")[0] for p in (tmp_path / "backups/hostsetup").iterdir()] == ["etc_docker_daemon"]


@pytest.mark.parametrize(("config", "argv", "plain"), [
    ('{"hosts": ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"]}', None, "tcp://127.0.0.1:2375"),  # recorded
    ('{"hosts": ["0.0.0.0:2375"]}', None, "0.0.0.0:2375"),               # no scheme: dockerd reads tcp
    ('{"hosts": [":2375"]}', None, ":2375"),
    ('{"hosts": "127.0.0.1:2375"}', None, "127.0.0.1:2375"),
    (json.dumps({"hosts": ["tcp://0.0.0.0:2376"], "tls": True, **{k: v for k, v in TLS.items() if k != "tlsverify"}}),
     None, "tcp://0.0.0.0:2376"),                                       # encrypted, but anyone may connect
    ('{"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": true}', None, "tcp://0.0.0.0:2376"),  # no CA, cert, key
    (SAFE_HOSTS, ("/usr/bin/dockerd", "-H", "fd://", "-H", "tcp://0.0.0.0:2375"), "tcp://0.0.0.0:2375"),  # the unit's
])
@pytest.mark.parametrize("engine", ENGINES)
def test_plain_tcp_is_never_moved_into_execstart(engine: str, config: str, argv: tuple[str, ...] | None,
                                                 plain: str) -> None:
    result = plan(with_daemon_json(probes(f"{engine}-hosts-conflict"), config, argv))
    assert result.steps == ()  # no drop-in, and docker is not started with the conflict in place
    manual, limit = result.manual
    assert limit.code == "START_LIMIT_HIT"
    assert (manual.code, manual.command) == ("CONFIG_FLAG_CONFLICT", "sudoedit /etc/docker/daemon.json")
    assert f"Remove {plain} from hosts" in manual.fix and "tlsverify with tlscacert, tlscert and tlskey" in manual.fix
    assert result.notes == (f"warning: hosts not moved into ExecStart: {plain} without TLS verification would give "
                            "root on this host to anyone who can reach it", "docker not started: fix "
                            "CONFIG_FLAG_CONFLICT first")
    lines = result.describe()
    assert "by hand (CONFIG_FLAG_CONFLICT): sudoedit /etc/docker/daemon.json" in lines
    assert f"note: {result.notes[0]}" in lines


@pytest.mark.parametrize("engine", ENGINES)
def test_tcp_with_tls_verification_is_moved(engine: str) -> None:
    config = json.dumps({"hosts": ["unix:///var/run/docker.sock", "0.0.0.0:2376"], **TLS})
    move = plan(with_daemon_json(probes(f"{engine}-hosts-conflict"), config)).steps[0]
    assert move.name == "move hosts to a drop-in"
    assert "ExecStart=/usr/bin/dockerd -H fd:// -H 0.0.0.0:2376 --containerd" in move.shown
    assert '"tlsverify": true' in move.shown  # stays in daemon.json


def test_a_backup_with_plain_tcp_is_not_restored() -> None:
    no_flags = ("/usr/bin/dockerd", "--containerd=/run/containerd/containerd.sock")
    p = with_daemon_json(probes("engine26.1-unknown-key"), probes("engine26.1-unknown-key").daemon_json or "", no_flags)
    assert plan(with_backup(p, '{"hosts": ["fd://", "0.0.0.0:2375"]}')).steps[0].name == "move daemon.json aside"
    secure = json.dumps({"hosts": ["fd://", "0.0.0.0:2376"], **TLS})
    assert plan(with_backup(p, secure)).steps[0].name == "restore daemon.json"


@pytest.mark.parametrize(("argv", "hosts", "expected"), [
    (DEFAULT_ARGV, ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"],
     "/usr/bin/dockerd -H fd:// -H tcp://127.0.0.1:2375 --containerd=/run/containerd/containerd.sock"),
    (DEFAULT_ARGV, ["tcp://0.0.0.0:2376"],
     "/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --containerd=/run/containerd/containerd.sock"),
    (("/usr/bin/dockerd", "--host=fd://", "-Htcp://1.2.3.4:2375"), ["fd://", "tcp://1.2.3.4:2375"],
     "/usr/bin/dockerd -H fd:// -H tcp://1.2.3.4:2375"),
    ((), ["unix:///run/docker.sock"], "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
])
def test_hosts_execstart(argv: tuple[str, ...], hosts: list[str], expected: str) -> None:
    assert hosts_execstart(argv, hosts) == expected


def test_a_file_holding_the_heredoc_marker_is_written_exactly(tmp_path: Path) -> None:
    content = "a\nHOSTSETUP_EOF\nb"   # the shown form picks another marker; what runs is byte-exact
    written = write_atomic(str(tmp_path / "x"), content, "0644")
    assert "cat <<'HOSTSETUP_EOF_1'" in written.shown
    subprocess.run(["sh", "-ec", written.text.replace("/var/backups/", f"{tmp_path}/backups/")], check=True)
    assert (tmp_path / "x").read_text() == content


@pytest.mark.parametrize("engine", ENGINES)
def test_containerd(engine: str) -> None:
    (stopped,) = plan(probes(f"{engine}-containerd-stopped")).steps
    assert stopped.script.splitlines()[0] == "timeout 90 systemctl start containerd.service"
    assert "grep -qw containerd" in stopped.script.splitlines()[1]  # waits for dockerd to reconnect
    masked = plan(probes(f"{engine}-containerd-masked")).steps
    assert masked[0].script.splitlines()[0] == "systemctl unmask containerd.service"
    assert masked[-1].name == "start docker"


@pytest.mark.parametrize("engine", ENGINES)
def test_stale_pidfile_is_moved_aside_only_if_still_stale(engine: str) -> None:
    p = probes(f"{engine}-stale-pidfile")
    move, start = plan(p).steps
    assert move.script == (f'if [ "$(cat /var/run/docker.pid 2>/dev/null)" = {p.pid} ] && '
                           f'[ "$(cat /proc/{p.pid}/comm 2>/dev/null)" != dockerd ]; then '
                           f"mv /var/run/docker.pid /var/run/docker.pid.stale.{STAMP}; fi")
    assert start.script == START


@pytest.mark.parametrize("engine", ENGINES)
def test_data_loss_is_never_planned(engine: str) -> None:
    for cause, code in (("data-root-full", "DATA_ROOT_FULL"), ("data-root-readonly", "DATA_ROOT_UNWRITABLE")):
        result = plan(probes(f"{engine}-{cause}"))
        assert result.steps == ()  # starting would only hit the start limit again
        assert [f.code for f in result.manual] == [code, "START_LIMIT_HIT"]
        assert result.notes == (f"docker not started: fix {code} first",)


@pytest.mark.parametrize("engine", ENGINES)
def test_group(engine: str) -> None:
    result = plan(probes(f"{engine}-not-in-group"))
    assert [(s.name, s.script) for s in result.steps] == [("docker group", "usermod -aG docker hostsetup")]
    assert result.regroup and "newgrp docker" in result.steps[0].note
    missing = plan(probes(f"{engine}-group-missing"))
    assert [(s.name, s.script) for s in missing.steps] == [
        ("docker group", "groupadd --system docker\nusermod -aG docker hostsetup"), ("start docker", START)]
    stale = plan(probes(f"{engine}-session-stale"))
    assert stale.steps == () and stale.manual == () and "newgrp docker" in stale.notes[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_not_auto_fixed_are_printed(engine: str) -> None:
    for cause, code in (("docker-host", "DOCKER_HOST_ELSEWHERE"), ("socket-permissions", "SOCKET_PERMISSIONS")):
        result = plan(probes(f"{engine}-{cause}"))
        assert result.steps == () and [f.code for f in result.manual] == [code]
        assert result.manual[0].command
        assert f"by hand ({code}): {result.manual[0].command}" in result.describe()


def test_a_running_daemon_keeps_its_file() -> None:
    broken = probes("engine26.1-invalid-json")
    p = dataclasses.replace(probes("engine26.1-healthy"), daemon_json=broken.daemon_json,
                            daemon_json_state="present", validation=broken.validation)
    result = plan(p)
    assert result.steps == () and [f.code for f in result.manual] == ["CONFIG_INVALID_JSON"]


def test_describe_prints_every_command() -> None:
    lines = plan(probes("engine20.10-socket-masked")).describe()
    assert lines == ["fix unmask (SOCKET_MASKED):", "    systemctl unmask docker.socket", "fix start docker:",
                     *[f"    {line}" for line in START.splitlines()]]
