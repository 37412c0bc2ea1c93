"""Helpers for e2e tests: run the real CLI against sandbox hosts, open SSH sessions."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric import Connection

from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from hostsetup.sandbox.registries import SandboxRegistries


def sandbox_of_its_own(prefix: str) -> Iterator[Sandbox]:
    """A sandbox named ``<prefix>-<pid>`` beside the session's (its own network, hosts and, if started, mirror),
    removed at the end; for a module fixture (``yield from``). Under CI a sandbox that cannot start fails."""
    from hostsetup.errors import HostsetupError
    from tests.conftest import IN_CI

    box = Sandbox(f"{prefix}-{os.getpid()}", progress=lambda msg: print(f"[sandbox] {msg}"))
    try:
        box.prepare()
    except HostsetupError as exc:
        box.down()
        if IN_CI:
            pytest.fail(f"CI=true and the sandbox cannot start: {exc}", pytrace=False)
        pytest.skip(f"e2e tests need a Docker engine ({exc})")
    try:
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def mirror(sandbox: Sandbox) -> SandboxMirror:
    return sandbox.start_mirror()


@pytest.fixture(scope="session")
def registries(sandbox: Sandbox, mirror: SandboxMirror) -> SandboxRegistries:
    """The hub stand-in, its pull-through mirror and the private registry (after the mirror: its name server)."""
    return sandbox.start_registries()


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The hostsetup artifact for the sandbox hosts' Python (Debian 12: 3.11), built as a user builds it
    (``hostsetup cloud-init --build-artifact``): (file, the sha256 the command printed)."""
    out = tmp_path_factory.mktemp("artifact") / "hostsetup-artifact.tar.gz"
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "cloud-init", "--build-artifact", str(out),
                           "--python", "3.11"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = re.search(r"^sha256 ([0-9a-f]{64})$", proc.stderr, re.MULTILINE)
    assert printed and printed[1] == hashlib.sha256(out.read_bytes()).hexdigest(), proc.stderr
    return out, printed[1]


def ssh(sandbox: Sandbox, host: SandboxHost, user: str = "hostsetup") -> Connection:
    """A new SSH session to ``host`` as ``user``, host key checked against the sandbox's."""
    return sandbox.connection(host, user, {"sudo": {"prompt": "[sudo] password: "}})


@pytest.fixture
def cli(sandbox: Sandbox, mirror: SandboxMirror, tmp_path: Path) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """Run ``hostsetup -S <sandbox ssh_config> -H <host> install <args>``; return (exit, json, stdout).

    ``mirror_url``: None for the sandbox's plain-http URL mirror, a preset name or URL for that
    (``--mirror``), or ``""`` for no ``--mirror`` at all: the default, as a user types it."""
    counter = iter(range(1000))

    def run(host: SandboxHost, *args: str, task: str = "install", mirror_url: str | None = None,
            fingerprint: str | None = None, extra_env: dict[str, str] | None = None,
            config: dict[str, Any] | None = None, verify: bool = False) -> tuple[int, dict[str, Any], str]:
        report = tmp_path / f"report-{next(counter)}.json"
        url = mirror.url if mirror_url is None else mirror_url
        insecure = url.startswith("http://")
        repo = ((["--mirror", url] if url else []) + (["--insecure-mirror"] if insecure else [])
                + ["--key-fingerprint", fingerprint or mirror.build.key_fingerprint] if task == "install" else [])
        if task == "install" and not verify and "--dry-run" not in args:
            repo.append("--no-verify")  # the checks have tests of their own; most tests need not pay for them
        runtime = []
        if config is not None:
            config_file = tmp_path / f"config-{next(counter)}.yaml"
            config_file.write_text(json.dumps(config))  # JSON is YAML
            runtime = ["-f", str(config_file)]
        cmd = [sys.executable, "-m", "hostsetup", *runtime, "-S", str(sandbox.ssh_config_path), "-H", host.hostname,
               task, *repo, "--json", str(report), *args]
        env = {**os.environ, "HOSTSETUP_INSTALL_KEY_FINGERPRINT": fingerprint or mirror.build.key_fingerprint,
               **({"HOSTSETUP_INSTALL_MIRROR": url} if url else {}),
               **({"HOSTSETUP_INSTALL_INSECURE_MIRROR": "1"} if insecure else {}), **(extra_env or {})}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        data = json.loads(report.read_text()) if report.exists() else {}
        return proc.returncode, data, proc.stdout + proc.stderr

    return run


def only_host(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["hosts"]) == 1
    return report["hosts"][0]


def steps_with(report: dict[str, Any], status: str) -> list[str]:
    return [s["name"] for s in only_host(report)["steps"] if s["status"] == status]


def run_hostsetup(sandbox: Sandbox, mirror: SandboxMirror, targets: list[str], *args: str,
                  env: dict[str, str] | None = None, debug: bool = False) -> tuple[int, str]:
    """``hostsetup [-d] -S <sandbox ssh_config> -H <targets> ARGS`` as a user runs it; (exit, stdout + stderr)."""
    cmd = [sys.executable, "-m", "hostsetup", *(["-d"] if debug else []), "-S", str(sandbox.ssh_config_path),
           "-H", ",".join(targets), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HOSTSETUP_INSTALL_KEY_FINGERPRINT": mirror.build.key_fingerprint,
                               **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def trio(sandbox: Sandbox, mirror: SandboxMirror) -> Iterator[list[SandboxHost]]:
    """Debian 12, Debian 13, Debian 12: Docker installed on all three in one fleet run (default repository),
    shared by the tests that need a small fleet (registries, the HTML report)."""
    hosts = sandbox.start_hosts(["debian12", "debian13", "debian12"])
    try:
        code, out = run_hostsetup(sandbox, mirror, [h.hostname for h in hosts], "install", "--users", "hostsetup",
                                  "--no-verify")
        assert code == 0, out
        yield hosts
    finally:
        sandbox.remove_hosts(hosts)
