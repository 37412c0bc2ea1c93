"""The one predicate for listen addresses that hand out root: every form dockerd reads as TCP."""

from __future__ import annotations

import pytest

from hostsetup.daemon.listeners import hosts_list, insecure_hosts, is_tcp, tls_from_flags, tls_verified

TLS = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
       "tlskey": "/etc/docker/key.pem"}


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:2375", "0.0.0.0:2375", ":2375", "127.0.0.1:2375", "tcp://",
                                     "localhost", "", "ssh://me@there", "npipe:////./pipe/docker_engine",
                                     "UNIX:///run/docker.sock", 2375, None])
def test_everything_not_unix_or_fd_counts_as_tcp(address: object) -> None:
    assert is_tcp(address)


@pytest.mark.parametrize("address", ["unix:///var/run/docker.sock", "unix://", "fd://", "fd://3",
                                     " unix:///run/docker.sock"])
def test_local_sockets(address: str) -> None:
    assert not is_tcp(address)


def test_flags() -> None:
    argv = ["/usr/bin/dockerd", "-H", "fd://", "--tlsverify", "--tlscacert", "/ca.pem", "--tlscert=/cert.pem",
            "--tlskey=/key.pem"]
    assert tls_from_flags(argv) == {"tlsverify": True, "tlscacert": "/ca.pem", "tlscert": "/cert.pem",
                                    "tlskey": "/key.pem"}
    assert tls_from_flags(["--tlsverify=false"]) == {"tlsverify": False}
    assert tls_from_flags(["--tlsverify=1", "--tlskey"]) == {"tlsverify": True, "tlskey": ""}


@pytest.mark.parametrize(("config", "argv", "verified"), [
    (TLS, [], True),
    ({"tlsverify": True}, [], False),                       # no CA: nothing says which clients to trust
    ({"tls": True, **{k: v for k, v in TLS.items() if k != "tlsverify"}}, [], False),  # encrypted, open to all
    ({**TLS, "tlsverify": "true"}, [], False),              # not a JSON boolean
    ({}, ["--tlsverify", "--tlscacert=/a", "--tlscert=/b", "--tlskey=/c"], True),
    ({"tlsverify": False}, ["--tlsverify", "--tlscacert=/a", "--tlscert=/b", "--tlskey=/c"], False),  # file wins
])
def test_tls_verified(config: dict[str, object], argv: list[str], verified: bool) -> None:
    assert tls_verified(config, argv) is verified


def test_insecure_hosts() -> None:
    hosts = ["fd://", "unix:///run/docker.sock", "0.0.0.0:2375", "tcp://10.0.0.1:2376"]
    assert insecure_hosts(hosts, {}) == ["0.0.0.0:2375", "tcp://10.0.0.1:2376"]
    assert insecure_hosts(hosts, TLS) == []
    assert hosts_list("tcp://x:1") == ["tcp://x:1"] and hosts_list(None) == [] and hosts_list(["a"]) == ["a"]
