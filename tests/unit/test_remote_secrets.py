"""Secrets stay off command lines and out of world-readable files; the plan warns about the docker group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from invoke.runners import Result

from hostsetup.daemon.apply import configure_script
from hostsetup.daemon.plan import plan_daemon
from hostsetup.daemon.settings import daemon_settings
from hostsetup.host.paths import PROXY_DROPIN
from hostsetup.operations import ConfigureDaemon, WriteFile
from hostsetup.plan import plan_configure, plan_install
from hostsetup.remote import Remote
from hostsetup.settings import install_settings
from tests.unit.test_daemon_plan import host
from tests.unit.test_plan import recorded, sandbox_settings

SECRET = "pr0xy-s3cret"
PROXIES = {"settings": {"proxies": {"http-proxy": f"http://user:{SECRET}@proxy:3128"}}}


@dataclass
class FakeConnection:
    """Records what would reach the host: command lines (visible in ps) and stdin."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    config: Any = field(default_factory=lambda: type("C", (), {"runners": type("R", (), {})()})())

    def run(self, command: str, **kwargs: Any) -> Result:
        stream = kwargs.get("in_stream")
        self.calls.append({"command": command, "stdin": stream.read() if stream else None, "sudo": False})
        return Result(stdout="/tmp/.hostsetup-abc\n" if "mktemp" in command else "", exited=0, command=command)

    def sudo(self, command: str, **kwargs: Any) -> Result:
        self.calls.append({"command": command, "stdin": None, "sudo": True})
        return Result(stdout="", exited=0, command=command)


@pytest.mark.parametrize(("as_root", "sudo_asks"), [(True, False), (False, False), (False, True)])
def test_root_scripts_never_go_on_a_command_line(as_root: bool, sudo_asks: bool) -> None:
    conn = FakeConnection()
    remote = Remote(conn, as_root=as_root, sudo_asks=sudo_asks)
    remote.root(f"echo {SECRET} > /etc/x")
    assert conn.calls, "nothing ran"
    assert all(SECRET not in call["command"] for call in conn.calls)
    assert any(SECRET in (call["stdin"] or "") for call in conn.calls)  # it went on stdin
    if sudo_asks:  # sudo reads the password from stdin: the script takes a private file
        assert "umask 077" in conn.calls[0]["command"] and conn.calls[1]["sudo"]
        assert "rm -f /tmp/.hostsetup-abc" in conn.calls[1]["command"]
    assert remote.sessions == len(conn.calls)


def test_files_with_credentials_are_written_0600() -> None:
    assert WriteFile("/etc/x", f"HTTP_PROXY=http://u:{SECRET}@p:3128\n").mode == "0600"
    assert WriteFile("/etc/x", "plain\n").mode == "0644"
    step = plan_daemon(host("debian12-converged"), daemon_settings(PROXIES))
    dropin = next(op for op in step.operations if isinstance(op, WriteFile) and op.path == PROXY_DROPIN)
    assert dropin.mode == "0600"
    modern = plan_daemon(host("debian13-converged"), daemon_settings(PROXIES))
    configure = next(op for op in modern.operations if isinstance(op, ConfigureDaemon))
    assert configure.mode == "0600"
    script = configure_script(configure)
    assert 'chmod 0600 "$tmp"' in script
    assert "prev=$(mktemp)" not in script and "/tmp" not in script  # no rollback copy in /tmp
    assert 'prev=$(mktemp "$(dirname /etc/docker/daemon.json)/' in script


def test_repository_file_with_mirror_credentials_is_private() -> None:
    facts = recorded("debian12-bare")
    plan = plan_install(facts, install_settings({"mirror": f"https://user:{SECRET}@mirror.example/docker-ce"}))
    write = next(op for s in plan.steps for op in s.operations if isinstance(op, WriteFile))
    assert write.mode == "0600"


def test_dry_run_masks_every_registered_secret() -> None:
    from hostsetup.run.fleet import describe_plan

    facts = host("debian12-converged")
    settings = daemon_settings({"settings": {"proxies": {"http-proxy": "http://u:a%20b%40c@proxy:3128"}}})
    text = "\n".join(describe_plan(plan_configure(facts, settings)))
    assert "a%20b" not in text and "***" in text


def test_adding_users_to_the_docker_group_warns_that_it_is_root_equivalent() -> None:
    facts = recorded("debian12-bare")
    plan = plan_install(facts, install_settings({"users": ["hostsetup"]}))
    group = next(s for s in plan.steps if s.name == "group")
    assert any("root-equivalent" in w for w in group.warnings)
    converged = recorded("debian12-converged")
    assert not any(s.warnings for s in plan_install(converged, sandbox_settings(converged)).steps)


def test_local_shell_keeps_the_script_off_the_command_line() -> None:
    """``--local``: the script's own process shows ``sh -s``, not the script (ps is public)."""
    import shutil

    from hostsetup.remote import local_remote

    if shutil.which("ps") is None:
        pytest.skip("no ps here")
    shell = local_remote()
    shell.as_root = True
    result = shell.root(f"# {SECRET}\nps -o args= -p $$; ps -o args= -p $PPID")
    assert result.exited == 0 and "sh" in result.stdout
    assert SECRET not in result.stdout


def test_key_download_keeps_a_mirror_password_off_the_command_line() -> None:
    from hostsetup.apply import _fetch_key
    from hostsetup.operations import FetchKey
    from hostsetup.remote import RemoteError

    conn = FakeConnection()
    url = f"https://bob:{SECRET}@mirror.corp/docker-ce/linux/debian/gpg"
    with pytest.raises(RemoteError):  # the fake returns no key; what matters is what was sent
        _fetch_key(Remote(conn), FetchKey(url, "/etc/apt/keyrings/docker.asc", ("AB" * 20,), None))
    (call,) = conn.calls
    assert SECRET not in call["command"] and call["command"].endswith("-K -")
    assert call["stdin"] == f'url = "{url}"\n'


def test_reports_are_masked_and_private(tmp_path) -> None:
    import os

    from hostsetup.run.report import write_json_file

    path = tmp_path / "r.json"
    write_json_file(path, {"hosts": [{"error": f"apt: http://u:{SECRET}@proxy:3128 refused"}]})
    assert SECRET not in path.read_text() and oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_registered_sudo_password_does_not_decide_file_modes_and_digests_stay_readable() -> None:
    from hostsetup import secrets

    secrets.register("docker")  # a sudo password that happens to be a common word
    assert secrets.file_mode("Types: deb\nURIs: https://download.docker.com/linux/debian\n") == "0644"
    assert secrets.mask("busybox:1.36@sha256:0123abcd") == "busybox:1.36@sha256:0123abcd"


def test_env_sudo_password_is_registered(monkeypatch) -> None:
    from hostsetup import secrets
    from hostsetup.config import HostsetupConfig

    monkeypatch.setenv("HOSTSETUP_SUDO_PASSWORD", "env-sudo-pw-123")
    HostsetupConfig().load_shell_env()
    assert "env-sudo-pw-123" in secrets.known()


def test_a_bad_known_hosts_line_is_skipped_not_fatal(tmp_path) -> None:
    from fabric import Config
    from paramiko import RSAKey

    from hostsetup.connection import connect

    good = f"[127.0.0.1]:2222 ssh-rsa {RSAKey.generate(1024).get_base64()}\n"
    known = tmp_path / "known_hosts"
    known.write_text("bad.example ssh-ed25519 !!!not-base64!!!\n" + good)
    conn = connect("root@127.0.0.1:2222", Config(overrides={"known_hosts": [str(known)]}))
    assert conn.client._system_host_keys.lookup("[127.0.0.1]:2222") is not None


def test_a_hosts_thread_never_rewrites_the_shared_config() -> None:
    """The fleet's hosts share one Config; setting any value in it re-merges it, and a host's thread
    reading it meanwhile found keys missing ("No attribute or config key found for 'user'", seen in CI
    with -d on a fleet of three). Opening a host's connection must not write to it."""
    from unittest import mock

    from hostsetup.config import HostsetupConfig
    from hostsetup.connection import connect
    from hostsetup.remote import Remote, ScriptRunner

    config = HostsetupConfig()
    config.load_shell_env()
    merged = []
    original = HostsetupConfig.merge

    def merge(self: HostsetupConfig) -> None:
        merged.append(self is config)
        original(self)

    with mock.patch.object(HostsetupConfig, "merge", merge):
        remote = Remote(connect("root@127.0.0.1:2222", config))
    assert True not in merged, "the shared config was written to"
    assert remote.conn.config.runners.remote is ScriptRunner and remote.conn.config.user == config.user
