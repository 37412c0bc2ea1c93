"""The sandbox mirror's web server (standard library only: it runs in the mirror container).

- plain HTTP on port 80 serves the mirror tree at ``/`` under any name (the URL mirror);
- HTTPS on port 443 serves it per virtual host: each repository preset's host name
  answers only under that preset's own path (``download.docker.com`` at ``/``,
  ``mirrors.aliyun.com`` at ``/docker-ce/``, ...); any other host or path is a 404,
  as it would be from the real publisher.

Every request is logged on one line: ``<scheme> <host> <method> <path> <status>``.

    python3 serve.py ROOT CERT KEY host=prefix [host=prefix ...]
"""

from __future__ import annotations

import functools
import http.server
import ssl
import sys
import threading


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive: apt and dnf fetch many files per connection
    vhosts: dict[str, str] | None = None  # None: plain HTTP, the tree at / for any host
    scheme = "http"

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

    def do_GET(self) -> None:
        if self._route():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._route():
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
                 http_port: int = 80, https_port: int = 443, bind: str = "") -> tuple[Server, Server]:
    """The plain-HTTP server (any host, tree at /) and the HTTPS one (per virtual host)."""
    plain = type("PlainHandler", (MirrorHandler,), {"vhosts": None, "scheme": "http"})
    secure = type("TlsHandler", (MirrorHandler,), {"vhosts": vhosts, "scheme": "https"})
    http_server = Server((bind, http_port), functools.partial(plain, directory=root))
    https_server = Server((bind, https_port), functools.partial(secure, directory=root))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    # The handshake happens in each request's thread, not in the accept loop.
    https_server.socket = context.wrap_socket(https_server.socket, server_side=True,
                                              do_handshake_on_connect=False)
    return http_server, https_server


def main(argv: list[str]) -> None:
    root, cert, key, *pairs = argv
    vhosts = {host.lower(): prefix.rstrip("/") for host, prefix in (pair.split("=", 1) for pair in pairs)}
    http_server, https_server = make_servers(root, cert, key, vhosts)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    https_server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
