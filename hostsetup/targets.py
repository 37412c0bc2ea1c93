"""The hosts a task works on: ``-H`` strings and/or ``--inventory`` entries, with per-host settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from invoke import Config

from hostsetup.errors import HostsetupError
from hostsetup.inventory import load_inventory


@dataclass(frozen=True)
class Target:
    """One host: how to reach it and its own settings on top of the global ones."""

    name: str                 # what reports call it
    address: str              # Fabric host string or ssh_config alias
    key: str | None = None    # identity file from the inventory
    install: dict[str, Any] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)


def targets_from(config: Config) -> list[Target]:
    """``-H`` hosts, then the ``--inventory`` hosts selected by ``--limit``; duplicates dropped."""
    found: dict[str, Target] = {h: Target(h, h) for h in config.hosts}
    if config.get("inventory"):
        inventory = load_inventory(config.inventory)
        for host in inventory.select(config.get("limit") or None):
            found.setdefault(host.name, Target(host.name, host.target, host.key, host.settings("install"),
                                               host.settings("daemon")))
    elif config.get("limit"):
        raise HostsetupError("--limit selects from an inventory: give --inventory FILE too")
    if not found:
        raise HostsetupError("no hosts given: use -H user@host[:port][,user@host...] or --inventory FILE")
    return list(found.values())
