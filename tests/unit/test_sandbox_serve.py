"""The sandbox mirror's server and CA: each preset's name answers only under its own path,
over HTTPS with a certificate that a client trusting only the sandbox CA accepts."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostsetup.sandbox.hosts import MIRROR_ALIAS, preset_vhosts
from hostsetup.sandbox.serve import make_servers
from hostsetup.sandbox.tls import SandboxTls, ensure_tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SandboxTls:
    return ensure_tls(tmp_path_factory.mktemp("tls"), list(preset_vhosts()), "unit")


@pytest.fixture(scope="module")
def ports(tls: SandboxTls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    root = tmp_path_factory.mktemp("root")
    (root / "linux" / "debian").mkdir(parents=True)
    (root / "linux" / "debian" / "gpg").write_text("KEY\n")
    plain, secure = make_servers(str(root), str(tls.server_cert), str(tls.server_key), preset_vhosts(),
                                 http_port=0, https_port=0, bind="127.0.0.1")
    for server in (plain, secure):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield plain.server_address[1], secure.server_address[1]
    plain.shutdown()
    secure.shutdown()


def get(port: int, host: str, path: str, tls: SandboxTls | None = None, check_name: bool = True) -> tuple[int, bytes]:
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.ca_cert))  # the sandbox CA only
        context.check_hostname = check_name
        sock = context.wrap_socket(sock, server_hostname=host)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(("host", "path", "status"), [
    ("download.docker.com", "/linux/debian/gpg", 200),
    ("download.docker.com", "/docker-ce/linux/debian/gpg", 404),   # Docker has no /docker-ce prefix
    ("mirrors.aliyun.com", "/docker-ce/linux/debian/gpg", 200),
    ("mirrors.aliyun.com", "/linux/debian/gpg", 404),               # mirrors publish below /docker-ce
    ("mirrors.tuna.tsinghua.edu.cn", "/docker-ce/linux/debian/gpg", 200),
    ("mirror.azure.cn", "/docker-ce/linux/debian/gpg", 200),
    ("mirrors.ustc.edu.cn", "/docker-ce-x/linux/debian/gpg", 404),   # a prefix is a whole path segment
    (MIRROR_ALIAS, "/linux/debian/gpg", 200),
])
def test_https_serves_each_preset_under_its_own_path(ports: tuple[int, int], tls: SandboxTls, host: str,
                                                     path: str, status: int) -> None:
    code, body = get(ports[1], host, path, tls)
    assert code == status
    if status == 200:
        assert body == b"KEY\n"


def test_https_answers_404_for_a_name_it_does_not_stand_in_for(ports: tuple[int, int], tls: SandboxTls) -> None:
    assert get(ports[1], "example.org", "/linux/debian/gpg", tls, check_name=False)[0] == 404


def test_plain_http_serves_the_tree_at_the_root_for_any_name(ports: tuple[int, int]) -> None:
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/gpg") == (200, b"KEY\n")


def test_certificate_names_every_preset_and_is_refused_for_other_names(ports: tuple[int, int],
                                                                        tls: SandboxTls) -> None:
    for host in preset_vhosts():
        get(ports[1], host, "/", tls)  # the handshake verifies the name against the certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        get(ports[1], "example.org", "/", tls)
    with pytest.raises(ssl.SSLCertVerificationError):  # a client with only the public roots refuses it
        sock = socket.create_connection(("127.0.0.1", ports[1]), timeout=10)
        ssl.create_default_context().wrap_socket(sock, server_hostname="download.docker.com").close()


def test_ca_made_once_and_server_certificate_remade_when_names_change(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path, ["a.example", "b.example"], "unit")
    ca, cert = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = ensure_tls(tmp_path, ["a.example", "b.example"], "unit")
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, cert)
    changed = ensure_tls(tmp_path, ["a.example", "c.example"], "unit")
    assert changed.ca_cert.read_bytes() == ca and changed.server_cert.read_bytes() != cert
    assert oct(first.ca_key.stat().st_mode & 0o777) == "0o600"
