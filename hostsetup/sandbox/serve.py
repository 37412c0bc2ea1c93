"""The sandbox mirror's web server (standard library only: it runs in the mirror container).

- plain HTTP on port 80 serves the mirror tree at ``/`` under any name (the URL mirror);
- HTTPS on port 443 serves it per virtual host: each repository preset's host name
  answers only under that preset's own path (``download.docker.com`` at ``/``,
  ``mirrors.aliyun.com`` at ``/docker-ce/``, ...); any other host or path is a 404,
  as it would be from the real publisher.

Every request is logged on one line: ``<scheme> <host> <method> <path> <status>``.

On UDP port 53 it is also the sandbox network's name server for names the engine does not know:
each is answered "no such name" at once (see ``serve_dns``).

Faults on request (tests of what a client does when the mirror misbehaves): a JSON file
(``FAULTS_FILE`` unless ``--faults PATH``), read on every request, lists rules
``{"path": GLOB, "status": CODE}`` (answer CODE) or ``{"path": GLOB, "body": BASE64}`` (serve
that content instead, 200), each optionally with ``"host": GLOB`` (default: any). The path GLOB
(``fnmatch``) is matched against the path in the mirror tree, after a preset's prefix is taken
off, so one rule holds under every host name; the host GLOB against the request's host name.
The first rule that matches wins. No file: no faults. A file that cannot be read as such rules makes every
request a 500, so a broken fault is never mistaken for a working mirror.

    python3 serve.py [--faults PATH] ROOT CERT KEY host=prefix [host=prefix ...]
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import functools
import http.server
import json
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from urllib.parse import unquote

FAULTS_FILE = "/tmp/hostsetup-mirror-faults.json"


@dataclass(frozen=True)
class Fault:
    """Answer requests for paths matching ``pattern`` with ``status``, or 200 and ``body``."""

    pattern: str
    status: int = 200
    body: bytes | None = None
    host: str = "*"


class FaultFileError(ValueError):
    """The fault file is not a list of rules."""


def parse_faults(text: str) -> list[Fault]:
    """The rules of a fault file (see the module's docstring)."""
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise FaultFileError(f"not JSON: {exc}") from None
    if not isinstance(rules, list):
        raise FaultFileError("not a list of rules")
    faults = []
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("path"), str) \
                or not isinstance(rule.get("host", ""), str) \
                or set(rule) - {"path", "status", "body", "host"} or ("status" in rule) == ("body" in rule):
            raise FaultFileError(f"rule {rule!r}: want {{path, status}} or {{path, body}}, and a host if any")
        host = rule.get("host", "*")
        if "status" in rule:
            status = rule["status"]
            if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
                raise FaultFileError(f"rule {rule!r}: status must be an error code (400-599)")
            faults.append(Fault(rule["path"], status, host=host))
        else:
            try:
                body = base64.b64decode(rule["body"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise FaultFileError(f"rule for {rule['path']!r}: body is not base64") from None
            faults.append(Fault(rule["path"], 200, body, host))
    return faults


def faults_json(faults: list[Fault]) -> str:
    """A fault file holding ``faults`` (what ``parse_faults`` reads back)."""
    return json.dumps([{"path": f.pattern, "host": f.host,
                        **({"body": base64.b64encode(f.body).decode()} if f.body is not None else {"status": f.status})}
                       for f in faults])


def load_faults(path: str) -> list[Fault]:
    """The rules in force now: none without the file; ``FaultFileError`` for a broken one."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise FaultFileError(str(exc)) from None
    return parse_faults(text)


def matching_fault(faults: list[Fault], path: str, host: str = "") -> Fault | None:
    return next((f for f in faults if fnmatch.fnmatchcase(path, f.pattern) and fnmatch.fnmatchcase(host, f.host)),
                None)


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive: apt and dnf fetch many files per connection
    vhosts: dict[str, str] | None = None  # None: plain HTTP, the tree at / for any host
    scheme = "http"
    faults_file = FAULTS_FILE

    def _route(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        self.log_host = host
        if self.vhosts is None:
            return True
        prefix = self.vhosts.get(host)
        path = self.path.split("?", 1)[0]
        if prefix is None or not (prefix == "" or path == prefix or path.startswith(prefix + "/")):
            self.send_error(404, f"nothing is published at {path} on {host or 'this server'}")
            return False
        self.path = self.path[len(prefix):] or "/"
        return True

    def _faulted(self, head: bool) -> bool:
        """Answer from the fault file if a rule matches this request (True: answered)."""
        try:
            fault = matching_fault(load_faults(self.faults_file), unquote(self.path.split("?", 1)[0]),
                                   getattr(self, "log_host", ""))
        except FaultFileError as exc:
            self.send_error(500, None, f"the mirror's fault file {self.faults_file} is broken: {exc}")
            return True
        if fault is None:
            return False
        if fault.body is None:
            # The standard reason phrase, as a real server's: clients print it.
            self.send_error(fault.status, None, f"fault on request: {fault.pattern} answers {fault.status}")
            return True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(fault.body)))
        self.end_headers()
        if not head:
            self.wfile.write(fault.body)
        return True

    def do_GET(self) -> None:
        if self._route() and not self._faulted(head=False):
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._route() and not self._faulted(head=True):
            super().do_HEAD()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method, _, rest = (self.requestline or "").partition(" ")
        path = rest.rsplit(" ", 1)[0]
        sys.stderr.write(f"{self.scheme} {getattr(self, 'log_host', '-')} {method} {path} {code}\n")

    def log_message(self, format: str, *args: object) -> None:  # errors only; requests above
        if not format.startswith(("\"%s\" %s", "code %d")):
            sys.stderr.write(f"{self.scheme} {format % args}\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        sys.stderr.write(f"error from {client_address[0]}: {sys.exc_info()[1]!r}\n")


def make_servers(root: str, cert: str, key: str, vhosts: dict[str, str],
                 http_port: int = 80, https_port: int = 443, bind: str = "",
                 faults_file: str = FAULTS_FILE) -> tuple[Server, Server]:
    """The plain-HTTP server (any host, tree at /) and the HTTPS one (per virtual host)."""
    common = {"faults_file": faults_file}
    plain = type("PlainHandler", (MirrorHandler,), {"vhosts": None, "scheme": "http", **common})
    secure = type("TlsHandler", (MirrorHandler,), {"vhosts": vhosts, "scheme": "https", **common})
    http_server = Server((bind, http_port), functools.partial(plain, directory=root))
    https_server = Server((bind, https_port), functools.partial(secure, directory=root))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    # The handshake happens in each request's thread, not in the accept loop.
    https_server.socket = context.wrap_socket(https_server.socket, server_side=True,
                                              do_handshake_on_connect=False)
    return http_server, https_server


def query_name(packet: bytes) -> tuple[str, int] | None:
    """The first question's name and where the question ends (None: not a DNS query we can read)."""
    if len(packet) < 12 or packet[2] & 0x80 or int.from_bytes(packet[4:6], "big") < 1:
        return None
    labels, i = [], 12
    while i < len(packet) and packet[i] != 0:
        if packet[i] & 0xC0:  # no compression in a question we answer
            return None
        labels.append(packet[i + 1:i + 1 + packet[i]].decode("ascii", "replace"))
        i += packet[i] + 1
    if i + 5 > len(packet):
        return None
    return ".".join(labels), i + 5


def nxdomain(packet: bytes) -> bytes | None:
    """The answer "no such name" to a query: its id and question, flags QR, RD (as asked), RA, NXDOMAIN."""
    parsed = query_name(packet)
    if parsed is None:
        return None
    _, end = parsed
    flags = 0x8000 | (int.from_bytes(packet[2:4], "big") & 0x7900) | 0x0080 | 3
    return packet[:2] + flags.to_bytes(2, "big") + b"\x00\x01\x00\x00\x00\x00\x00\x00" + packet[12:end]


def serve_dns(port: int = 53, bind: str = "") -> None:
    """The sandbox network's name server for names the engine does not know: every such name does
    not exist, at once. The hosts' engine DNS forwards unknown names here (``--dns``), instead of to
    the machine's own resolver, which an internal network cannot reach (a lookup would wait 20 s,
    and nothing should leave the sandbox). Each query is logged as ``dns <name> NXDOMAIN``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, port))
    while True:
        packet, peer = sock.recvfrom(4096)
        reply = nxdomain(packet)
        if reply is not None:
            sock.sendto(reply, peer)
            sys.stderr.write(f"dns {query_name(packet)[0]} NXDOMAIN\n")  # type: ignore[index]


def main(argv: list[str]) -> None:
    faults_file = FAULTS_FILE
    if argv[:1] == ["--faults"]:
        faults_file, argv = argv[1], argv[2:]
    root, cert, key, *pairs = argv
    vhosts = {host.lower(): prefix.rstrip("/") for host, prefix in (pair.split("=", 1) for pair in pairs)}
    http_server, https_server = make_servers(root, cert, key, vhosts, faults_file=faults_file)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    threading.Thread(target=serve_dns, daemon=True).start()
    https_server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
