"""``hostsetup configure`` on real engines: Debian 12 (dockerd 20.10, no --validate) and
Debian 13 (dockerd 26: --validate, removed keys refused)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import only_host, ssh


def dockerd_pid(c) -> str:
    return c.run("systemctl show -p MainPID --value docker", hide=True).stdout.strip()


def info(c, field: str):
    out = c.run("docker info --format '{{json ." + field + "}}'", hide=True, timeout=60).stdout
    return json.loads(out)


@pytest.fixture
def docker_host(sandbox, cli, fresh_hosts, request):
    host = fresh_hosts(request.param)[0]
    code, _, out = cli(host, "--users", "hostsetup")
    assert code == 0, out
    return host


@pytest.mark.parametrize("docker_host", ["debian12", "debian13"], indirect=True)
def test_mirrors_reload_restart_and_no_change(sandbox, cli, docker_host) -> None:
    host = docker_host
    with ssh(sandbox, host, "root") as c:
        c.run("""mkdir -p /etc/docker && printf '{"debug": true}' > /etc/docker/daemon.json"""
              " && systemctl restart docker", hide=True)
    # Dry run shows the diff and changes nothing.
    code, report, out = cli(host, "--registry-mirrors", "https://mirror-a.example.com", "--dry-run", task="configure")
    assert code == 0, out
    assert '+  "registry-mirrors": [' in out and "keep debug" in out
    with ssh(sandbox, host, "root") as c:
        assert c.run("cat /etc/docker/daemon.json", hide=True).stdout == '{"debug": true}'
        pid = dockerd_pid(c)

    # registry-mirrors is live-reloadable: SIGHUP, same PID; debug kept (merge).
    code, report, out = cli(host, "--registry-mirrors", "https://mirror-a.example.com", task="configure")
    assert code == 0, out
    assert "reload docker (SIGHUP)" in out
    with ssh(sandbox, host) as c:  # as the user: what the client sees
        assert info(c, "RegistryConfig.Mirrors") == ["https://mirror-a.example.com/"]
        assert info(c, "Debug") is True
    with ssh(sandbox, host, "root") as c:
        assert dockerd_pid(c) == pid
        assert json.loads(c.run("cat /etc/docker/daemon.json", hide=True).stdout) == {
            "debug": True, "registry-mirrors": ["https://mirror-a.example.com"]}
        assert c.run("ls /var/backups/hostsetup/ | grep -c etc_docker_daemon.json", hide=True).stdout.strip() == "1"

    # Same settings again: no write, no reload.
    code, report, out = cli(host, "--registry-mirrors", "https://mirror-a.example.com", task="configure")
    assert code == 0 and only_host(report)["status"] == "ok", out
    with ssh(sandbox, host, "root") as c:
        assert dockerd_pid(c) == pid

    # A log driver change needs a restart: new PID, and the client sees it.
    code, report, out = cli(host, "--profile", "log-rotation", task="configure")
    assert code == 0, out
    assert "restart docker" in out
    with ssh(sandbox, host) as c:
        assert info(c, "LoggingDriver") == "json-file"
    with ssh(sandbox, host, "root") as c:
        assert dockerd_pid(c) != pid
        assert json.loads(c.run("cat /etc/docker/daemon.json", hide=True).stdout)["log-opts"] == {
            "max-file": "3", "max-size": "10m"}


@pytest.mark.parametrize("docker_host", ["debian12", "debian13"], indirect=True)
def test_start_failure_is_rolled_back(sandbox, cli, docker_host) -> None:
    host = docker_host
    assert cli(host, "--set", "debug=true", task="configure")[0] == 0
    with ssh(sandbox, host, "root") as c:
        before = c.run("cat /etc/docker/daemon.json", hide=True).stdout
    # Valid JSON, a known key of the right type, accepted by `dockerd --validate`, but
    # the daemon cannot start: the sandbox's /var/lib/docker is not btrfs.
    code, report, _out = cli(host, "--set", "storage-driver=btrfs", task="configure")
    assert code == 1
    error = only_host(report)["error"]
    assert "did not come back" in error and "previous daemon.json is back" in error
    assert "btrfs" in error.lower() or "driver" in error.lower()
    with ssh(sandbox, host, "root") as c:
        assert c.run("cat /etc/docker/daemon.json", hide=True).stdout == before
        assert c.run("systemctl is-active docker", hide=True).stdout.strip() == "active"
    with ssh(sandbox, host) as c:
        c.run("docker info", hide=True, timeout=60)


@pytest.mark.parametrize("docker_host", ["debian13"], indirect=True)
def test_hosts_key_gets_its_drop_in(sandbox, cli, docker_host) -> None:
    host = docker_host
    hosts = '["unix:///var/run/docker.sock", "unix:///run/docker-alt.sock"]'
    code, _report, out = cli(host, "--set", f"hosts={hosts}", task="configure")
    assert code == 0, out
    with ssh(sandbox, host, "root") as c:
        dropin = c.run("cat /etc/systemd/system/docker.service.d/hostsetup-execstart.conf", hide=True).stdout
        assert "ExecStart=\n" in dropin and "fd://" not in dropin.split("ExecStart=\n")[1]
        c.run("docker -H unix:///run/docker-alt.sock info", hide=True, timeout=60)
    with ssh(sandbox, host) as c:
        c.run("docker info", hide=True, timeout=60)
    assert only_host(cli(host, "--set", f"hosts={hosts}", task="configure")[1])["status"] == "ok"


@pytest.mark.parametrize("docker_host", ["debian12"], indirect=True)
def test_refusals_change_nothing(sandbox, cli, docker_host) -> None:
    host = docker_host
    with ssh(sandbox, host, "root") as c:
        before = c.run("cat /etc/docker/daemon.json 2>/dev/null; systemctl show -p MainPID docker", hide=True).stdout
    code, _, out = cli(host, "--set", 'hosts=["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]',
                       task="configure")
    assert code == 1 and "--allow-insecure-tcp" in out and "root" in out
    code, _, out = cli(host, "--set", 'registry-mirror=["https://m.example"]', task="configure")
    assert code == 2 and "did you mean 'registry-mirrors'" in out  # bad input: before any host
    # dockerd 20.10 does not know `proxies` in daemon.json (23.0+): it goes to a drop-in.
    code, _report, out = cli(host, "--set", 'proxies={"http-proxy": "http://user:s3cret@proxy.example:3128"}',
                            task="configure")
    assert code == 0, out
    assert "s3cret" not in out
    with ssh(sandbox, host, "root") as c:
        env = c.run("systemctl show -p Environment docker", hide=True).stdout
        assert "HTTP_PROXY=http://user:s3cret@proxy.example:3128" in env
        after = c.run("cat /etc/docker/daemon.json 2>/dev/null || true", hide=True).stdout
        assert "proxies" not in after
    assert after in before


@pytest.mark.parametrize("docker_host", ["debian13"], indirect=True)
def test_modern_engine_refuses_removed_keys_and_takes_proxies(sandbox, cli, docker_host) -> None:
    host = docker_host
    code, _, out = cli(host, "--set", "graph=/srv/docker", task="configure")
    assert code == 1 and "graph" in out and "data-root" in out
    code, _, out = cli(host, "--set", 'proxies={"https-proxy": "http://user:s3cret@proxy.example:3128"}',
                       task="configure")
    assert code == 0, out
    with ssh(sandbox, host) as c:
        assert "proxy.example:3128" in info(c, "HTTPSProxy")


def test_invalid_settings_fail_before_any_host_is_contacted() -> None:
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "hostsetup", "-H", "root@127.0.0.1:1", "configure", "--set",
                             "log-level=loud"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "log-level" in result.stderr and "Traceback" not in result.stderr
    assert "cannot connect" not in result.stdout
