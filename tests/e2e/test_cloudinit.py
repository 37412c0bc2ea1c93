"""``hostsetup cloud-init``: a new server converges itself at first boot, no SSH from here.

The "cloud" is a sandbox host of the ``debian12-cloud`` flavor (Debian 12 with Debian's cloud-init) whose
NoCloud seed (user-data = the generated file, meta-data = an instance id) is in place before it boots; the
artifact is served by a file server on the sandbox network. The user's settings live in one hostsetup.yaml,
used to write the user-data and, afterwards, to verify the server over SSH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostsetup.sandbox.hosts import Sandbox, SandboxMirror
from hostsetup.sandbox.images import NOCLOUD_SEED
from tests.e2e.conftest import ssh


def hostsetup(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "hostsetup", *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                         if not k.startswith("HOSTSETUP_")})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def seed(user_data: bytes, instance: str) -> dict[str, bytes]:
    return {f"{NOCLOUD_SEED}/user-data": user_data,
            f"{NOCLOUD_SEED}/meta-data": f"instance-id: {instance}\n".encode()}


def test_a_new_server_converges_itself_at_first_boot_and_passes_verify(
        sandbox: Sandbox, mirror: SandboxMirror, artifact: tuple[Path, str], tmp_path: Path) -> None:
    path, sha256 = artifact
    url = f"{sandbox.serve_files(path.parent)}/{path.name}"
    settings = tmp_path / "hostsetup.yaml"
    settings.write_text(json.dumps({   # the default repository; the sandbox's key stands in for Docker's
        "install": {"key_fingerprint": mirror.build.key_fingerprint, "users": "hostsetup"},
        "daemon": {"settings": {"log-level": "warn"}}}))
    user_data = tmp_path / "user-data.yaml"
    # The sandbox answers for Docker's repository under its own CA: the servers must trust it from first boot.
    made = hostsetup("-f", str(settings), "cloud-init", "--artifact", str(path), "--artifact-url", url,
                     "--trust-ca", str(sandbox.ca_path), "--output", str(user_data))
    assert made.returncode == 0, made.stderr
    assert f"sha256 {sha256}" in made.stderr and len(user_data.read_bytes()) <= 16384
    # The same, pinned to an artifact that is not the one served: that server must refuse it.
    wrong = hostsetup("-f", str(settings), "cloud-init", "--artifact-sha256", "0" * 64, "--python", "3.11",
                      "--artifact-url", url, "--trust-ca", str(sandbox.ca_path))
    assert wrong.returncode == 0 and wrong.stdout.startswith("#cloud-config\n"), wrong.stderr
    hosts = sandbox.start_hosts(["debian12-cloud", "debian12-cloud"],
                                files=[seed(user_data.read_bytes(), "cloud-good"),
                                       seed(wrong.stdout.encode(), "cloud-wrong")])
    try:
        good, refused = hosts
        with ssh(sandbox, good, "root") as c:
            c.put(str(user_data), "/tmp/user-data.yaml")
            schema = c.run("cloud-init schema --config-file /tmp/user-data.yaml", hide=True, warn=True)
            assert schema.exited == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
            status = c.run("cloud-init status --long", hide=True, warn=True).stdout
            assert "status: done" in status, status
            journal = c.run("journalctl -b -u cloud-final --no-pager", hide=True).stdout
            assert "hostsetup-firstboot: hostsetup install --local exited with 0" in journal, journal
            assert "verifying 1 changed host(s)" in journal and "localhost (--local)  passed" in journal
            report = json.loads(c.run("cat /var/log/hostsetup/install.json", hide=True).stdout)
            assert [h["status"] for h in report["hosts"]] == ["changed"]
            assert json.loads(c.run("cat /etc/docker/daemon.json", hide=True).stdout)["log-level"] == "warn"
        # Then, from here, over SSH with the same settings: verify passes and install has nothing to do.
        target = ["-f", str(settings), "-S", str(sandbox.ssh_config_path), "-H", good.hostname]
        verified = hostsetup(*target, "verify")
        assert verified.returncode == 0 and "passed" in verified.stdout, verified.stdout + verified.stderr
        again = hostsetup(*target, "install")
        assert again.returncode == 0 and "0 changed" in again.stdout, again.stdout + again.stderr
        with ssh(sandbox, refused, "root") as c:
            status = c.run("cloud-init status --long", hide=True, warn=True).stdout
            assert "status: error" in status, status
            journal = c.run("journalctl -b -u cloud-final --no-pager", hide=True).stdout
            assert f"not the pinned {'0' * 64}: refusing it" in journal, journal
            assert c.run("test -e /usr/bin/dockerd", warn=True, hide=True).exited != 0
    finally:
        sandbox.remove_hosts(hosts)
