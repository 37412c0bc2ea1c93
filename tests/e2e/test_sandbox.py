"""The sandbox is real: two hosts boot systemd, accept our key as a sudo user,
install docker-ce from the local mirror and run a container offline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from fabric import Config
from paramiko.ssh_exception import SSHException

from hostsetup.connection import connect
from hostsetup.sandbox.engine import docker, remove_network
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror, preset_vhosts
from hostsetup.sandbox.images import ensure_image
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


def test_network_is_internal_and_hosts_reach_the_presets_on_the_mirror(
        sandbox: Sandbox, mirror: SandboxMirror, fresh_hosts: Callable[..., list[SandboxHost]]) -> None:
    """Proven from the networks' own settings (nothing is sent out to prove it): hosts and mirror
    sit on an internal network only; SSH is published by each host's gateway on 127.0.0.1 only."""
    host = fresh_hosts("debian12")[0]
    assert json.loads(docker("network", "inspect", sandbox.network).stdout)[0]["Internal"] is True
    publish = json.loads(docker("network", "inspect", sandbox.publish_network).stdout)[0]
    assert publish["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
    for name in (host.name, mirror.container):
        info = json.loads(docker("inspect", name).stdout)[0]
        assert list(info["NetworkSettings"]["Networks"]) == [sandbox.network], name
        assert not info["HostConfig"]["PortBindings"], name
    gateway = json.loads(docker("inspect", f"{host.name}-ssh").stdout)[0]
    assert [b["HostIp"] for b in gateway["HostConfig"]["PortBindings"]["22/tcp"]] == ["127.0.0.1"]
    mirror_ip = json.loads(docker("inspect", mirror.container).stdout)[0][
        "NetworkSettings"]["Networks"][sandbox.network]["IPAddress"]
    with ssh(sandbox, host) as c:
        for name in preset_vhosts():
            assert c.run(f"getent hosts {name}", hide=True).stdout.split()[0] == mirror_ip, name
        # The sandbox CA is trusted by the system store: no -k, no --cacert.
        key = c.run("curl -fsS https://mirrors.aliyun.com/docker-ce/linux/debian/gpg", hide=True).stdout
        assert "BEGIN PGP PUBLIC KEY BLOCK" in key
        wrong = c.run("curl -sS -o /dev/null -w '%{http_code}' https://mirrors.aliyun.com/linux/debian/gpg",
                      hide=True).stdout
        assert wrong == "404"  # each preset answers only under its own path layout
        # A name nobody in the sandbox knows does not exist, at once, and is asked of the mirror's
        # name server (not of the machine's resolver): apt's SRV lookups do this on every update.
        started = time.monotonic()
        assert not c.run("getent hosts _http._tcp.no-such-name.invalid", hide=True, warn=True).ok
        assert time.monotonic() - started < 3
    assert any(line == "dns _http._tcp.no-such-name.invalid NXDOMAIN"
               for line in docker("logs", mirror.container).stderr.splitlines())


def test_a_network_that_a_leftover_container_still_holds_is_removed(sandbox: Sandbox) -> None:
    """``down`` must not fail on an endpoint the engine still holds (seen in CI right after
    ``docker rm -f``): the leftover is disconnected and the network removed."""
    network, container = f"{sandbox.network}-leftover", f"hs-{sandbox.name}-leftover"
    docker("network", "create", "--internal", network)
    try:
        docker("run", "-d", "--name", container, "--network", network,
               ensure_image("debian12", sandbox.cache / "build", print), "sleep", "300")
        assert docker("network", "rm", network, check=False).returncode != 0  # what down() met
        assert remove_network(network) is True
        assert docker("network", "inspect", network, check=False).returncode != 0
        assert remove_network(network) is False
    finally:
        docker("rm", "-f", container, check=False)
        docker("network", "rm", network, check=False)
