"""The README's first command and the sandbox commands, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

from hostsetup.sandbox.engine import docker


def hostsetup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostsetup", *args], capture_output=True, text=True, timeout=900)


def leftovers(name: str) -> list[str]:
    label = f"label=hostsetup.sandbox={name}"
    return (docker("ps", "-aq", "--filter", label).stdout.split()
            + docker("volume", "ls", "-q", "--filter", label).stdout.split()
            + docker("network", "ls", "-q", "--filter", label).stdout.split())


def test_demo_installs_docker_then_down_removes_everything(sandbox) -> None:
    name = f"demo-{os.getpid()}"
    try:
        up = hostsetup("demo", "--name", name)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "1 host: 1 changed" in up.stdout
        assert "docker pull tiny (through the registry mirror)" in up.stdout and "ok: hello from" in up.stdout
        assert "ssh -i " in up.stdout and "-> changed:" in up.stdout
        again = hostsetup("demo", "--name", name)
        assert again.returncode == 0 and "1 host: 1 ok" in again.stdout, again.stdout
    finally:
        down = hostsetup("demo", "--down", "--name", name)
    assert down.returncode == 0 and "removed" in down.stdout
    assert leftovers(name) == []


def test_sandbox_up_prints_how_to_connect_and_down_cleans_up(sandbox) -> None:
    name = f"cli-{os.getpid()}"
    try:
        up = hostsetup("sandbox", "up", "--hosts", "2", "--name", name)
        assert up.returncode == 0, up.stderr
        assert up.stdout.count("hostsetup -H hostsetup@127.0.0.1:") == 2
        assert "ssh -i" in up.stdout and "--key-fingerprint" in up.stdout
        status = hostsetup("sandbox", "status", "--name", name)
        assert status.stdout.count("hostsetup -H") == 2
        for out in (up.stdout, status.stdout):  # the registries, with what it takes to use them
            assert "https://hub.sandbox.internal" in out and "https://registry-mirror.sandbox.internal" in out
            assert "registry.sandbox.internal:5000" in out and "--password-file" in out and "--registry-ca" in out
    finally:
        down = hostsetup("sandbox", "down", "--name", name)
    assert down.returncode == 0
    assert leftovers(name) == []
