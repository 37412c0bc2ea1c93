"""The sandbox is real: two hosts boot systemd, accept our key as a sudo user,
install docker-ce from the local mirror and run a container offline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fabric import Config
from paramiko.ssh_exception import SSHException

from hostsetup.connection import connect
from hostsetup.sandbox.hosts import Sandbox, SandboxHost
from tests.e2e.conftest import ssh


def test_two_hosts_install_docker_ce_from_the_mirror_and_run_a_container(
        sandbox: Sandbox, fresh_hosts: Callable[..., list[SandboxHost]]) -> None:
    mirror = sandbox.start_mirror()
    hosts = fresh_hosts("debian12", "debian13")
    codenames = {"debian12": "bookworm", "debian13": "trixie"}
    for host in hosts:
        with ssh(sandbox, host) as c:
            assert c.run("id -un", hide=True).stdout.strip() == "hostsetup"
            state = c.sudo("systemctl is-system-running", hide=True, warn=True).stdout.strip()
            assert state in ("running", "degraded")
            codename = codenames[host.flavor]
            c.sudo(f"sh -c 'curl -fsS {mirror.url}/linux/debian/gpg "
                   "-o /etc/apt/keyrings/docker.asc'", hide=True)
            sources = (f"Types: deb\nURIs: {mirror.url}/linux/debian\nSuites: {codename}\n"
                       "Components: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n")
            c.sudo(f"sh -c 'printf \"%s\" \"{sources}\" > /etc/apt/sources.list.d/docker.sources'",
                   hide=True)
            c.sudo("apt-get update -q", hide=True)
            c.sudo("env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "docker-ce docker-ce-cli containerd.io", hide=True)
            c.sudo(f"curl -fsS {mirror.url}/{mirror.build.tiny_image} -o /tmp/tiny.tar", hide=True)
        with ssh(sandbox, host, user="root") as root:
            root.run("docker load -i /tmp/tiny.tar", hide=True, timeout=120)
            out = root.run(f"docker run --rm {mirror.build.tiny_image_ref}", hide=True,
                           timeout=120).stdout
            assert out.strip() == mirror.build.tiny_image_output
            expected = mirror.build.versions[codenames[host.flavor]][0].split(":")[1].split("-")[0]
            version = root.run("docker version --format '{{.Server.Version}}'",
                               hide=True).stdout.strip()
            assert version.startswith(expected)


def test_unknown_host_key_is_refused(sandbox: Sandbox,
                                     fresh_hosts: Callable[..., list[SandboxHost]]) -> None:
    host = fresh_hosts("debian12")[0]
    conn = connect(host.target(), Config(overrides={"run": {"in_stream": False}}),
                   connect_kwargs={"key_filename": [str(sandbox.key_path)]})
    conn.client.set_missing_host_key_policy(__import__("paramiko").RejectPolicy())
    with pytest.raises(SSHException):
        conn.open()
