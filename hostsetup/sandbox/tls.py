"""The sandbox's certificate authority and the mirror's server certificate.

Each sandbox makes its own CA (``openssl``, ECDSA P-256) the first time it is
prepared; its hosts trust it through the system store (``update-ca-certificates``),
as servers in a company trust an internal CA. The mirror's certificate names every
host name it answers for: each repository preset's and the sandbox's own.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hostsetup.sandbox.engine import SandboxError

DAYS = 825  # what browsers and most TLS stacks accept for a server certificate


@dataclass(frozen=True)
class SandboxTls:
    """Files under ``<sandbox home>/tls``: the CA (key kept private) and the server pair."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def names_file(self) -> Path:
        return self.directory / "server.names"

    def fingerprint(self) -> str:
        """sha256 of the server certificate and key: changes whenever either is remade."""
        digest = hashlib.sha256(self.server_cert.read_bytes() + self.server_key.read_bytes())
        return digest.hexdigest()[:16]


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    if proc.returncode != 0:
        raise SandboxError(f"openssl {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")


def _expiring(cert: Path, cwd: Path, days: int = 30) -> bool:
    """Whether ``cert`` expires within ``days`` (then it is made anew)."""
    proc = subprocess.run(["openssl", "x509", "-checkend", str(days * 86400), "-noout", "-in", cert.name],
                          capture_output=True, text=True, timeout=30, cwd=cwd)
    return proc.returncode != 0


def ensure_tls(directory: Path, names: Sequence[str], label: str) -> SandboxTls:
    """The CA (made once) and a server certificate for exactly ``names`` (remade when they change)."""
    tls = SandboxTls(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not tls.ca_cert.exists() or not tls.ca_key.exists() or _expiring(tls.ca_cert, cwd=directory):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", tls.ca_key.name, "-out", tls.ca_cert.name, "-days", str(DAYS),
                 "-subj", f"/O=hostsetup sandbox/CN=hostsetup sandbox CA ({label})",
                 "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
        tls.server_cert.unlink(missing_ok=True)
    wanted = "\n".join(names) + "\n"
    current = tls.names_file.read_text() if tls.names_file.exists() else ""
    if current != wanted or not tls.server_cert.exists() or not tls.server_key.exists() \
            or _expiring(tls.server_cert, cwd=directory):
        extensions = directory / "server.ext"
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            f"subjectAltName={','.join(f'DNS:{n}' for n in names)}\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", tls.server_key.name, "-out", "server.csr",
                 "-subj", f"/O=hostsetup sandbox/CN={names[0]}", cwd=directory)
        _openssl("x509", "-req", "-in", "server.csr", "-CA", tls.ca_cert.name, "-CAkey", tls.ca_key.name,
                 "-CAcreateserial", "-days", str(DAYS), "-extfile", extensions.name,
                 "-out", tls.server_cert.name, cwd=directory)
        for leftover in ("server.csr", "server.ext", "ca.srl"):
            (directory / leftover).unlink(missing_ok=True)
        tls.names_file.write_text(wanted)
    for private in (tls.ca_key, tls.server_key):
        private.chmod(0o600)
    return tls
