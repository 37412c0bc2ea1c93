"""Fleets: six hosts from an inventory, three broken in different ways; the other three converge
and the report names each failure."""

from __future__ import annotations

import json
import subprocess
import sys

from hostsetup.sandbox.engine import docker
from tests.e2e.conftest import ssh


def test_six_hosts_failures_isolated(sandbox, mirror, fresh_hosts, tmp_path) -> None:
    hosts = fresh_hosts(*["debian12"] * 6)
    stopped, wrong_key, no_sudo, *good = hosts
    with ssh(sandbox, wrong_key, "root") as c:
        c.run("rm /home/hostsetup/.ssh/authorized_keys", hide=True)
    with ssh(sandbox, no_sudo, "root") as c:
        c.run("rm /etc/sudoers.d/hostsetup", hide=True)
    docker("stop", "-t", "1", stopped.name)

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(json.dumps({
        "vars": {"user": "hostsetup", "key": str(sandbox.key_path),
                 "install": {"mirror": mirror.url, "insecure_mirror": True,
                             "key_fingerprint": mirror.build.key_fingerprint}},
        "hosts": {h.hostname: {"host": "127.0.0.1", "port": h.port} for h in hosts},
        "groups": {"good": {"hosts": [h.hostname for h in good], "vars": {"install": {"users": "hostsetup"}}}},
    }))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"known_hosts": [str(sandbox.known_hosts_path)], "connect_attempts": 2}))
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "-f", str(config), "--inventory", str(inventory),
                           "-t", "5", "install", "--no-verify", "--json", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    results = {h["host"]: h for h in json.loads(report.read_text())["hosts"]}
    for host in good:
        assert results[host.hostname]["status"] == "changed", results[host.hostname]
    assert results[stopped.hostname]["status"] == "failed"
    assert "cannot connect" in results[stopped.hostname]["error"]
    assert results[wrong_key.hostname]["status"] == "failed"
    assert "authentication" in results[wrong_key.hostname]["error"].lower()
    assert results[no_sudo.hostname]["status"] == "failed"
    assert "sudo asks hostsetup for a password" in results[no_sudo.hostname]["error"]
    table = proc.stdout
    assert all(h.hostname in table for h in hosts) and "6 hosts: 3 changed, 3 failed" in table

    # --limit selects a group; the converged hosts now run with zero changes.
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "-f", str(config), "--inventory", str(inventory),
                           "--limit", "good", "--batch", "50%", "install", "--no-verify"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 hosts: 3 ok" in proc.stdout
