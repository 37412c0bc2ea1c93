"""``hostsetup doctor`` against real sandbox hosts broken in each way it knows.

One host per flavor (debian12: engine 20.10, debian13: engine 26.1) serves every
cause: Docker is installed once with the real CLI, and before each cause the host
is put back to a known good state (and the doctor must call it HEALTHY). Each
cause is broken by the same root script the unit-test recordings used
(tests/tools/record_doctor.py), diagnosed with the real CLI, fixed with ``--fix``
(or, where hostsetup does not fix it, by the command the doctor printed), and the
user's ``docker info`` must work again in a new SSH session.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hostsetup.doctor.probes import probe_command
from hostsetup.sandbox.hosts import Sandbox, SandboxHost
from tests.e2e.conftest import only_host, ssh
from tests.tools.record_doctor import BREAKS, USER

FLAVORS = ["debian12", "debian13"]
DOCKER_INFO = "docker info --format '{{.ServerVersion}}'"

# Back to a known good state, whatever the previous cause left behind.
RESET = f"""
umount -l /srv/small /srv/ro 2>/dev/null || true
# (the bracket keeps pkill from matching this script's own command line)
pkill -f 'docker-othe[r].sock' && for i in $(seq 40); do pgrep -f 'docker-othe[r].sock' >/dev/null || break
  sleep 0.5; done
[ -e /usr/bin/dockerd ] || mv /usr/bin/dockerd.away /usr/bin/dockerd
[ -e /usr/sbin/xtables-nft-multi ] || mv /usr/sbin/xtables-nft-multi.away /usr/sbin/xtables-nft-multi
if [ -e /root/containerd.toml ]; then cp /root/containerd.toml /etc/containerd/config.toml; fi
rm -f /etc/containerd/config.toml.invalid.*
rm -rf /home/{USER}/.docker
systemctl unmask docker.socket docker.service containerd.service
rm -f /etc/docker/daemon.json /etc/docker/daemon.json.invalid.*
rm -f /etc/systemd/system/docker.service.d/hostsetup-execstart.conf /etc/systemd/system/docker.service.d/override.conf
rm -rf /var/backups/hostsetup
sed -i '/DOCKER_/d' /etc/environment
p=$(cat /run/docker.pid 2>/dev/null)
if [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" != dockerd ]; then rm -f /run/docker.pid; fi
getent group docker >/dev/null || groupadd --system docker
usermod -aG docker {USER}
systemctl daemon-reload
systemctl enable containerd.service docker.socket docker.service
systemctl reset-failed docker.service docker.socket containerd.service
systemctl start containerd.service
systemctl restart docker.socket docker.service
"""


@dataclass(frozen=True)
class Case:
    """What the doctor must say about a cause, and how the host gets well again."""

    codes: list[str]
    said: str = ""                # the real error: in the first finding's evidence, as the daemon or client said it
    fixed: bool = True            # --fix alone makes it HEALTHY
    check: Callable[[Sandbox, SandboxHost, dict[str, Any]], None] | None = None
    before: list[str] = field(default_factory=list)   # root commands before the break


def root(sandbox: Sandbox, host: SandboxHost, script: str, timeout: float = 120) -> str:
    with ssh(sandbox, host, "root") as c:
        return c.run(script, hide=True, timeout=timeout).stdout


def user_docker(sandbox: Sandbox, host: SandboxHost, command: str = DOCKER_INFO) -> str:
    """``command`` as the user in a brand-new SSH session (fresh groups and environment)."""
    with ssh(sandbox, host) as c:
        return c.run(command, hide=True, timeout=60).stdout.strip()


def finding(report: dict[str, Any], code: str) -> dict[str, Any]:
    return next(f for f in only_host(report)["findings"] if f["code"] == code)


def moved_aside(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    assert root(sandbox, host, "ls /etc/docker/").split().count("daemon.json") == 0
    assert "daemon.json.invalid." in root(sandbox, host, "ls /etc/docker/")


def restored(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    assert root(sandbox, host, "cat /etc/docker/daemon.json") == '{"log-level": "warn"}\n'


def hosts_in_dropin(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    assert "hosts" not in root(sandbox, host, "cat /etc/docker/daemon.json")
    unit = root(sandbox, host, "systemctl cat docker.service")
    assert "ExecStart=/usr/bin/dockerd -H fd:// -H unix:///run/docker-alt.sock" in unit
    assert user_docker(sandbox, host, "docker -H unix:///run/docker-alt.sock version --format '{{.Server.Version}}'")
    assert "etc_docker_daemon.json." in root(sandbox, host, "ls /var/backups/hostsetup")  # the old file kept


def plain_tcp_left_alone(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
    """--fix did not open plain TCP: the file and the unit are as they were, the warning says why."""
    assert "tcp://127.0.0.1:2375" in root(sandbox, host, "cat /etc/docker/daemon.json")
    assert "tcp://" not in root(sandbox, host, "systemctl cat docker.service")
    fixes = only_host(report)["fixes"]
    assert fixes["steps"] == []
    assert any(m["code"] == "CONFIG_FLAG_CONFLICT" and m["command"] == "sudoedit /etc/docker/daemon.json"
               for m in fixes["manual"])
    assert any("tcp://127.0.0.1:2375 without TLS verification" in n for n in fixes["notes"])
    # The person's decision: drop the TCP entry; the next --fix moves the local socket into ExecStart.
    root(sandbox, host, """echo '{"hosts": ["unix:///var/run/docker.sock"]}' > /etc/docker/daemon.json""")


def containerd_back(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    assert user_docker(sandbox, host, "docker info --format '{{.ContainerdCommit.ID}}'") not in ("", "N/A")


def in_group(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
    assert "docker" in user_docker(sandbox, host, "id -Gn").split()
    step = only_host(report)["fixes"]["steps"][0]
    assert "usermod -aG docker hostsetup" in step["script"] and "newgrp docker" in step["note"]


def pidfile_aside(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    assert "docker.pid.stale." in root(sandbox, host, "ls /run/")


def enabled(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    states = root(sandbox, host, "systemctl is-enabled docker.service docker.socket").split()
    assert states == ["enabled", "enabled"]


def run_printed(code: str) -> Callable[[Sandbox, SandboxHost, dict[str, Any]], None]:
    """The cause is not fixed automatically: run the command the doctor printed for it, as the user."""
    def check(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
        command = next(m["command"] for m in only_host(report)["fixes"]["manual"] if m["code"] == code)
        assert command
        with ssh(sandbox, host) as c:
            c.run(command, hide=True, timeout=120)
    return check


def drop_in_removed(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
    # The person's decision: the drop-in the evidence names goes.
    assert "drop-in: /etc/systemd/system/docker.service.d/override.conf" in finding(report, "EXECSTART_INVALID")[
        "evidence"]
    root(sandbox, host, "rm /etc/systemd/system/docker.service.d/override.conf && systemctl daemon-reload")


def iptables_back(sandbox: Sandbox, host: SandboxHost, _report: dict[str, Any]) -> None:
    # The printed reinstall needs Debian's archive, which sandbox hosts cannot reach: put the program back.
    root(sandbox, host, "mv /usr/sbin/xtables-nft-multi.away /usr/sbin/xtables-nft-multi")


def stop_other_dockerd(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
    pid = re.search(r"ps -o pid,args -p (\d+)", finding(report, "OTHER_DOCKERD")["command"])
    assert pid and "docker-other.sock" in root(sandbox, host, f"ps -o args= -p {pid[1]}")
    root(sandbox, host, f"kill {pid[1]} && while kill -0 {pid[1]} 2>/dev/null; do sleep 0.5; done")


def free_space_then_fix_again(sandbox: Sandbox, host: SandboxHost, report: dict[str, Any]) -> None:
    # The doctor never frees space: the filler is still there, and docker was not started for nothing.
    assert "fill" in root(sandbox, host, "ls /srv/small")
    assert only_host(report)["fixes"]["notes"] == ["docker not started: fix DATA_ROOT_FULL first"]
    root(sandbox, host, "rm /srv/small/fill")  # what the person decides to delete


CASES: dict[str, Case] = {
    "lazy-socket": Case(["HEALTHY"]),
    "stopped": Case(["DAEMON_STOPPED"]),
    "disabled": Case(["DAEMON_DISABLED"], check=enabled),
    "socket-masked": Case(["SOCKET_MASKED"]),
    "invalid-json": Case(["CONFIG_INVALID_JSON", "START_LIMIT_HIT"], check=moved_aside),
    "unknown-key": Case(["CONFIG_UNKNOWN_KEY", "START_LIMIT_HIT"], check=restored, before=[
        "install -d -m 0700 /var/backups/hostsetup",
        "echo '{\"log-level\": \"warn\"}' > /var/backups/hostsetup/etc_docker_daemon.json.20250101T000000000000000"]),
    "hosts-conflict": Case(["CONFIG_FLAG_CONFLICT", "START_LIMIT_HIT"], fixed=False, check=plain_tcp_left_alone),
    "hosts-conflict-unix": Case(["CONFIG_FLAG_CONFLICT", "START_LIMIT_HIT"], check=hosts_in_dropin),
    "containerd-stopped": Case(["CONTAINERD_DOWN"], check=containerd_back),
    "containerd-masked": Case(["CONTAINERD_DOWN"], check=containerd_back),
    "not-in-group": Case(["USER_NOT_IN_GROUP"], check=in_group),
    "group-missing": Case(["DOCKER_GROUP_MISSING", "DAEMON_STOPPED", "USER_NOT_IN_GROUP"], check=in_group),
    "docker-host": Case(["DOCKER_HOST_ELSEWHERE"], fixed=False, check=run_printed("DOCKER_HOST_ELSEWHERE")),
    "socket-permissions": Case(["SOCKET_PERMISSIONS"], fixed=False, check=run_printed("SOCKET_PERMISSIONS")),
    "start-limit": Case(["START_LIMIT_HIT"]),
    "data-root-full": Case(["DATA_ROOT_FULL", "START_LIMIT_HIT"], fixed=False, check=free_space_then_fix_again),
    "data-root-readonly": Case(["DATA_ROOT_UNWRITABLE", "START_LIMIT_HIT"], fixed=False,
                               check=run_printed("DATA_ROOT_UNWRITABLE")),
    "stale-pidfile": Case(["STALE_PIDFILE", "START_LIMIT_HIT"], check=pidfile_aside),
    # The real error behind a restart loop, and what it is about.
    "storage-driver": Case(["STORAGE_DRIVER_FAILED", "START_LIMIT_HIT"], "error initializing graphdriver",
                           check=moved_aside),
    "invalid-cidr": Case(["CONFIG_INVALID_VALUE", "START_LIMIT_HIT"], "invalid CIDR address: 300.0.0.1/24",
                         check=restored, before=[
        "install -d -m 0700 /var/backups/hostsetup",
        "echo '{\"log-level\": \"warn\"}' > /var/backups/hostsetup/etc_docker_daemon.json.20250101T000000000000000"]),
    "userns-remap": Case(["USERNS_FAILED", "START_LIMIT_HIT"], 'uid lookup for "nosuchuser"', check=moved_aside),
    "binary-missing": Case(["BINARY_MISSING", "START_LIMIT_HIT"], "/usr/bin/dockerd", fixed=False,
                           check=run_printed("BINARY_MISSING")),
    "execstart-flag": Case(["EXECSTART_INVALID", "START_LIMIT_HIT"], "unknown flag: --no-such-flag", fixed=False,
                           check=drop_in_removed),
    "iptables-missing": Case(["IPTABLES_FAILED", "START_LIMIT_HIT"], "failed to create NAT chain DOCKER",
                             fixed=False, check=iptables_back),
    "containerd-config": Case(["CONTAINERD_CONFIG_INVALID", "CONTAINERD_DOWN"], "failed to load TOML", fixed=False,
                              check=run_printed("CONTAINERD_CONFIG_INVALID")),
    "second-dockerd": Case(["OTHER_DOCKERD", "START_LIMIT_HIT"], "/var/run/docker.pid", fixed=False,
                           check=stop_other_dockerd),
    "missing-context": Case(["CLIENT_CONFIG_INVALID"], '"nosuch"', fixed=False,
                            check=run_printed("CLIENT_CONFIG_INVALID")),
    "api-version": Case(["CLIENT_CONFIG_INVALID"], "DOCKER_API_VERSION=1.0", fixed=False,
                        check=run_printed("CLIENT_CONFIG_INVALID")),
    "tls-verify": Case(["CLIENT_CONFIG_INVALID"], "DOCKER_TLS_VERIFY=1", fixed=False,
                       check=run_printed("CLIENT_CONFIG_INVALID")),
    "rootless-context": Case(["DOCKER_HOST_ELSEWHERE"], "the rootless engine socket", fixed=False,
                             check=run_printed("DOCKER_HOST_ELSEWHERE")),
    "desktop-context": Case(["DOCKER_HOST_ELSEWHERE"], "Docker Desktop's socket", fixed=False,
                            check=run_printed("DOCKER_HOST_ELSEWHERE")),
}


@dataclass
class SharedHost:
    """A host every cause of one flavor uses in turn."""

    host: SandboxHost
    installed: bool = False


@pytest.fixture(scope="module", params=FLAVORS)
def shared(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[SharedHost]:
    """One host per flavor; Docker is installed (with the cli fixture) by the first test that uses it."""
    host = sandbox.start_hosts([request.param])[0]
    yield SharedHost(host)
    sandbox.remove_hosts([host])


def healthy_host(sandbox: Sandbox, shared: SharedHost, cli: Callable[..., Any]) -> SandboxHost:
    """Install Docker once, put the host back to a good state, and have the doctor agree."""
    host = shared.host
    if not shared.installed:
        code, _report, out = cli(host, "--users", USER)
        assert code == 0, out
        shared.installed = True
    root(sandbox, host, RESET)
    code, report, out = cli(host, task="doctor")
    assert (code, only_host(report)["codes"]) == (0, ["HEALTHY"]), out
    return host


def test_healthy_host_takes_one_ssh_session(sandbox, cli, shared) -> None:
    host = healthy_host(sandbox, shared, cli)
    code, report, out = cli(host, "--fix", task="doctor")
    assert code == 0, out
    result = only_host(report)
    assert result["status"] == "healthy" and result["ssh_sessions"] == 1 and result["fixes"] is None
    assert result["seconds"] < 10


@pytest.mark.parametrize("cause", list(CASES))
def test_diagnose_and_fix(sandbox, cli, shared, cause) -> None:
    case = CASES[cause]
    doctor_host = healthy_host(sandbox, shared, cli)
    for command in case.before:
        root(sandbox, doctor_host, command)
    root(sandbox, doctor_host, BREAKS[cause].script)

    code, report, out = cli(doctor_host, task="doctor")
    assert only_host(report)["codes"] == case.codes, out
    assert code == (0 if case.codes == ["HEALTHY"] else 1), out
    assert all(finding(report, c)["evidence"] for c in case.codes)
    assert case.said in "\n".join(finding(report, case.codes[0])["evidence"]), out

    dry_code, dry_report, dry_out = cli(doctor_host, "--dry-run", task="doctor")
    assert (dry_code, only_host(dry_report)["codes"]) == (code, case.codes)  # a dry run changes nothing
    for step in (only_host(dry_report)["fixes"] or {}).get("steps", []):
        assert step["status"] == "planned" and step["script"].splitlines()[0] in dry_out

    code, report, out = cli(doctor_host, "--fix", task="doctor")
    host = only_host(report)
    if case.fixed:
        assert (code, host["codes"]) == (0, ["HEALTHY"]), out
        assert host["status"] == ("healthy" if case.codes == ["HEALTHY"] else "fixed")
    else:
        assert code == 1 and case.codes[0] in host["codes"], out
    if case.check:
        case.check(sandbox, doctor_host, report)
    if not case.fixed:
        code, report, out = cli(doctor_host, "--fix", task="doctor")
        assert (code, only_host(report)["codes"]) == (0, ["HEALTHY"]), out
    assert user_docker(sandbox, doctor_host)  # a new session, as the user, without sudo


PLANTED = ("~/.docker/contexts/meta/shadow", "~/.docker/contexts/meta/secret")


def test_the_users_symlinks_do_not_make_root_read_for_them(sandbox, cli, shared) -> None:
    """The user links their context metadata to /etc/shadow and to a root-only file shaped like a context
    (and makes it current): neither reaches the probe's output or the report."""
    host = healthy_host(sandbox, shared, cli)
    secret = '{"Name": "leak", "Endpoints": {"docker": {"Host": "tcp://root-only-secret:1"}}}'
    root(sandbox, host, f"umask 077 && printf '%s\\n' '{secret}' > /root/context.json")
    shadow = root(sandbox, host, "base64 /etc/shadow | tr -d '\\n'")
    with ssh(sandbox, host) as c:
        c.run("mkdir -p ~/.docker/contexts/meta/shadow ~/.docker/contexts/meta/secret && "
              "ln -s /etc/shadow ~/.docker/contexts/meta/shadow/meta.json && "
              "ln -s /root/context.json ~/.docker/contexts/meta/secret/meta.json && "
              """printf '{"currentContext": "leak"}\\n' > ~/.docker/config.json""", hide=True)
    try:
        with ssh(sandbox, host) as c:
            raw = c.run(probe_command(), hide=True, warn=True, timeout=90).stdout
        assert "@@end" in raw and shadow not in raw and "root-only-secret" not in base64_lines(raw)
        _code, report, out = cli(host, "--verbose", task="doctor")
        assert "root-only-secret" not in out and "root-only-secret" not in json.dumps(report)
    finally:
        with ssh(sandbox, host) as c:
            c.run(f"rm -rf {' '.join(PLANTED)} ~/.docker/config.json", hide=True)
        root(sandbox, host, "rm -f /root/context.json")


def base64_lines(raw: str) -> str:
    """The probe output with every base64 field decoded (file contents travel encoded)."""
    decoded = []
    for field_text in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", raw):
        try:
            decoded.append(base64.b64decode(field_text).decode("utf-8", errors="replace"))
        except ValueError:
            continue
    return raw + "\n".join(decoded)
