"""Registries on hosts: names, CA certificates in ``/etc/docker/certs.d`` and logins in each
user's ``~/.docker/config.json``. Pure: planning reads these, nothing here does I/O on a host.

A registry is named as Docker names it: ``host[:port]`` (``registry.example.com:5000``), the
name ``/etc/docker/certs.d/<name>/`` and the ``auths`` key of ``config.json`` use. Docker Hub's
key is ``https://index.docker.io/v1/``, as ``docker login`` writes it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hostsetup.errors import HostsetupError
from hostsetup.render import json_object

CERTS_DIR = "/etc/docker/certs.d"
HUB_NAMES = ("docker.io", "index.docker.io")
HUB_AUTH_KEY = "https://index.docker.io/v1/"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


class RegistryError(HostsetupError):
    """A registry name, certificate or credential that cannot be used as given."""


def registry_name(text: str, what: str = "registry") -> str:
    """``host[:port]`` as Docker names a registry, from what a user typed (``https://`` and a
    trailing ``/`` allowed; a path, user info or anything else is refused)."""
    raw = text.strip()
    value = raw.lower()
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
    value = value.rstrip("/")
    if not value or any(c in value for c in "/@?#\\ \t\n'\"$`;&|<>*"):
        raise RegistryError(f"{what} {raw!r} is not a registry name: give host[:port] (registry.example.com:5000)")
    host, port = value, ""
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1:] if end > 0 else "?"
        if rest and (not rest.startswith(":") or rest == ":"):
            raise RegistryError(f"{what} {raw!r}: a bracketed IPv6 address must be [address] or [address]:port")
        host, port = value[1:end], rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RegistryError(f"{what} {raw!r}: {host!r} is not an IPv6 address") from None
    elif ":" in value:
        host, _, port = value.rpartition(":")
    if (port or value.endswith(":")) and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise RegistryError(f"{what} {raw!r}: the port must be a number from 1 to 65535")
    if not value.startswith("[") and not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise RegistryError(f"{what} {raw!r}: {host!r} is not a host name")
    return value


_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_reference(text: str, what: str = "--pull") -> str:
    """An image reference as ``docker pull`` takes it (``registry:5000/team/app:1``), checked for shape:
    an optional registry (``registry_name``), path components, an optional tag and digest."""
    value = text.strip()
    problem = RegistryError(f"{what} {text!r} is not an image reference (registry.example.com:5000/team/app:1)")
    name, _, digest = value.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise problem
    slash = name.rfind("/")
    if ":" in name[slash + 1:]:
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise problem
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        try:
            registry_name(parts[0], what)
        except RegistryError:
            raise problem from None
        parts = parts[1:]
    if not value or len(value) > 255 or not all(_PATH_COMPONENT.fullmatch(p) for p in parts):
        raise problem
    return value


def is_hub(name: str) -> bool:
    return name in HUB_NAMES


def auth_key(name: str) -> str:
    """The ``auths`` key Docker's client looks a registry's credentials up by."""
    return HUB_AUTH_KEY if is_hub(name) else name


def ca_path(name: str) -> str:
    """Where dockerd looks for the CA that signed ``name``'s certificate (read per pull)."""
    return f"{CERTS_DIR}/{name}/ca.crt"


def check_ca(text: str, origin: str) -> str:
    """``text`` if it holds PEM certificates and nothing else; else RegistryError naming ``origin``."""
    blocks = _PEM_CERT.findall(text)
    if not blocks:
        raise RegistryError(f"{origin} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if "PRIVATE KEY" in text:
        raise RegistryError(f"{origin} holds a private key: give only the CA certificate")
    from cryptography import x509  # paramiko's dependency; loaded only when a CA is given

    for block in blocks:
        try:
            x509.load_der_x509_certificate(base64.b64decode("".join(block.split()), validate=True))
        except ValueError as exc:
            raise RegistryError(f"{origin}: a certificate in it does not parse ({exc})") from None
    return text if text.endswith("\n") else text + "\n"


# --- logins: ~/.docker/config.json ---------------------------------------------------------------

def registry_username(username: str) -> str:
    """A registry user name as the ``auth`` value can hold it: no ':' and no control characters."""
    if not username or ":" in username or any(ord(ch) < 32 or ord(ch) == 127 for ch in username) \
            or len(username) > 255:
        raise RegistryError(f"user name {username!r}: a registry user name has no ':' and no control characters")
    return username


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    @classmethod
    def checked(cls, username: str, password: str) -> Credentials:
        """As ``docker login --password-stdin`` reads them: one final newline (and then a carriage
        return) dropped, so the stored login is the one the registry accepted. A user name with ':'
        or a control character, or an empty password, is refused."""
        registry_username(username)
        password = password.removesuffix("\n").removesuffix("\r")
        if not password:
            raise RegistryError("the password is empty")
        return cls(username, password)

    @property
    def auth(self) -> str:
        """The ``auth`` value of a config.json entry (what ``docker login`` writes)."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


class ClientConfigError(RegistryError):
    """A user's config.json that hostsetup must not rewrite (not JSON, a credential helper)."""


def parse_client_config(text: str | None, where: str) -> dict[str, Any]:
    """A user's config.json as a dict ({} when absent or empty)."""
    if text is None or not text.strip():
        return {}
    try:
        return json_object(text)
    except ValueError as exc:
        raise ClientConfigError(f"{where} is {exc}; fix or move it first") from None


def helper_for(config: dict[str, Any], key: str) -> str:
    """The credential helper Docker's client would use for ``key`` ("" for the file itself)."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(key), str) and helpers[key]:
        return f"docker-credential-{helpers[key]} (credHelpers)"
    store = config.get("credsStore")
    return f"docker-credential-{store} (credsStore)" if isinstance(store, str) and store else ""


def client_config_text(config: dict[str, Any]) -> str:
    """How hostsetup writes a config.json: the Docker client's own layout (tab indent)."""
    return json.dumps(config, indent="\t") + "\n"


def with_login(config: dict[str, Any], key: str, credentials: Credentials) -> dict[str, Any]:
    """``config`` with ``key``'s entry set to ``credentials`` (every other key kept)."""
    auths = dict(config.get("auths") or {}) if isinstance(config.get("auths"), dict) else {}
    entry = dict(auths.get(key) or {}) if isinstance(auths.get(key), dict) else {}
    entry = {k: v for k, v in entry.items() if k not in ("username", "password", "identitytoken")}
    auths[key] = {**entry, "auth": credentials.auth}
    return {**config, "auths": auths}


def login_keys(key: str) -> set[str]:
    """Every ``auths`` key Docker's client would use for ``key`` (and ``docker logout`` removes)."""
    if key == HUB_AUTH_KEY:
        return {key, *HUB_NAMES, *(f"https://{n}" for n in HUB_NAMES), "https://index.docker.io/v1"}
    return {key, f"https://{key}", f"http://{key}", f"https://{key}/", f"http://{key}/"}


def without_login(config: dict[str, Any], key: str) -> dict[str, Any]:
    auths = config.get("auths")
    forms = login_keys(key)
    if not isinstance(auths, dict) or not forms & set(auths):
        return config
    return {**config, "auths": {k: v for k, v in auths.items() if k not in forms}}


def logged_in_as(config: dict[str, Any], key: str) -> str | None:
    """The user name of ``key``'s stored login, under any form of the key (None: no usable login stored)."""
    auths = config.get("auths")
    entry = next((auths[k] for k in sorted(login_keys(key), key=lambda k: k != key) if k in auths), None) \
        if isinstance(auths, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
        return None
    try:
        user, sep, _ = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user if sep else None
