"""Helpers for e2e tests: run the real CLI against sandbox hosts, open SSH sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric import Config, Connection

from hostsetup.connection import connect
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror


@pytest.fixture(scope="session")
def mirror(sandbox: Sandbox) -> SandboxMirror:
    return sandbox.start_mirror()


def ssh(sandbox: Sandbox, host: SandboxHost, user: str = "hostsetup") -> Connection:
    """A new SSH session to ``host`` as ``user``, host key checked against the sandbox's."""
    config = Config(overrides={"known_hosts": [str(sandbox.known_hosts_path)], "run": {"in_stream": False},
                               "sudo": {"prompt": "[sudo] password: "}})
    conn = connect(host.target(user), config, connect_kwargs={"key_filename": [str(sandbox.key_path)]})
    conn.client.set_missing_host_key_policy(__import__("paramiko").RejectPolicy())
    return conn


@pytest.fixture
def cli(sandbox: Sandbox, mirror: SandboxMirror, tmp_path: Path) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """Run ``hostsetup -S <sandbox ssh_config> -H <host> install <args>``; return (exit, json, stdout)."""
    counter = iter(range(1000))

    def run(host: SandboxHost, *args: str, task: str = "install", mirror_url: str | None = None,
            fingerprint: str | None = None) -> tuple[int, dict[str, Any], str]:
        report = tmp_path / f"report-{next(counter)}.json"
        repo = (["--mirror", mirror_url or mirror.url, "--insecure-mirror",
                 "--key-fingerprint", fingerprint or mirror.build.key_fingerprint] if task == "install" else [])
        cmd = [sys.executable, "-m", "hostsetup", "-S", str(sandbox.ssh_config_path), "-H", host.hostname,
               task, *repo, "--json", str(report), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert "Traceback" not in proc.stderr, proc.stderr
        data = json.loads(report.read_text()) if report.exists() else {}
        return proc.returncode, data, proc.stdout + proc.stderr

    return run


def only_host(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["hosts"]) == 1
    return report["hosts"][0]


def steps_with(report: dict[str, Any], status: str) -> list[str]:
    return [s["name"] for s in only_host(report)["steps"] if s["status"] == status]
