"""Host-key checking against real paramiko SSH servers on 127.0.0.1: accept-new remembers keys,
global known_hosts files count, and every ProxyJump hop is checked before anything logs in."""

from __future__ import annotations

import contextlib
import io
import logging
import select
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fabric import Config, Connection
from paramiko import (
    BadHostKeyException,
    Channel,
    Ed25519Key,
    ServerInterface,
    SSHException,
    Transport,
)
from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED
from paramiko.hostkeys import HostKeys
from paramiko.pkey import PKey

from hostsetup import connection
from hostsetup.connection import connect

PASSWORD = "unit-test-password"
TIMEOUT = 5


def known_hosts_line(name: str, key: PKey) -> str:
    """The line OpenSSH writes for ``key`` under ``name``."""
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def new_host_key() -> Ed25519Key:
    """A fresh Ed25519 host key (paramiko cannot generate one itself)."""
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    return Ed25519Key(file_obj=io.StringIO(pem.decode()))


class FakeSshServer:
    """An SSH server on 127.0.0.1: shows ``host_key``, takes one password, and as a jump host
    forwards ``direct-tcpip`` channels to other ports of 127.0.0.1. ``events`` says what a client
    got to do: ``connect``, ``auth <user>``, ``forward <port>``."""

    def __init__(self, host_key: PKey) -> None:
        self.host_key = host_key
        self.events: list[str] = []
        self.transports: list[Transport] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for transport in self.transports:
            transport.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.events.append("connect")
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        transport = Transport(sock)
        self.transports.append(transport)
        transport.add_server_key(self.host_key)
        destinations: dict[int, int] = {}
        try:
            transport.start_server(server=_Interface(self, destinations))
        except (SSHException, EOFError, OSError):
            return
        while transport.is_active():
            channel = transport.accept(timeout=0.2)
            if channel is not None and channel.get_id() in destinations:
                target = socket.create_connection(("127.0.0.1", destinations[channel.get_id()]), timeout=TIMEOUT)
                threading.Thread(target=_pipe, args=(channel, target), daemon=True).start()


class _Interface(ServerInterface):
    def __init__(self, server: FakeSshServer, destinations: dict[int, int]) -> None:
        self.server = server
        self.destinations = destinations

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        self.server.events.append(f"auth {username}")
        return AUTH_SUCCESSFUL if password == PASSWORD else AUTH_FAILED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple[str, int],
                                           destination: tuple[str, int]) -> int:
        host, port = destination
        if host != "127.0.0.1":  # these tests send traffic to 127.0.0.1 only
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.server.events.append(f"forward {port}")
        self.destinations[chanid] = port
        return OPEN_SUCCEEDED


def _pipe(channel: Channel, sock: socket.socket) -> None:
    """Relay bytes both ways until either side ends (a client closing early is no error here)."""
    with contextlib.suppress(OSError, EOFError), sock, channel:
        while True:
            ends: list[Channel | socket.socket] = [channel, sock]
            ready, _, _ = select.select(ends, [], [], TIMEOUT)
            if not ready:
                return
            for source, sink in ((channel, sock), (sock, channel)):
                if source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)


Servers = Callable[..., FakeSshServer]


@pytest.fixture
def servers() -> Iterator[Servers]:
    started: list[FakeSshServer] = []

    def start(host_key: PKey | None = None) -> FakeSshServer:
        started.append(FakeSshServer(host_key or new_host_key()))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: ``~/.ssh/known_hosts`` is never the real one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def ssh_config(tmp_path: Path, text: str) -> Config:
    """A Fabric config reading only this ssh_config (as ``hostsetup -S``), with the test
    servers' password for every hop; the global known_hosts file is one of the test's own."""
    path = tmp_path / "ssh_config"
    path.write_text(f"{text}\nHost *\n  User hostsetup\n  GlobalKnownHostsFile {tmp_path / 'global_known_hosts'}\n")
    return Config(runtime_ssh_path=str(path), overrides={
        "connect_kwargs": {"password": PASSWORD, "look_for_keys": False, "allow_agent": False},
        "timeouts": {"connect": TIMEOUT}})


def host_entry(alias: str, server: FakeSshServer, *options: str) -> str:
    return "\n".join([f"Host {alias}", "  HostName 127.0.0.1", f"  Port {server.port}",
                      *(f"  {option}" for option in options)]) + "\n"


def pin(path: Path, *entries: tuple[FakeSshServer, PKey]) -> None:
    path.write_text("".join(known_hosts_line(f"[127.0.0.1]:{server.port}", key) for server, key in entries))


def open_and_close(target: str, config: Config) -> Connection:
    """Open and close ``target``, and its hops: Fabric closes neither a hop nor a transport
    left behind by a refused host key, and their threads would outlive the test."""
    conn = connect(target, config)
    try:
        conn.open()
    finally:
        hop: object = conn
        while isinstance(hop, Connection):
            hop.client.close()
            hop = hop.gateway
    return conn


def logins(server: FakeSshServer) -> list[str]:
    return [event for event in server.events if event.startswith("auth")]


# -- accept-new remembers ------------------------------------------------------------------

def test_accept_new_saves_the_key_and_then_refuses_another(tmp_path: Path, servers: Servers,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The first connection adds the key to the ssh_config's UserKnownHostsFile (0600); the second
    is quiet; a server showing another key afterwards is refused before the login."""
    server = servers()
    known = tmp_path / "known_hosts"
    config = ssh_config(tmp_path, host_entry("box", server, f"UserKnownHostsFile {known}"))
    open_and_close("box", config)
    assert known.read_text() == f"[127.0.0.1]:{server.port} ssh-ed25519 {server.host_key.get_base64()}\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hostsetup.connection"):
        open_and_close("box", config)
    assert caplog.records == []

    server.host_key = new_host_key()
    with pytest.raises(BadHostKeyException):
        open_and_close("box", config)
    assert logins(server) == ["auth hostsetup", "auth hostsetup"]
    assert known.read_text().count("\n") == 1


def test_accept_new_without_a_file_creates_a_private_dot_ssh(tmp_path: Path, servers: Servers, home: Path) -> None:
    server = servers()
    open_and_close("box", ssh_config(tmp_path, host_entry("box", server)))
    known = home / ".ssh" / "known_hosts"
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert known.read_text() == known_hosts_line(f"[127.0.0.1]:{server.port}", server.host_key)


def test_hash_known_hosts_saves_a_hashed_name_that_still_matches(tmp_path: Path, servers: Servers) -> None:
    server = servers()
    known = tmp_path / "known_hosts"
    open_and_close("box", ssh_config(tmp_path, host_entry("box", server, f"UserKnownHostsFile {known}",
                                                          "HashKnownHosts yes")))
    assert known.read_text().startswith("|1|")
    assert "127.0.0.1" not in known.read_text()
    assert HostKeys(str(known)).check(f"[127.0.0.1]:{server.port}", server.host_key)


def test_strict_yes_refuses_an_unknown_host_and_saves_nothing(tmp_path: Path, servers: Servers) -> None:
    server = servers()
    known = tmp_path / "known_hosts"
    with pytest.raises(SSHException, match="not found in known_hosts"):
        open_and_close("box", ssh_config(tmp_path, host_entry("box", server, f"UserKnownHostsFile {known}",
                                                              "StrictHostKeyChecking yes")))
    assert logins(server) == []
    assert not known.exists()


def test_remember_host_key_appends_after_a_last_line_without_newline(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("# kept\nold ssh-ed25519 AAAA")
    connection.remember_host_key(known, "new ssh-ed25519 BBBB\n")
    assert known.read_text() == "# kept\nold ssh-ed25519 AAAA\nnew ssh-ed25519 BBBB\n"


# -- global known_hosts files --------------------------------------------------------------

@pytest.mark.parametrize("strict", ["yes", "accept-new", "no"])
def test_a_key_only_in_the_global_file_is_trusted_and_another_refused(tmp_path: Path, servers: Servers,
                                                                      strict: str) -> None:
    server = servers()
    pin(tmp_path / "global_known_hosts", (server, server.host_key))
    known = tmp_path / "known_hosts"
    config = ssh_config(tmp_path, host_entry("box", server, f"UserKnownHostsFile {known}",
                                             f"StrictHostKeyChecking {strict}"))
    open_and_close("box", config)
    assert not known.exists()  # a key known globally is not new

    server.host_key = new_host_key()
    with pytest.raises(BadHostKeyException):
        open_and_close("box", config)
    assert logins(server) == ["auth hostsetup"]


def test_default_global_files_are_read(tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GlobalKnownHostsFile, OpenSSH's two global files are read (here moved into tmp)."""
    openssh_defaults = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
    assert getattr(connection, "DEFAULT_GLOBAL_KNOWN_HOSTS", openssh_defaults) == openssh_defaults
    defaults = (str(tmp_path / "ssh_known_hosts"), str(tmp_path / "ssh_known_hosts2"))
    monkeypatch.setattr(connection, "DEFAULT_GLOBAL_KNOWN_HOSTS", defaults, raising=False)
    server = servers()
    pin(Path(defaults[1]), (server, server.host_key))
    path = tmp_path / "ssh_config"
    path.write_text(host_entry("box", server, "User hostsetup", "StrictHostKeyChecking yes",
                               f"UserKnownHostsFile {tmp_path / 'none'}"))
    open_and_close("box", Config(runtime_ssh_path=str(path), overrides={
        "connect_kwargs": {"password": PASSWORD, "look_for_keys": False, "allow_agent": False}}))
    assert logins(server) == ["auth hostsetup"]


# -- ProxyJump hops ---------------------------------------------------------------------------

def jump_config(tmp_path: Path, target: FakeSshServer, hops: list[FakeSshServer], known: Path,
                *hop_options: str) -> Config:
    """``Host target`` reached over ``ProxyJump hop1[,hop2]``, the hops' entries holding only
    ``hop_options`` (hops are aliases: Fabric takes a hop on the target's HostName for a loop)."""
    names = [f"hop{index}" for index, _ in enumerate(hops, 1)]
    entries = [host_entry("target", target, f"ProxyJump {','.join(names)}", f"UserKnownHostsFile {known}",
                          "StrictHostKeyChecking yes")]
    entries += [host_entry(name, hop, *hop_options) for name, hop in zip(names, hops, strict=True)]
    return ssh_config(tmp_path, "".join(entries))


def test_a_hop_showing_another_key_than_the_pinned_one_is_refused_before_any_login(
        tmp_path: Path, servers: Servers) -> None:
    """With the pinned key the hop logs in and forwards to the target; once it shows another key,
    the client stops at the hop's key exchange: no login there, no forwarding, nothing at the target."""
    hop, target = servers(), servers()
    known = tmp_path / "known_hosts"
    pin(known, (target, target.host_key), (hop, hop.host_key))
    config = jump_config(tmp_path, target, [hop], known)
    conn = open_and_close("target", config)
    assert isinstance(conn.gateway, Connection)
    assert hop.events == ["connect", "auth hostsetup", f"forward {target.port}"]
    assert target.events == ["connect", "auth hostsetup"]

    hop.host_key = new_host_key()
    with pytest.raises(BadHostKeyException):
        open_and_close("target", config)
    assert hop.events[3:] == ["connect"]
    assert target.events == ["connect", "auth hostsetup"]


def test_an_unknown_hop_follows_its_own_strict_host_key_checking(tmp_path: Path, servers: Servers) -> None:
    hop, target = servers(), servers()
    known = tmp_path / "known_hosts"
    pin(known, (target, target.host_key))
    with pytest.raises(SSHException, match="not found in known_hosts"):
        open_and_close("target", jump_config(tmp_path, target, [hop], known, "StrictHostKeyChecking yes"))
    assert logins(hop) == []
    assert target.events == []


def test_an_unknown_hop_under_accept_new_is_saved_in_the_file_of_the_host_behind_it(
        tmp_path: Path, servers: Servers, home: Path) -> None:
    hop, target = servers(), servers()
    known = tmp_path / "known_hosts"
    pin(known, (target, target.host_key))
    open_and_close("target", jump_config(tmp_path, target, [hop], known, "StrictHostKeyChecking accept-new"))
    assert known.read_text().splitlines()[1] == known_hosts_line(f"[127.0.0.1]:{hop.port}", hop.host_key).strip()
    assert not (home / ".ssh").exists()


@pytest.mark.parametrize("bad_hop", [0, 1])
def test_every_hop_of_a_two_hop_jump_is_checked(tmp_path: Path, servers: Servers, bad_hop: int) -> None:
    hops, target = [servers(), servers()], servers()
    known = tmp_path / "known_hosts"
    keys = [hop.host_key for hop in hops]
    keys[bad_hop] = new_host_key()
    pin(known, (target, target.host_key), *zip(hops, keys, strict=True))
    config = jump_config(tmp_path, target, hops, known)
    with pytest.raises(BadHostKeyException):
        open_and_close("target", config)
    assert logins(hops[bad_hop]) == []
    assert target.events == []

    pin(known, (target, target.host_key), *((hop, hop.host_key) for hop in hops))
    open_and_close("target", config)
    assert logins(target) == ["auth hostsetup"]


RELAY = """\
import socket, sys, threading
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
def upstream():
    while data := sys.stdin.buffer.read1(65536):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := sock.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


def test_a_proxy_command_gateway_is_left_to_itself_and_the_target_still_checked(
        tmp_path: Path, servers: Servers) -> None:
    """ProxyCommand is a string, not a Connection: nothing to harden on it, and it must not break."""
    server = servers()
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    known = tmp_path / "known_hosts"
    pin(known, (server, server.host_key))
    config = ssh_config(tmp_path, host_entry("box", server, f"ProxyCommand {sys.executable} {relay} %p",
                                             f"UserKnownHostsFile {known}", "StrictHostKeyChecking yes"))
    conn = open_and_close("box", config)
    assert conn.gateway == f"{sys.executable} {relay} {server.port}"  # paramiko expands %p
    assert logins(server) == ["auth hostsetup"]

    server.host_key = new_host_key()
    with pytest.raises(BadHostKeyException):
        open_and_close("box", config)
