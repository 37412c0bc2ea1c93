"""``--local``: hostsetup run on the server itself (no SSH from here), as at first boot. The sandbox host gets
hostsetup as the artifact ``hostsetup cloud-init --build-artifact`` builds from this checkout (hostsetup and its
packages for the host's Python, unpacked into one directory)."""

from __future__ import annotations

from pathlib import Path

from hostsetup.sandbox.hosts import Sandbox, SandboxMirror
from tests.e2e.conftest import ssh


def test_install_configure_verify_and_doctor_on_the_host_itself(sandbox: Sandbox, mirror: SandboxMirror,
                                                                 fresh_hosts, artifact: tuple[Path, str]) -> None:
    host = fresh_hosts("debian12")[0]
    fingerprint = mirror.build.key_fingerprint
    # the sandbox repository's own key (every command, as hostsetup.yaml or the environment would give it)
    hs = f"HOSTSETUP_INSTALL_KEY_FINGERPRINT={fingerprint} PYTHONPATH=/opt/hostsetup/site python3 -m hostsetup"
    with ssh(sandbox, host, "root") as c:
        c.put(str(artifact[0]), "/tmp/hostsetup-local.tar.gz")
        c.run("mkdir -p /opt/hostsetup && tar -xzf /tmp/hostsetup-local.tar.gz -C /opt/hostsetup", hide=True)
        # the default repository (Docker's own name, which the sandbox answers for), as root
        first = c.run(f"{hs} install --local --users hostsetup --json /tmp/r1.json",
                      hide=True, warn=True, timeout=600)
        assert first.exited == 0, first.stdout + first.stderr
        assert "localhost (--local)" in first.stdout and "changed" in first.stdout
        assert "verifying 1 changed host(s)" in first.stdout and "localhost (--local)  passed" in first.stdout
    with ssh(sandbox, host) as c:   # as a user with passwordless sudo: the same, through sudo -n
        again = c.run(f"{hs} install --local --users hostsetup", hide=True,
                      warn=True, timeout=300)
        assert again.exited == 0 and "-> ok: 0 changed" in again.stdout, again.stdout + again.stderr
        configured = c.run(f"{hs} configure --local --set log-level=warn", hide=True, warn=True, timeout=300)
        assert configured.exited == 0 and "1 changed" in configured.stdout, configured.stdout + configured.stderr
        assert '"log-level": "warn"' in c.run("sudo cat /etc/docker/daemon.json", hide=True).stdout
        verified = c.run(f"{hs} verify --local", hide=True, warn=True, timeout=300)
        assert verified.exited == 0 and "localhost (--local)  passed" in verified.stdout, verified.stdout
        doctor = c.run(f"{hs} doctor --local", hide=True, warn=True, timeout=300)
        assert doctor.exited == 0 and "healthy" in doctor.stdout, doctor.stdout + doctor.stderr
        refused = c.run(f"{hs} -H other install --local", hide=True, warn=True, timeout=120)
        assert refused.exited == 2 and "either hosts or --local" in refused.stderr
