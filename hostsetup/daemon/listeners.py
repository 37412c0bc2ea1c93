"""Which dockerd listen addresses hand out root to the network: the one predicate for
``configure`` (refused without --allow-insecure-tcp) and ``doctor --fix`` (never moved).

dockerd reads an address without ``://`` as TCP (``0.0.0.0:2375``, ``:2375``; moby's
opts/hosts.go ``parseDaemonHost``). Only ``unix://`` and ``fd://`` (systemd's sockets) are
local here; anything else counts as TCP. A TCP listener requires client certificates only
with TLS verification (``tlsverify`` plus the CA, certificate and key), from daemon.json or
from dockerd's flags; ``tls`` alone encrypts but lets anyone in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LOCAL_SCHEMES = ("unix://", "fd://")
TLS_FILES = ("tlscacert", "tlscert", "tlskey")
TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool


def is_tcp(address: object) -> bool:
    """Whether dockerd would listen on TCP (or on something not known to be local) for ``address``."""
    return not (isinstance(address, str) and address.strip().startswith(LOCAL_SCHEMES))


def tls_from_flags(argv: Sequence[str]) -> dict[str, Any]:
    """``--tlsverify[=BOOL]`` and ``--tlscacert/--tlscert/--tlskey [=]PATH`` from dockerd's command line."""
    found: dict[str, Any] = {}
    words = list(argv)
    for index, word in enumerate(words):
        name, sep, value = word.removeprefix("--").partition("=")
        if not word.startswith("--"):
            continue
        if name == "tlsverify":
            found[name] = value in TRUE if sep else True
        elif name in TLS_FILES:
            found[name] = value if sep else (words[index + 1] if index + 1 < len(words) else "")
    return found


def tls_verified(config: Mapping[str, Any], argv: Sequence[str] = ()) -> bool:
    """TLS with client verification and its three files, from daemon.json over the flags."""
    tls = {**tls_from_flags(argv), **{k: config[k] for k in ("tlsverify", *TLS_FILES) if k in config}}
    return tls.get("tlsverify") is True and all(isinstance(tls.get(k), str) and tls[k] for k in TLS_FILES)


def hosts_list(hosts: object) -> list[object]:
    """daemon.json's ``hosts`` as a list (one string is one address)."""
    if hosts is None:
        return []
    return list(hosts) if isinstance(hosts, (list, tuple)) else [hosts]


def insecure_hosts(hosts: Iterable[object], config: Mapping[str, Any], argv: Sequence[str] = ()) -> list[str]:
    """The entries of ``hosts`` that are plain TCP: all TCP ones unless TLS verification guards them."""
    if tls_verified(config, argv):
        return []
    return [str(h) for h in hosts if is_tcp(h)]
