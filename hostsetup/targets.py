"""The hosts a task works on: ``-H`` strings and/or ``--inventory`` entries, with per-host settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from invoke.config import Config

from hostsetup.errors import HostsetupError
from hostsetup.inputs import InputError
from hostsetup.inputs.values import existing_file, host_string
from hostsetup.inventory import load_inventory


@dataclass(frozen=True)
class Target:
    """One host: how to reach it and its own settings on top of the global ones."""

    name: str                 # what reports call it
    address: str              # Fabric host string or ssh_config alias
    key: str | None = None    # identity file from the inventory
    install: dict[str, Any] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)


LOCAL = "localhost (--local)"   # the machine hostsetup runs on, with no SSH (``--local``)


def local_target() -> Target:
    return Target(LOCAL, LOCAL)


def targets_from(config: Config, local: bool = False) -> list[Target]:
    """``-H`` hosts, then the ``--inventory`` hosts selected by ``--limit``; the same machine given
    twice (by name or by address and port) is refused, as is a key file that does not exist.
    ``local``: this machine alone (``--local``), and then no hosts may be given."""
    if local:
        if config.hosts or config.get("inventory"):
            raise HostsetupError("--local works on this machine: give either hosts or --local, not both "
                                 "(hosts: -H or --inventory)")
        return [local_target()]
    found: dict[str, Target] = {h: Target(h, h) for h in config.hosts}
    endpoints = {host_string(h, "-H").endpoint: f"-H {h!r}" for h in config.hosts}
    if config.get("inventory"):
        inventory = load_inventory(config.inventory)
        for host in inventory.select(config.get("limit") or None):
            given = endpoints.get(host.spec.endpoint) or (f"-H {host.name!r}" if host.name in found else None)
            if given:
                raise InputError(f"{given} is also inventory host {host.name!r} in {inventory.source}; "
                                 "give it once")
            endpoints[host.spec.endpoint] = host.name
            if host.key:
                existing_file(host.key, f"{inventory.source}: host {host.name}: key")
            found[host.name] = Target(host.name, host.target, host.key, host.settings("install"),
                                      host.settings("daemon"))
    elif config.get("limit"):
        raise HostsetupError("--limit selects from an inventory: give --inventory FILE too")
    if not found:
        raise HostsetupError("no hosts given: use -H user@host[:port][,user@host...] or --inventory FILE")
    return list(found.values())
