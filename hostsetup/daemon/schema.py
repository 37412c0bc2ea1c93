"""The Linux daemon.json schema (Docker 1.10 to 29.7) and a validator for it.

Facts come from moby/moby ``daemon/config``, ``daemon/reload.go``, ``registry`` and
``daemon/logger`` (summarised in the project's daemon-json reference notes). Severity:
"error" means dockerd refuses to start or reload with it, or containers fail to start;
"warning" means dockerd runs but ignores, deprecates or will soon reject something.
Pure: no I/O.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from hostsetup.host.versions import parse_engine_version
from hostsetup.textsafety import systemd_value_problem, url_problem

ERROR = "error"
WARNING = "warning"

Version = tuple[int, ...]


@dataclass(frozen=True)
class Issue:
    """One problem in a daemon.json, located by a path such as ``log-opts.max-size`` or ``dns[0]``."""

    path: str
    message: str
    severity: str

    def render(self, source: str) -> str:
        """``web1: daemon.json key 'x': message`` (warnings say so)."""
        kind = "" if self.severity == ERROR else f" ({self.severity})"
        return f"{source}: daemon.json key '{self.path}'{kind}: {self.message}"


# --------------------------------------------------------------------------- the key table

ALWAYS = "always"    # re-read on SIGHUP; an absent key resets to the default
PRESENT = "present"  # re-read on SIGHUP only when present; removing the key keeps the old value


@dataclass(frozen=True)
class KeySpec:
    """One top-level key: JSON type, first release that reads it, equivalent flag, SIGHUP behaviour."""

    key: str
    kind: str           # bool | str | int | strs | object | objects
    since: str
    flag: str | None    # None: no flag (file only)
    reload: str         # "" (restart needed), ALWAYS or PRESENT


_A, _P = ALWAYS, PRESENT
# key, kind, since, flag, reload
_TABLE: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("allow-direct-routing", "bool", "28.2", "--allow-direct-routing", ""),
    ("allow-nondistributable-artifacts", "strs", "17.06", "--allow-nondistributable-artifacts", _P),
    ("authorization-plugins", "strs", "1.10", "--authorization-plugin", _A),
    ("bip", "str", "1.10", "--bip", ""),
    ("bip6", "str", "28.0", "--bip6", ""),
    ("bridge", "str", "1.10", "-b/--bridge", ""),
    ("bridge-accept-fwmark", "str", "29.0", "--bridge-accept-fwmark", ""),
    ("builder", "object", "18.09", None, ""),
    ("cdi-spec-dirs", "strs", "25.0", "--cdi-spec-dir", ""),
    ("cgroup-parent", "str", "1.10", "--cgroup-parent", ""),
    ("containerd", "str", "1.11", "--containerd", ""),
    ("containerd-namespace", "str", "20.10", "--containerd-namespace", ""),
    ("containerd-plugins-namespace", "str", "20.10", "--containerd-plugins-namespace", ""),
    ("cpu-rt-period", "int", "1.13", "--cpu-rt-period", ""),
    ("cpu-rt-runtime", "int", "1.13", "--cpu-rt-runtime", ""),
    ("cri-containerd", "bool", "18.09", "--cri-containerd", ""),
    ("data-root", "str", "17.05", "--data-root", ""),
    ("debug", "bool", "1.10", "-D/--debug", _P),
    ("default-address-pools", "objects", "18.06", "--default-address-pool", ""),
    ("default-cgroupns-mode", "str", "20.10", "--default-cgroupns-mode", _P),
    ("default-gateway", "str", "1.10", "--default-gateway", ""),
    ("default-gateway-v6", "str", "1.10", "--default-gateway-v6", ""),
    ("default-ipc-mode", "str", "17.09", "--default-ipc-mode", _P),
    ("default-network-opts", "object", "24.0", "--default-network-opt", ""),
    ("default-runtime", "str", "1.12", "--default-runtime", _P),
    ("default-shm-size", "str", "17.05", "--default-shm-size", _P),
    ("default-stop-timeout", "int", "29.7", "--default-stop-timeout", _P),
    ("default-ulimits", "object", "1.10", "--default-ulimit", ""),
    ("deprecated-key-path", "str", "17.06", None, ""),
    ("dns", "strs", "1.10", "--dns", ""),
    ("dns-opts", "strs", "1.10", "--dns-opt", ""),
    ("dns-search", "strs", "1.10", "--dns-search", ""),
    ("exec-opts", "strs", "1.10", "--exec-opt", ""),
    ("exec-root", "str", "1.10", "--exec-root", ""),
    ("experimental", "bool", "1.13", "--experimental", ""),
    ("features", "object", "18.09", "--feature", _A),
    ("firewall-backend", "str", "29.0", "--firewall-backend", ""),
    ("fixed-cidr", "str", "1.10", "--fixed-cidr", ""),
    ("fixed-cidr-v6", "str", "1.10", "--fixed-cidr-v6", ""),
    ("group", "str", "1.10", "-G/--group", ""),
    ("host-gateway-ip", "str", "20.10", "--host-gateway-ip", ""),
    ("host-gateway-ips", "strs", "28.0", "--host-gateway-ip", ""),
    ("hosts", "strs", "1.10", "-H/--host", ""),
    ("icc", "bool", "1.10", "--icc", ""),
    ("init", "bool", "1.13", "--init", ""),
    ("init-path", "str", "1.13", "--init-path", ""),
    ("insecure-registries", "strs", "1.11", "--insecure-registry", _P),
    ("ip", "str", "1.10", "--ip", ""),
    ("ip-forward", "bool", "1.10", "--ip-forward", ""),
    ("ip-forward-no-drop", "bool", "28.0", "--ip-forward-no-drop", ""),
    ("ip-masq", "bool", "1.12", "--ip-masq", ""),
    ("ip6tables", "bool", "20.10", "--ip6tables", ""),
    ("iptables", "bool", "1.10", "--iptables", ""),
    ("ipv6", "bool", "1.10", "--ipv6", ""),
    ("labels", "strs", "1.10", "--label", _P),
    ("live-restore", "bool", "1.12", "--live-restore", _P),
    ("log-driver", "str", "1.10", "--log-driver", ""),
    ("log-format", "str", "25.0", "--log-format", ""),
    ("log-level", "str", "1.10", "-l/--log-level", ""),
    ("log-opts", "object", "1.10", "--log-opt", ""),
    ("max-concurrent-downloads", "int", "1.12", "--max-concurrent-downloads", _A),
    ("max-concurrent-uploads", "int", "1.12", "--max-concurrent-uploads", _A),
    ("max-download-attempts", "int", "20.10", "--max-download-attempts", _A),
    ("metrics-addr", "str", "1.13", "--metrics-addr", ""),
    ("min-api-version", "str", "29.0", None, ""),
    ("mtu", "int", "1.10", "--mtu", ""),
    ("network-control-plane-mtu", "int", "17.09", "--network-control-plane-mtu", ""),
    ("network-diagnostic-port", "int", "17.12", "--network-diagnostic-port", _A),
    ("no-new-privileges", "bool", "17.05", "--no-new-privileges", ""),
    ("node-generic-resources", "strs", "17.09", "--node-generic-resource", ""),
    ("nri-opts", "object", "29.2", "--nri-opts", _A),
    ("pidfile", "str", "1.10", "-p/--pidfile", ""),
    ("proxies", "object", "23.0", "--http-proxy/--https-proxy/--no-proxy", ""),
    ("raw-logs", "bool", "1.11", "--raw-logs", ""),
    ("registry-mirrors", "strs", "1.11", "--registry-mirror", _P),
    ("rootless", "bool", "19.03", "--rootless", ""),
    ("runtimes", "object", "1.12", "--add-runtime", _P),
    ("seccomp-profile", "str", "1.13", "--seccomp-profile", ""),
    ("selinux-enabled", "bool", "1.10", "--selinux-enabled", ""),
    ("shutdown-timeout", "int", "1.13", "--shutdown-timeout", _P),
    ("storage-driver", "str", "1.10", "-s/--storage-driver", ""),
    ("storage-opts", "strs", "1.10", "--storage-opt", ""),
    ("swarm-default-advertise-addr", "str", "1.12", "--swarm-default-advertise-addr", ""),
    ("tls", "bool", "1.10", "--tls", ""),
    ("tlscacert", "str", "1.10", "--tlscacert", ""),
    ("tlscert", "str", "1.10", "--tlscert", ""),
    ("tlskey", "str", "1.10", "--tlskey", ""),
    ("tlsverify", "bool", "1.10", "--tlsverify", ""),
    ("userland-proxy", "bool", "1.10", "--userland-proxy", ""),
    ("userland-proxy-path", "str", "1.13", "--userland-proxy-path", ""),
    ("userns-remap", "str", "1.10", "--userns-remap", ""),
)

KEYS: dict[str, KeySpec] = {row[0]: KeySpec(*row) for row in _TABLE}


@dataclass(frozen=True)
class Removed:
    """A key dockerd used to read: deprecated in one release, an error from ``removed`` on."""

    deprecated: str | None
    removed: str
    advice: str


_KV_STORE = "delete it (external k/v discovery is gone; overlay networks need swarm mode)"
REMOVED: dict[str, Removed] = {
    "graph": Removed("17.05", "23.0", "use data-root"),
    "cluster-store": Removed("20.10", "23.0", _KV_STORE),
    "cluster-advertise": Removed("20.10", "23.0", _KV_STORE),
    "cluster-store-opts": Removed("20.10", "23.0", _KV_STORE),
    "disable-legacy-registry": Removed("17.12", "19.03", "delete it (v1 registries are no longer supported)"),
    "oom-score-adjust": Removed("24.0", "25.0", "delete it (docker.service sets OOMScoreAdjust=-500 itself)"),
    "api-cors-header": Removed("27.0", "28.0", "delete it (put a reverse proxy in front of the API for CORS)"),
    "api-enable-cors": Removed("1.6", "17.09", "delete it"),
    "ip-mask": Removed(None, "1.12", "use ip-masq"),
}

# Accepted, but deprecated or without effect: (version from which it applies, None = always; advice).
DEPRECATED: dict[str, tuple[str | None, str]] = {
    "host-gateway-ip": ("28.0", 'deprecated since Docker 28.0; use "host-gateway-ips": ["<ip>"]'),
    "allow-nondistributable-artifacts": ("28.0", "has no effect since Docker 28.0 (always allowed); remove it"),
    "deprecated-key-path": (None, "dockerd ignores it; remove it"),
    "containerd-plugins-namespace": (None, "dockerd accepts it in the file but never applies it (its file field is "
                                           "spelled differently); pass --containerd-plugins-namespace in the unit"),
}

# Keys with a field in dockerd's config struct but no flag: the unknown-key check rejects them.
REJECTED: dict[str, str] = {
    "containerd-plugin-namespace": "dockerd rejects it (no such option); pass --containerd-plugins-namespace "
                                   "in the unit instead",
    "default-init": "dockerd rejects it (no such option); use init-path to choose the init binary",
    "resolv-conf": "dockerd rejects it (no such option); there is no daemon.json setting for it",
    "swarm-raft-heartbeat-tick": "dockerd rejects it (no such option); there is no daemon.json setting for it",
    "swarm-raft-election-tick": "dockerd rejects it (no such option); there is no daemon.json setting for it",
}

# Flag names that pass the unknown-key check at the top level but are only read inside another key.
MISPLACED: dict[str, tuple[str, str]] = {
    "http-proxy": ("proxies", "23.0"),
    "https-proxy": ("proxies", "23.0"),
    "no-proxy": ("proxies", "23.0"),
}


# --------------------------------------------------------------------------- versions


@cache
def _v(text: str) -> Version:
    version = parse_engine_version(text)
    assert version is not None, text
    return version


def _show(version: Version) -> str:
    return ".".join(map(str, version))


# --------------------------------------------------------------------------- public helpers


def key_known(key: str) -> bool:
    """True for a top-level key some dockerd release reads from daemon.json (removed ones excluded)."""
    return key in KEYS


def flag_for(key: str) -> str | None:
    """The equivalent dockerd flag(s), e.g. ``hosts`` -> ``-H/--host``; None for file-only or unknown keys."""
    spec = KEYS.get(key)
    return spec.flag if spec else None


_RELOADABLE = frozenset(key for key, spec in KEYS.items() if spec.reload)
_RESET_WHEN_ABSENT = frozenset(key for key, spec in KEYS.items() if spec.reload == ALWAYS)


def reloadable_keys() -> frozenset[str]:
    """Keys dockerd applies on SIGHUP (``systemctl reload docker``) without a restart."""
    return _RELOADABLE


def needs_restart(changed_keys: Iterable[str], *, removed_keys: Iterable[str] = ()) -> bool:
    """True if any changed key is not live-reloadable.

    ``removed_keys`` (a subset of the changed keys) are those deleted from the file: most reloadable
    keys are only re-read when present, so removing them needs a restart too.
    """
    return (any(key not in _RELOADABLE for key in changed_keys)
            or any(key not in _RESET_WHEN_ABSENT for key in removed_keys))


# --------------------------------------------------------------------------- validation context


@dataclass(frozen=True)
class _Ctx:
    config: Mapping[str, object]
    engine: Version | None

    def gate(self, version: str) -> str:
        """ERROR when the engine is unknown or at least ``version``; WARNING on an older engine."""
        return ERROR if self.engine is None or self.engine >= _v(version) else WARNING

    def older(self, version: str) -> bool:
        return self.engine is not None and self.engine < _v(version)

    def gated(self, path: str, version: str, text: str) -> Issue:
        """An issue that is an error from ``version`` on and a warning on older engines."""
        severity = self.gate(version)
        if severity == WARNING and self.engine is not None:
            text += f" (this host runs {_show(self.engine)}, which still accepts it)"
        return Issue(path, text, severity)


Check = Callable[[str, Any, _Ctx], list[Issue]]
Pred = Callable[[Any], "str | None"]


def _error(path: str, message: str) -> Issue:
    return Issue(path, message, ERROR)


def _warning(path: str, message: str) -> Issue:
    return Issue(path, message, WARNING)


# --------------------------------------------------------------------------- types

_KINDS = {"bool": "true or false", "str": "a string", "int": "a whole number", "strs": "a list of strings",
          "object": "a JSON object", "objects": "a list of JSON objects"}
_INT = re.compile(r"[+-]?\d+")


def _fits(kind: str, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "strs":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "objects":
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    return kind == "any"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _wrong(kind: str, value: object) -> str:
    """What to write instead of ``value`` where ``kind`` is expected."""
    if kind == "str" and isinstance(value, int | float | bool):
        return f"must be a string; quote it: {json.dumps(json.dumps(value))}"
    if kind == "bool" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return f"must be {value.strip().lower()} without quotes"
    if kind == "int" and isinstance(value, str) and _INT.fullmatch(value.strip()):
        return f"must be a number without quotes: {int(value)}"
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return f"must be a whole number: {int(value)}"
    if kind == "strs" and isinstance(value, str):
        return f"must be a list of strings: [{json.dumps(value)}]"
    return f"must be {_KINDS[kind]}, not {_describe(value)}"


def _type_issues(path: str, kind: str, value: object) -> list[Issue]:
    if _fits(kind, value):
        return []
    if kind in ("strs", "objects") and isinstance(value, list):
        item_kind = "str" if kind == "strs" else "object"
        return [_error(f"{path}[{i}]", _wrong(item_kind, item))
                for i, item in enumerate(value) if not _fits(item_kind, item)]
    return [_error(path, _wrong(kind, value))]


def _suggest(name: str, candidates: Iterable[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The candidate ``name`` was probably meant to be: case, ``_``/``-``, plural and flag-name variants,
    then the closest spelling."""
    folded = {candidate.lower(): candidate for candidate in candidates}
    for variant in _variants(name):
        if variant.lower() in folded:
            return folded[variant.lower()]
        if aliases and variant in aliases:
            return aliases[variant]
    close = difflib.get_close_matches(name.strip().lower().replace("_", "-"), folded, n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def _variants(name: str) -> list[str]:
    base = name.strip().lower().replace("_", "-").replace(" ", "-")
    forms = [name, base, base + "s", base + "es"]
    if base.endswith("y"):
        forms.append(base[:-1] + "ies")
    if base.endswith("ies"):
        forms.append(base[:-3] + "y")
    if base.endswith("es"):
        forms.append(base[:-2])
    if base.endswith("s"):
        forms.append(base[:-1])
    return forms


def _flag_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for key, spec in KEYS.items():
        for flag in (spec.flag or "").split("/"):
            name = flag.lstrip("-")
            if flag.startswith("--") and name not in KEYS:
                aliases.setdefault(name, key)
    return aliases


_ALIASES = _flag_aliases()


def _did_you_mean(name: str, candidates: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    guess = _suggest(name, candidates, aliases)
    return f"; did you mean '{guess}'?" if guess else ""


# --------------------------------------------------------------------------- small value predicates

_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?(?:[kmgtp](?:i?b)?|b)?", re.IGNORECASE)
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_DOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*", re.IGNORECASE)
_HOSTPORT = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<host>[^:/\[\]]+))(?::(?P<port>\d+))?", re.IGNORECASE)
_FWMARK = re.compile(r"(0x[0-9a-f]+|\d+)(?:/(0x[0-9a-f]+|\d+))?", re.IGNORECASE)
_EXAMPLE_IP = {4: "172.26.0.1/16", 6: "fd00:1::1/64"}
_EXAMPLE_NET = {4: "172.26.0.0/24", 6: "fd00:1::/64"}
_SIZE_HINT = 'must be a size such as "64M" or "1g" (units b, k, m, g, t, p; any case)'


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address(version: int | None) -> Pred:
    def check(value: str) -> str | None:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return f"{json.dumps(value)} is not an IP address"
        return f"must be an IPv{version} address" if version and ip.version != version else None
    return check


def _interface(version: int) -> Pred:
    def check(value: str) -> str | None:
        hint = f'must be an IPv{version} address with a prefix length, e.g. "{_EXAMPLE_IP[version]}"'
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            return hint
        return None if "/" in value and iface.version == version else hint
    return check


def _network(version: int) -> Pred:
    def check(value: str) -> str | None:
        hint = f'must be an IPv{version} CIDR, e.g. "{_EXAMPLE_NET[version]}"'
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return hint
        return None if "/" in value and net.version == version else hint
    return check


def _one_of(*choices: str) -> Pred:
    return lambda value: None if value in choices else f"must be one of: {', '.join(choices)}"


def _at_least(low: int, high: int | None = None) -> Pred:
    def check(value: int) -> str | None:
        if value < low or (high is not None and value > high):
            return f"must be between {low} and {high}" if high is not None else f"must be {low} or more"
        return None
    return check


def _absolute(value: str) -> str | None:
    return None if value.startswith("/") else "must be an absolute path"


def _size(value: str) -> str | None:
    return None if _SIZE.fullmatch(value) else _SIZE_HINT


def _key_value(value: str) -> str | None:
    name, sep, _ = value.partition("=")
    return None if sep and name.strip() else "must be name=value"


def _search_domain(value: str) -> str | None:
    name = value[:-1] if value.endswith(".") and value != "." else value
    if value == "." or (len(name) <= 255 and _DOMAIN.fullmatch(name)):
        return None
    return f"{json.dumps(value)} is not a valid DNS search domain"


def _listen_address(value: str) -> str | None:
    _, sep, port = value.rpartition(":")
    if sep and port.isdigit() and int(port) <= 65535:
        return None
    return 'must be host:port, e.g. "127.0.0.1:9323"'


def _api_version(value: str) -> str | None:
    if value[:1] in ("v", "V"):
        return f'write it without the "v": {json.dumps(value[1:])}'
    return None if re.fullmatch(r"\d+\.\d+", value) else 'must be an API version such as "1.44"'


def _uint(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _fwmark(value: str) -> str | None:
    match = _FWMARK.fullmatch(value)
    if match and all(_uint(part) <= 0xFFFFFFFF for part in match.groups() if part):
        return None
    return 'must be a 32-bit mark, optionally with a mask: "0x1" or "0x1/0xff"'


def _host_port_ok(entry: str) -> bool:
    if _is_ip(entry):
        return True
    match = _HOSTPORT.fullmatch(entry)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return False
    return _is_ip(match["v6"]) if match["v6"] else bool(_DOMAIN.fullmatch(match["host"]))


# --------------------------------------------------------------------------- check combinators


def _scalar(pred: Pred) -> Check:
    def check(path: str, value: Any, ctx: _Ctx) -> list[Issue]:
        message = pred(value)
        return [_error(path, message)] if message else []
    return check


def _each(pred: Pred) -> Check:
    def check(path: str, value: Any, ctx: _Ctx) -> list[Issue]:
        return [_error(f"{path}[{i}]", message) for i, item in enumerate(value)
                if (message := pred(item))]
    return check


def _each_issue(item_check: Callable[[str, str, _Ctx], Issue | None]) -> Check:
    def check(path: str, value: Any, ctx: _Ctx) -> list[Issue]:
        found = (item_check(f"{path}[{i}]", item, ctx) for i, item in enumerate(value))
        return [issue for issue in found if issue]
    return check


def _both(*checks: Check) -> Check:
    return lambda path, value, ctx: [issue for check in checks for issue in check(path, value, ctx)]


# --------------------------------------------------------------------------- registries


def _mirror(path: str, url: str, ctx: _Ctx) -> Issue | None:
    """``ValidateMirror``: http(s) scheme, a host, no credentials/query/fragment, a path only from 25.0."""
    problem = url_problem(url)
    if problem:
        return _error(path, f"{json.dumps(url)} {problem}")
    if "://" not in url:
        return _error(path, f'no scheme; write "https://{url}"')
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return _error(path, f"{json.dumps(url)} is not a valid URL")
    if parts.scheme not in ("http", "https"):
        return _error(path, f"unsupported scheme {parts.scheme!r}; mirrors need http:// or https://")
    if parts.username is not None or parts.password is not None:
        return _error(path, "credentials are not allowed in a mirror URL; configure them on the mirror")
    if not parts.hostname:
        return _error(path, f"{json.dumps(url)} has no host")
    if parts.query or parts.fragment:
        return _error(path, "a mirror URL cannot have a query or fragment")
    if parts.path not in ("", "/"):
        if ctx.engine is None:
            return _warning(path, "a path after the host needs Docker 25.0; older engines refuse to start")
        if ctx.older("25.0"):
            return _error(path, f"a path after the host needs Docker 25.0; this host runs {_show(ctx.engine)}")
    return None


def _insecure_registry(path: str, entry: str, ctx: _Ctx) -> Issue | None:
    """``loadInsecureRegistries``: host[:port] or a CIDR; an http(s):// prefix is stripped with a warning."""
    for prefix in ("http://", "https://"):
        if entry.lower().startswith(prefix):
            bare = entry[len(prefix):]
            return _insecure_registry(path, bare, ctx) or _warning(
                path, f"dockerd strips the scheme (with a warning); write {json.dumps(bare)}")
    hint = 'must be host[:port] or a CIDR, e.g. "registry.lan:5000" or "10.0.0.0/8"'
    if "://" in entry:
        return _error(path, f"{hint}, without a scheme")
    if entry.startswith("-") or entry.endswith("-"):
        return _error(path, "cannot begin or end with a hyphen")
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            cidr = _is_ip(entry.partition("/")[0])
            return _error(path, f"{json.dumps(entry)} is not a valid CIDR" if cidr else f"{hint} (no path)")
        return None
    return None if _host_port_ok(entry) else _error(path, hint)


# --------------------------------------------------------------------------- scalar rules

_LOG_LEVELS = ("panic", "fatal", "error", "warn", "info", "debug", "trace")


def _log_level(path: str, value: str, ctx: _Ctx) -> list[Issue]:
    level = value.lower()
    if level == "warning":
        return [ctx.gated(path, "25.0", '"warning" is rejected from Docker 25.0; use "warn"')]
    if level not in _LOG_LEVELS:
        return [_error(path, f"must be one of: {', '.join(_LOG_LEVELS)}")]
    return []


_GONE_DRIVERS = {"aufs": "24.0", "overlay": "24.0", "devicemapper": "25.0"}


def _storage_driver(path: str, value: str, ctx: _Ctx) -> list[Issue]:
    removed = _GONE_DRIVERS.get(value)
    if removed is None:
        return []
    return [ctx.gated(path, removed, f"the {value} storage driver was removed in Docker {removed}; use overlay2")]


def _storage_opts(path: str, value: list[str], ctx: _Ctx) -> list[Issue]:
    issues = []
    for i, opt in enumerate(value):
        name, sep, _ = opt.partition("=")
        if not sep or not name.strip():
            issues.append(_error(f"{path}[{i}]", 'must be driver.option=value, e.g. "overlay2.size=10G"'))
        elif name.strip().lower() == "overlay2.override_kernel_check":
            issues.append(ctx.gated(f"{path}[{i}]", "24.0", "overlay2.override_kernel_check is rejected from "
                                                             "Docker 24.0; remove it"))
    return issues


def _exec_opt_pairs(value: object) -> list[tuple[str, str]]:
    """(lowercased option, value) pairs, as dockerd trims and folds them."""
    if not isinstance(value, list):
        return []
    pairs = []
    for opt in value:
        if isinstance(opt, str) and "=" in opt:
            name, _, val = opt.partition("=")
            pairs.append((name.strip().lower(), val.strip()))
    return pairs


def _exec_opts(path: str, value: list[str], ctx: _Ctx) -> list[Issue]:
    issues = []
    for i, opt in enumerate(value):
        name, sep, val = opt.partition("=")
        name, val = name.strip().lower(), val.strip()
        where = f"{path}[{i}]"
        if not sep or not name or not val:
            issues.append(_error(where, 'must be formatted opt=value, e.g. "native.cgroupdriver=systemd"'))
        elif name == "native.cgroupdriver":
            if val not in ("cgroupfs", "systemd"):
                issues.append(_error(where, "native.cgroupdriver must be cgroupfs or systemd"))
        else:
            issues.append(ctx.gated(where, "28.0", f"unknown exec-opt {name!r} (Linux only has native.cgroupdriver); "
                                                   "rejected from Docker 28.0"))
    return issues


def _cgroup_driver(config: Mapping[str, object]) -> str | None:
    drivers = [val for name, val in _exec_opt_pairs(config.get("exec-opts")) if name == "native.cgroupdriver"]
    return drivers[-1] if drivers else None


def _cgroup_parent(path: str, value: str, ctx: _Ctx) -> list[Issue]:
    if _cgroup_driver(ctx.config) == "systemd" and (len(value) <= 6 or not value.endswith(".slice")):
        return [_error(path, 'with the systemd cgroup driver it must be a slice, e.g. "docker.slice"')]
    return []


def _labels(path: str, value: list[str], ctx: _Ctx) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[str, str] = {}
    for i, label in enumerate(value):
        name, sep, val = label.partition("=")
        if not sep or not name:
            issues.append(_error(f"{path}[{i}]", "must be name=value"))
        elif seen.setdefault(name, val) != val:
            issues.append(_error(f"{path}[{i}]", f"conflicts with {name}={seen[name]}; a label has one value"))
    return issues


def _daemon_host(value: str) -> str | None:
    """``ParseDaemonHost``: unix://PATH, tcp://HOST:PORT, fd:// or fd://N (no scheme means tcp)."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme == "unix":
        return None if rest == "" or rest.startswith("/") else "unix:// needs an absolute path"
    if scheme == "fd":
        return None if rest == "" or rest.isdigit() else "must be fd:// or fd://N"
    if scheme != "tcp":
        return f"unsupported address {json.dumps(value)}; use unix://, tcp:// or fd://"
    try:
        parts = urlsplit(f"tcp://{rest}")
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return f"{json.dumps(value)} is not a valid tcp://host:port address"
    return None if parts.path in ("", "/") else "a tcp:// address cannot have a path"


def _host_gateway_ip(path: str, value: str, ctx: _Ctx) -> list[Issue]:
    if "host-gateway-ips" in ctx.config:
        return [_error(path, "set either host-gateway-ip or host-gateway-ips, not both (use host-gateway-ips)")]
    return []


def _host_gateway_ips(path: str, value: list[str], ctx: _Ctx) -> list[Issue]:
    versions = [ipaddress.ip_address(ip).version for ip in value if _is_ip(ip)]
    if versions.count(4) > 1 or versions.count(6) > 1:
        return [_error(path, "at most one IPv4 and one IPv6 address")]
    return []


def _icc(path: str, value: bool, ctx: _Ctx) -> list[Issue]:
    if value is False and ctx.config.get("iptables") is False:
        return [_error(path, "icc=false needs iptables; dockerd refuses icc=false with iptables=false")]
    return []


def _default_runtime(path: str, value: str, ctx: _Ctx) -> list[Issue]:
    runtimes = ctx.config.get("runtimes")
    configured = set(runtimes) if isinstance(runtimes, dict) else set()
    shim_name = "." in value and "/" not in value and not value.startswith(".") and not ctx.older("23.0")
    if value in ("runc", "io.containerd.runc.v2") or value in configured or shim_name:
        return []
    return [_error(path, f"no runtime named {value!r}; define it under runtimes or use runc")]


# --------------------------------------------------------------------------- nested objects


def _walk(path: str, value: object, shape: Any, *, fold: bool, unknown: str, what: str) -> list[Issue]:
    """Check ``value`` against ``shape``: a kind, ``[shape]`` (list of) or ``{field: shape}``.

    ``fold``: field names match case-insensitively (Go's encoding/json). Unknown fields get ``unknown`` severity.
    """
    if isinstance(shape, str):
        return _type_issues(path, shape, value)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [_error(path, f"must be a list, not {_describe(value)}")]
        return [issue for i, item in enumerate(value)
                for issue in _walk(f"{path}[{i}]", item, shape[0], fold=fold, unknown=unknown, what=what)]
    if not isinstance(value, dict):
        return [_error(path, f"must be a JSON object, not {_describe(value)}")]
    fields = {(name.lower() if fold else name): name for name in shape}
    issues = []
    for key, item in value.items():
        name = fields.get(key.lower() if fold else key)
        if name is None:
            hint = _HINTS.get(key.lower(), "")
            tail = "dockerd ignores it" if unknown == WARNING else "dockerd refuses to start with it"
            message = f"not a {what} setting; {tail}{hint or _did_you_mean(key, shape)}"
            issues.append(Issue(f"{path}.{key}", message, unknown))
        else:
            issues += _walk(f"{path}.{key}", item, shape[name], fold=fold, unknown=unknown, what=what)
    return issues


_HINTS = {"keepduration": '; put the age in a filter instead: "filter": ["unused-for=48h"]'}
_GC_RULE = {"all": "bool", "filter": "any", "keepStorage": "str", "reservedSpace": "str", "maxUsedSpace": "str",
            "minFreeSpace": "str"}
_BUILDER = {
    "gc": {"enabled": "bool", "policy": [_GC_RULE], "defaultKeepStorage": "str", "defaultReservedSpace": "str",
           "defaultMaxUsedSpace": "str", "defaultMinFreeSpace": "str"},
    "entitlements": {"network-host": "bool", "security-insecure": "bool", "device": "bool"},
    "history": {"maxAge": "any", "maxEntries": "int"},
    "proxy-network": "bool",
}
_PROXIES = {"http-proxy": "str", "https-proxy": "str", "no-proxy": "str"}
_NRI = {"enable": "bool", "plugin-path": "str", "plugin-config-path": "str", "socket-path": "str"}


def _builder(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    return _walk(path, value, _BUILDER, fold=True, unknown=WARNING, what="builder")


def _proxies(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    # dockerd flattens "proxies" and checks its keys as flag names: exact spelling only.
    issues = _walk(path, value, _PROXIES, fold=False, unknown=ERROR, what="proxies")
    for key, entry in value.items():
        if not isinstance(entry, str):
            continue
        # Before 23.0 these become Environment= lines of a systemd drop-in: nothing may break out.
        problem = systemd_value_problem(entry) or (url_problem(entry) if key != "no-proxy" else None)
        if problem:
            issues.append(_error(f"{path}.{key}", f"the value {problem}"))
    return issues


def _nri_opts(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    return _walk(path, value, _NRI, fold=True, unknown=ERROR, what="nri-opts")


_FEATURES = {"containerd-snapshotter": "1.0", "cdi": "1.0", "containerd-migration": "1.0", "time-namespaces": "1.0",
             "swarm-nftables": "1.0", "embedded-containerd": "29.7", "buildkit": "1.0"}


def _features(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    issues = []
    for name, enabled in value.items():
        where = f"{path}.{name}"
        if not isinstance(enabled, bool):
            issues.append(_error(where, _wrong("bool", enabled)))
        elif name not in _FEATURES:
            guess = _did_you_mean(name, _FEATURES)
            issues.append(_warning(where, f"not a feature dockerd knows; it is ignored{guess}"))
        elif ctx.older(_FEATURES[name]):
            issues.append(_warning(where, f"only read from Docker {_FEATURES[name]}; this host runs "
                                          f"{_show(ctx.engine or ())} and ignores it"))
    return issues


def _network_opts(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    issues = []
    for driver, opts in value.items():
        where = f"{path}.{driver}"
        if not isinstance(opts, dict):
            issues.append(_error(where, f"must be a JSON object of options, not {_describe(opts)}"))
            continue
        issues += [_error(f"{where}.{name}", _wrong("str", val)) for name, val in opts.items()
                   if not isinstance(val, str)]
    return issues


def _address_pools(path: str, value: list[dict[str, Any]], ctx: _Ctx) -> list[Issue]:
    issues = []
    for i, pool in enumerate(value):
        issues += _address_pool(f"{path}[{i}]", pool)
    return issues


def _address_pool(path: str, pool: dict[str, Any]) -> list[Issue]:
    fields = {key.lower(): key for key in pool}  # Go matches base/size case-insensitively
    issues = [_warning(f"{path}.{key}", "not a pool setting (base, size); dockerd ignores it")
              for low, key in fields.items() if low not in ("base", "size")]
    base = pool.get(fields.get("base", "base"))
    size = pool.get(fields.get("size", "size"))
    if base is None or size is None:
        missing = " and ".join(name for name, val in (("base", base), ("size", size)) if val is None)
        return [*issues, _error(path, f'needs {missing}, e.g. {{"base": "172.30.0.0/16", "size": 24}}')]
    if not isinstance(base, str):
        return [*issues, _error(f"{path}.base", _wrong("str", base))]
    if not _fits("int", size):
        return [*issues, _error(f"{path}.size", _wrong("int", size))]
    try:
        net = ipaddress.ip_network(base, strict=False)
    except ValueError:
        return [*issues, _error(f"{path}.base", f'{json.dumps(base)} is not a CIDR such as "172.30.0.0/16"')]
    if "/" not in base:
        return [*issues, _error(f"{path}.base", f'needs a prefix length, e.g. "{base}/16"')]
    if not net.prefixlen <= size <= net.max_prefixlen:
        issues.append(_error(f"{path}.size", f"must be between {net.prefixlen} (the base's prefix) and "
                                             f"{net.max_prefixlen}: it is the prefix length of each network"))
    return issues


_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
            "rtprio", "rttime", "sigpending", "stack")


def _ulimits(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    issues = []
    for name, limit in value.items():
        issues += _ulimit(f"{path}.{name}", name, limit)
    return issues


def _ulimit(path: str, name: str, limit: object) -> list[Issue]:
    if not isinstance(limit, dict):
        return [_error(path, f'must be an object like {{"Name": "{name}", "Hard": 64000, "Soft": 64000}}')]
    fields = {key.lower(): key for key in limit}  # Go matches Name/Hard/Soft case-insensitively
    issues = [_warning(f"{path}.{key}", "not a ulimit field (Name, Hard, Soft); dockerd ignores it")
              for low, key in fields.items() if low not in ("name", "hard", "soft")]
    if name not in _ULIMITS:
        issues.append(_error(path, f"not a ulimit name{_did_you_mean(name, _ULIMITS)}"))
    limit_name = limit.get(fields.get("name", "Name"))
    if limit_name is None:
        issues.append(_error(path, f'needs "Name": "{name}" (dockerd sets RLIMIT_<Name>; containers fail without it)'))
    elif limit_name != name:
        issues.append(_warning(f"{path}.{fields['name']}", f"differs from the key {name!r}; dockerd applies Name "
                                                           "but merges container ulimits by the key"))
    values: dict[str, int] = {}
    for field in ("hard", "soft"):
        raw = limit.get(fields.get(field, field.title()))
        if raw is None:
            issues.append(_error(path, f'needs "{field.title()}" (a number; -1 is unlimited)'))
        elif not _fits("int", raw):
            issues.append(_error(f"{path}.{fields[field]}", _wrong("int", raw)))
        else:
            values[field] = raw
    hard, soft = values.get("hard"), values.get("soft")
    if hard is not None and soft is not None and hard != -1 and (soft == -1 or soft > hard):
        issues.append(_error(path, f"Soft ({soft}) is above Hard ({hard}); containers fail to start"))
    return issues


_RUNTIME = {"path": "str", "runtimeArgs": "strs", "runtimeType": "str", "options": "object"}


def _runtimes(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    issues = []
    for name, runtime in value.items():
        where = f"{path}.{name}"
        if name == "runc":
            issues.append(_error(where, "the name runc is reserved; choose another name"))
        found = _walk(where, runtime, _RUNTIME, fold=True, unknown=WARNING, what="runtime")
        issues += found
        if isinstance(runtime, dict) and not any(issue.severity == ERROR for issue in found):
            issues += _runtime_shape(where, {key.lower() for key in runtime})
    return issues


def _runtime_shape(path: str, fields: set[str]) -> list[Issue]:
    if "path" in fields and "runtimetype" in fields:
        return [_error(path, "set either path or runtimeType, not both")]
    if "path" not in fields and "runtimetype" not in fields:
        return [_error(path, 'needs "path" (a runc-compatible binary) or "runtimeType" (a containerd shim)')]
    if "path" in fields and "options" in fields:
        return [_error(path, "options only go with runtimeType, not with path")]
    if "runtimetype" in fields and "runtimeargs" in fields:
        return [_error(path, "runtimeArgs only go with path, not with runtimeType")]
    return []


_FILE_LOG_OPTS = frozenset({"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"})
_ANY_DRIVER_LOG_OPTS = frozenset({"mode", "max-buffer-size"})
_OTHER_DRIVERS = frozenset({"journald", "syslog", "gelf", "fluentd", "awslogs", "splunk", "gcplogs", "logentries"})
_BOOLS = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")


def _log_opts(path: str, value: dict[str, Any], ctx: _Ctx) -> list[Issue]:
    issues = [_error(f"{path}.{name}", _wrong("str", val)) for name, val in value.items() if not isinstance(val, str)]
    opts = {name: val for name, val in value.items() if isinstance(val, str)}
    driver = ctx.config.get("log-driver") or "json-file"
    for name in value:
        issues += _log_opt_name(f"{path}.{name}", name, driver)
    for name, val in opts.items():
        message = _log_opt_value(name, val, opts)
        if message:
            issues.append(_error(f"{path}.{name}", message))
    if driver == "json-file" and opts.get("compress") in _BOOLS[:6]:
        max_file = opts.get("max-file", "1")
        if "max-size" not in opts or not _INT.fullmatch(max_file) or int(max_file) < 2:
            issues.append(_error(f"{path}.compress", "json-file compression needs max-size and a max-file of 2 "
                                                     "or more"))
    return issues


def _log_opt_name(path: str, name: str, driver: object) -> list[Issue]:
    if name in _ANY_DRIVER_LOG_OPTS:
        return []
    if driver in ("json-file", "local") and name not in _FILE_LOG_OPTS:
        guess = _did_you_mean(name, _FILE_LOG_OPTS | _ANY_DRIVER_LOG_OPTS)
        return [_error(path, f"unknown log option for the {driver} driver; dockerd refuses to start{guess}")]
    if driver in _OTHER_DRIVERS and name in ("max-size", "max-file", "compress"):
        return [_error(path, f"the {driver} driver has no {name} (only json-file and local rotate files)")]
    return []


def _log_opt_value(name: str, value: str, opts: Mapping[str, str]) -> str | None:
    if name == "max-size":
        size = _SIZE.fullmatch(value)
        if size is None:
            return _SIZE_HINT.replace('"64M"', '"10m"')
        return None if float(size[1]) > 0 else "must be more than 0"
    if name == "max-file":
        ok = _INT.fullmatch(value) and int(value) >= 1
        return None if ok else 'must be a whole number of files, 1 or more, as a string: "3"'
    if name == "compress":
        return None if value in _BOOLS else 'must be "true" or "false"'
    if name == "mode":
        return None if value in ("blocking", "non-blocking") else 'must be "blocking" or "non-blocking"'
    if name == "max-buffer-size":
        if opts.get("mode") != "non-blocking":
            return 'only works with "mode": "non-blocking"'
        return None if _SIZE.fullmatch(value) else _SIZE_HINT
    return None


# --------------------------------------------------------------------------- rule table

_RANGES = {"mtu": 0, "network-control-plane-mtu": 0, "max-concurrent-downloads": 0, "max-concurrent-uploads": 0,
           "max-download-attempts": 0, "default-stop-timeout": 0, "cpu-rt-period": 0, "cpu-rt-runtime": 0}

CHECKS: dict[str, Check] = {
    **{key: _scalar(_at_least(low)) for key, low in _RANGES.items()},
    "network-diagnostic-port": _scalar(_at_least(0, 65535)),
    "bip": _scalar(_interface(4)),
    "bip6": _scalar(_interface(6)),
    "fixed-cidr": _scalar(_network(4)),
    "fixed-cidr-v6": _scalar(_network(6)),
    "default-gateway": _scalar(_address(4)),
    "default-gateway-v6": _scalar(_address(6)),
    "ip": _scalar(_address(None)),
    "host-gateway-ip": _both(_scalar(_address(None)), _host_gateway_ip),
    "host-gateway-ips": _both(_each(_address(None)), _host_gateway_ips),
    "dns": _each(_address(None)),
    "dns-search": _each(_search_domain),
    "node-generic-resources": _each(_key_value),
    "hosts": _each(_daemon_host),
    "labels": _labels,
    "storage-opts": _storage_opts,
    "exec-opts": _exec_opts,
    "cgroup-parent": _cgroup_parent,
    "registry-mirrors": _each_issue(_mirror),
    "insecure-registries": _each_issue(_insecure_registry),
    "data-root": _scalar(_absolute),
    "exec-root": _scalar(_absolute),
    "pidfile": _scalar(_absolute),
    "log-level": _log_level,
    "log-format": _scalar(_one_of("text", "json")),
    "default-ipc-mode": _scalar(_one_of("private", "shareable")),
    "default-cgroupns-mode": _scalar(_one_of("host", "private")),
    "firewall-backend": _scalar(_one_of("iptables", "nftables")),
    "default-shm-size": _scalar(_size),
    "storage-driver": _storage_driver,
    "metrics-addr": _scalar(_listen_address),
    "min-api-version": _scalar(_api_version),
    "bridge-accept-fwmark": _scalar(_fwmark),
    "icc": _icc,
    "default-runtime": _default_runtime,
    "log-opts": _log_opts,
    "default-address-pools": _address_pools,
    "default-ulimits": _ulimits,
    "default-network-opts": _network_opts,
    "runtimes": _runtimes,
    "features": _features,
    "builder": _builder,
    "proxies": _proxies,
    "nri-opts": _nri_opts,
}


# --------------------------------------------------------------------------- validate


def validate(config: Mapping[str, object], engine_version: str | None = None) -> list[Issue]:
    """Every problem in ``config`` (a parsed daemon.json), in key order.

    ``engine_version`` (any form :func:`parse_engine_version` reads) makes the checks exact for that
    engine; without it (or when unreadable) the newest engine's rules apply.
    """
    ctx = _Ctx(config, parse_engine_version(engine_version) if engine_version else None)
    return [issue for key, value in config.items() for issue in _check_key(key, value, ctx)]


def _check_key(key: str, value: object, ctx: _Ctx) -> list[Issue]:
    if key in REMOVED:
        return [_removed(key, ctx)]
    if key in REJECTED:
        return [_error(key, REJECTED[key])]
    if key in MISPLACED:
        return [_misplaced(key, ctx)]
    spec = KEYS.get(key)
    if spec is None:
        return [_error(key, f"unknown key{_did_you_mean(key, KEYS, _ALIASES) or '; dockerd refuses to start'}")]
    if ctx.older(spec.since):
        return [_error(key, f"added in Docker {spec.since}; this host runs {_show(ctx.engine or ())}")]
    if value is None:
        return [_warning(key, "null has no effect; remove the key or give it a value")]
    issues = _type_issues(key, spec.kind, value)
    if issues:
        return issues
    deprecated = DEPRECATED.get(key)
    if deprecated and (deprecated[0] is None or not ctx.older(deprecated[0])):
        issues.append(_warning(key, deprecated[1]))
    check = CHECKS.get(key)
    return issues + check(key, value, ctx) if check else issues


def _removed(key: str, ctx: _Ctx) -> Issue:
    gone = REMOVED[key]
    if ctx.gate(gone.removed) == ERROR:
        runs = f" (this host runs {_show(ctx.engine)})" if ctx.engine else ""
        return _error(key, f"removed in Docker {gone.removed}; {gone.advice}{runs}")
    deprecated = gone.deprecated and not ctx.older(gone.deprecated)
    since = f"deprecated since Docker {gone.deprecated} and " if deprecated else ""
    return ctx.gated(key, gone.removed, f"{since}removed in Docker {gone.removed}; {gone.advice}")


def _misplaced(key: str, ctx: _Ctx) -> Issue:
    parent, since = MISPLACED[key]
    if ctx.older(since):
        return _error(key, f'unknown key before Docker {since}; the proxy settings then go in the systemd unit '
                           f'(Environment="{key.upper().replace("-", "_")}=...")')
    return _warning(key, f'dockerd accepts it here but ignores it; move it into "{parent}": {{"{key}": ...}}')
