"""Host keys on real sshd hosts: a ProxyJump hop is checked like the target, and accept-new
remembers what it accepted.

Host B is reached the way a bastion setup reaches it: by its name on the sandbox network, port 22,
through host A's SSH (published on 127.0.0.1) as ``ProxyJump``."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fabric import Config
from paramiko import BadHostKeyException

from hostsetup.connection import connect
from hostsetup.sandbox.engine import docker
from hostsetup.sandbox.hosts import Sandbox, SandboxHost

JUMP_ALIAS = "b-via-a"


def other_key() -> str:
    """A valid ed25519 public key that is nobody's host key."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="module")
def jump_pair(sandbox: Sandbox) -> Iterator[tuple[SandboxHost, SandboxHost]]:
    """Two fresh hosts: A, the jump host, and B behind it; removed when the module ends."""
    hosts = sandbox.start_hosts(["debian12", "debian12"])
    try:
        yield hosts[0], hosts[1]
    finally:
        sandbox.remove_hosts(hosts)


def host_key(host: SandboxHost) -> str:
    """``<type> <base64>`` of the host's real ed25519 key, read from inside the container."""
    return " ".join(docker("exec", host.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2])


def logins(host: SandboxHost) -> int:
    """How many logins sshd on ``host`` has accepted so far (from its journal)."""
    log = docker("exec", host.name, "journalctl", "-u", "ssh", "--no-pager", "-o", "cat").stdout
    return log.count("Accepted publickey for ")


def jump_ssh_config(tmp_path: Path, sandbox: Sandbox, jump: SandboxHost, behind: SandboxHost,
                    known_hosts: Path, strict: str) -> Path:
    """An ssh_config reaching B over ProxyJump A. The jump's own entry gives only the key to log in
    with: its host-key options are the ones of B's entry (what it leaves unset, a hop inherits)."""
    path = tmp_path / f"ssh_config-{strict}"
    path.write_text(
        f"Host {JUMP_ALIAS}\n  HostName {behind.hostname}\n  Port 22\n  User hostsetup\n"
        f"  ProxyJump hostsetup@127.0.0.1:{jump.port}\n  IdentityFile {sandbox.key_path}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking {strict}\n\n"
        f"Host 127.0.0.1\n  IdentityFile {sandbox.key_path}\n  IdentitiesOnly yes\n")
    return path


def run_true(config_path: Path) -> str:
    conn = connect(JUMP_ALIAS, Config(runtime_ssh_path=str(config_path), overrides={"run": {"in_stream": False}}))
    try:
        return conn.run("hostname", hide=True, timeout=30).stdout.strip()
    finally:
        conn.close()
        if conn.gateway:
            conn.gateway.close()


def test_a_jump_host_showing_another_key_than_the_pinned_one_gets_no_login_anywhere(
        sandbox: Sandbox, jump_pair: tuple[SandboxHost, SandboxHost], tmp_path: Path) -> None:
    jump, behind = jump_pair
    known = tmp_path / "known_hosts"
    config = jump_ssh_config(tmp_path, sandbox, jump, behind, known, strict="yes")

    known.write_text(f"{behind.hostname} {host_key(behind)}\n[127.0.0.1]:{jump.port} {host_key(jump)}\n")
    before = logins(behind), logins(jump)
    assert run_true(config) == behind.hostname
    assert (logins(behind), logins(jump)) == (before[0] + 1, before[1] + 1)  # the journal shows logins

    known.write_text(f"{behind.hostname} {host_key(behind)}\n[127.0.0.1]:{jump.port} {other_key()}\n")
    before = logins(behind), logins(jump)
    with pytest.raises(BadHostKeyException):
        run_true(config)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "-S", str(config), "-H", JUMP_ALIAS,
                           "install", "--dry-run", "--json", str(report)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "Host key for server '127.0.0.1' does not match" in proc.stdout + proc.stderr
    assert (logins(behind), logins(jump)) == before


def test_accept_new_over_a_jump_saves_both_keys_and_the_next_run_is_quiet(
        sandbox: Sandbox, jump_pair: tuple[SandboxHost, SandboxHost], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    jump, behind = jump_pair
    known = tmp_path / "known_hosts"
    known.touch()
    config = jump_ssh_config(tmp_path, sandbox, jump, behind, known, strict="accept-new")

    with caplog.at_level(logging.WARNING, logger="hostsetup.connection"):
        assert run_true(config) == behind.hostname
    assert sorted(known.read_text().splitlines()) == sorted(
        [f"[127.0.0.1]:{jump.port} {host_key(jump)}", f"{behind.hostname} {host_key(behind)}"])
    assert len([r for r in caplog.records if "accepting new host key" in r.getMessage()]) == 2

    caplog.clear()
    saved = known.read_text()
    with caplog.at_level(logging.WARNING, logger="hostsetup.connection"):
        assert run_true(config) == behind.hostname
    assert caplog.records == []
    assert known.read_text() == saved
