"""Opening SSH connections with host keys checked.

Fabric's ``Connection`` accepts any host key by default; hostsetup loads the
user's known_hosts files (``~/.ssh/known_hosts``, ssh_config ``UserKnownHostsFile``
and the ``known_hosts`` setting), always refuses a key that differs from a known
one, and handles unknown hosts as ssh_config ``StrictHostKeyChecking`` says:
``yes`` refuses them, ``no`` accepts them silently, anything else (OpenSSH's
``accept-new``) accepts them with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from fabric import Config, Connection
from paramiko import AutoAddPolicy, MissingHostKeyPolicy, RejectPolicy, SSHClient
from paramiko.pkey import PKey

log = logging.getLogger(__name__)


class AcceptNewPolicy(MissingHostKeyPolicy):
    """Accept a host key never seen before, and say so."""

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        log.warning("accepting new host key for %s (%s %s)", hostname,
                    key.get_name(), key.fingerprint)
        client.get_host_keys().add(hostname, key.get_name(), key)


def host_key_policy(strict: str) -> MissingHostKeyPolicy:
    """The paramiko policy for an ssh_config ``StrictHostKeyChecking`` value."""
    value = strict.lower()
    if value == "yes":
        return RejectPolicy()
    if value in ("no", "off"):
        return AutoAddPolicy()
    return AcceptNewPolicy()


def connect(target: str, config: Config, known_hosts: Iterable[Path | str] = (),
            **kwargs: object) -> Connection:
    """A Fabric ``Connection`` to ``target`` (``user@host:port`` or an ssh_config alias)."""
    conn = Connection(target, config=config, **kwargs)  # type: ignore[arg-type]
    client = conn.client
    client.load_system_host_keys()
    files = [*config.get("known_hosts", []), *known_hosts]
    files += str(conn.ssh_config.get("userknownhostsfile", "")).split()
    for path in files:
        expanded = Path(path).expanduser()
        if expanded.is_file():
            client.get_host_keys().load(str(expanded))
    client.set_missing_host_key_policy(
        host_key_policy(str(conn.ssh_config.get("stricthostkeychecking", "accept-new"))))
    return conn
