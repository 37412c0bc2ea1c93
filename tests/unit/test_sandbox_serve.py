"""The sandbox mirror's server and CA: each preset's name answers only under its own path,
over HTTPS with a certificate that a client trusting only the sandbox CA accepts."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostsetup.sandbox.hosts import MIRROR_ALIAS, preset_vhosts
from hostsetup.sandbox.serve import Fault, FaultFileError, faults_json, make_servers, parse_faults
from hostsetup.sandbox.tls import SandboxTls, ensure_tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SandboxTls:
    return ensure_tls(tmp_path_factory.mktemp("tls"), list(preset_vhosts()), "unit")


@pytest.fixture(scope="module")
def faults_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults") / "faults.json"


@pytest.fixture(scope="module")
def ports(tls: SandboxTls, tmp_path_factory: pytest.TempPathFactory, faults_file: Path) -> Iterator[tuple[int, int]]:
    root = tmp_path_factory.mktemp("root")
    (root / "linux" / "debian").mkdir(parents=True)
    (root / "linux" / "debian" / "gpg").write_text("KEY\n")
    (root / "linux" / "debian" / "a~b.deb").write_text("DEB\n")
    plain, secure = make_servers(str(root), str(tls.server_cert), str(tls.server_key), preset_vhosts(),
                                 http_port=0, https_port=0, bind="127.0.0.1", faults_file=str(faults_file))
    for server in (plain, secure):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield plain.server_address[1], secure.server_address[1]
    plain.shutdown()
    secure.shutdown()


def request(port: int, host: str, path: str, tls: SandboxTls | None = None, check_name: bool = True,
            method: str = "GET") -> tuple[str, bytes]:
    """(status line and headers, body)."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.ca_cert))  # the sandbox CA only
        context.check_hostname = check_name
        sock = context.wrap_socket(sock, server_hostname=host)
    with sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


def get(port: int, host: str, path: str, tls: SandboxTls | None = None, check_name: bool = True) -> tuple[int, bytes]:
    head, body = request(port, host, path, tls, check_name)
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


@pytest.fixture
def faults(faults_file: Path) -> Iterator[Callable[[list[Fault]], None]]:
    """Write the server's fault file (as ``SandboxMirror.set_faults`` does); removed after the test."""
    def write(rules: list[Fault]) -> None:
        faults_file.write_text(faults_json(rules))
    yield write
    faults_file.unlink(missing_ok=True)


def test_a_fault_answers_its_status_under_every_host_name_and_only_for_its_paths(
        ports: tuple[int, int], tls: SandboxTls, faults: Callable[[list[Fault]], None]) -> None:
    faults([Fault("/linux/*/gpg", 404)])
    head, _ = request(ports[1], "download.docker.com", "/linux/debian/gpg", tls)
    assert head.startswith("HTTP/1.1 404 Not Found\r\n")  # the standard reason, as clients print it
    assert get(ports[1], "mirrors.aliyun.com", "/docker-ce/linux/debian/gpg", tls)[0] == 404
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/gpg")[0] == 404
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/a~b.deb") == (200, b"DEB\n")
    assert get(ports[1], "mirrors.aliyun.com", "/linux/debian/gpg", tls)[0] == 404  # still the vhost's own 404


def test_a_fault_serves_other_content_in_place_of_the_file(ports: tuple[int, int], tls: SandboxTls,
                                                           faults: Callable[[list[Fault]], None]) -> None:
    faults([Fault("/linux/debian/gpg", body=b"OTHER KEY\n")])
    head, body = request(ports[1], "download.docker.com", "/linux/debian/gpg", tls)
    assert head.startswith("HTTP/1.1 200 ") and "Content-Length: 10" in head and body == b"OTHER KEY\n"
    head, body = request(ports[0], MIRROR_ALIAS, "/linux/debian/gpg", method="HEAD")
    assert head.startswith("HTTP/1.1 200 ") and "Content-Length: 10" in head and body == b""


def test_faults_are_read_per_request_first_match_wins_and_match_the_decoded_path(
        ports: tuple[int, int], faults: Callable[[list[Fault]], None], faults_file: Path) -> None:
    faults([Fault("/linux/debian/a~b.deb", 503), Fault("/linux/*", 404)])
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/a%7Eb.deb")[0] == 503  # apt quotes ~
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/gpg")[0] == 404
    faults([])
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/gpg") == (200, b"KEY\n")
    faults_file.unlink()
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/a%7Eb.deb") == (200, b"DEB\n")


def test_a_fault_for_one_host_name_leaves_the_others_alone(ports: tuple[int, int], tls: SandboxTls,
                                                           faults: Callable[[list[Fault]], None]) -> None:
    faults([Fault("/linux/*/gpg", 404, host="mirrors.aliyun.com")])
    assert get(ports[1], "mirrors.aliyun.com", "/docker-ce/linux/debian/gpg", tls)[0] == 404
    assert get(ports[1], "download.docker.com", "/linux/debian/gpg", tls) == (200, b"KEY\n")


def test_a_broken_fault_file_fails_every_request_loudly(ports: tuple[int, int], faults_file: Path,
                                                        faults: Callable[[list[Fault]], None]) -> None:
    faults_file.write_text("[{\"path\": ")
    assert get(ports[0], MIRROR_ALIAS, "/linux/debian/gpg")[0] == 500


@pytest.mark.parametrize("text", [
    "{}", "[1]", '[{"status": 404}]', '[{"path": "/x"}]', '[{"path": "/x", "status": 200}]',
    '[{"path": "/x", "status": "404"}]', '[{"path": "/x", "status": true}]', '[{"path": "/x", "body": "!!"}]',
    '[{"path": "/x", "status": 404, "body": ""}]', '[{"path": "/x", "status": 404, "when": 1}]', "not json",
    '[{"path": "/x", "status": 404, "host": 1}]',
])
def test_rules_that_are_not_a_status_or_a_body_are_refused(text: str) -> None:
    with pytest.raises(FaultFileError):
        parse_faults(text)


def test_fault_file_round_trip() -> None:
    rules = [Fault("/a/*", 404), Fault("/b", body=b"\x00\xff"), Fault("/c", 500, host="*.example")]
    assert parse_faults(faults_json(rules)) == rules


def _query(name: str, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return ident.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x00\x01\x00\x01"


def test_name_server_says_no_such_name_at_once() -> None:
    from hostsetup.sandbox.serve import serve_dns
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    threading.Thread(target=serve_dns, args=(port, "127.0.0.1"), daemon=True).start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    query = _query("_http._tcp.deb.example.invalid")
    for _ in range(50):  # the server thread may not be bound yet
        client.sendto(query, ("127.0.0.1", port))
        try:
            reply = client.recv(512)
            break
        except TimeoutError:
            continue
    assert reply[:2] == query[:2]                       # the same id
    assert reply[2] & 0x80 and reply[3] & 0x0F == 3      # an answer, NXDOMAIN
    assert reply[12:] == query[12:]                     # the question echoed, no records


def test_name_server_ignores_what_is_not_a_query() -> None:
    from hostsetup.sandbox.serve import nxdomain
    assert nxdomain(b"short") is None
    assert nxdomain(_query("a.b")[:2] + b"\x81\x80" + _query("a.b")[4:]) is None  # a reply, not a query
    assert nxdomain(_query("a.b")[:14]) is None                                     # cut off
