"""Inventories: hosts, groups and variables, in hostsetup's own YAML/TOML format or
imported read-only from Ansible INI or YAML inventories.

Own format (YAML or TOML)::

    vars:                 # every host
      user: admin
      install: {mirror: tuna}
    hosts:
      web1: {host: 10.0.0.5}
      web2: {host: 10.0.0.6, port: 2222}
      db1: {}             # an ssh_config alias works as is
    groups:
      web: {hosts: [web1, web2], vars: {install: {users: [deploy]}}}
      prod: {children: [web], hosts: [db1]}

Variables merge, lowest first: ``vars``, then each group the host is in
(parents before children), then the host's own. Connection variables are
``host``, ``user``, ``port`` and ``key``; ``install`` and ``daemon`` hold the
settings of those tasks.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostsetup.daemon.settings import DAEMON_DEFAULTS
from hostsetup.inputs import InputError
from hostsetup.inputs.config import check_mapping, file_label
from hostsetup.inputs.files import (
    MAX_INVENTORY_BYTES,
    Located,
    line_of,
    parse_toml,
    parse_yaml,
    read_text,
    type_name,
    where,
)
from hostsetup.inputs.values import HostSpec, did_you_mean, host_address, login_name, port, text
from hostsetup.settings import INSTALL_DEFAULTS

CONNECTION_VARS = ("host", "user", "port", "key")
SETTING_VARS = ("install", "daemon")
ANSIBLE_VARS = {"ansible_host": "host", "ansible_user": "user", "ansible_port": "port",
                "ansible_ssh_private_key_file": "key", "ansible_ssh_host": "host", "ansible_ssh_user": "user",
                "ansible_ssh_port": "port"}


class InventoryError(InputError):
    """The inventory cannot be read; the message names the file, line and reason."""


@dataclass(frozen=True)
class InventoryHost:
    """One host with its merged variables."""

    name: str
    groups: tuple[str, ...]
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> HostSpec:
        """Where to connect: ``host`` (the name when none), ``user`` and ``port`` from the variables."""
        address = self.vars.get("host") or host_address(self.name, f"inventory host {self.name!r}")
        return HostSpec(str(address), self.vars.get("user") or None, self.vars.get("port") or None)

    @property
    def target(self) -> str:
        """A Fabric host string: ``user@host:port``."""
        return str(self.spec)

    @property
    def key(self) -> str | None:
        key = self.vars.get("key")
        return str(Path(str(key)).expanduser()) if key else None

    def settings(self, section: str) -> dict[str, Any]:
        value = self.vars.get(section) or {}
        return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, InventoryHost]
    groups: dict[str, tuple[str, ...]]   # group -> host names (children resolved)
    source: str = ""

    def select(self, limit: str | None) -> list[InventoryHost]:
        """Hosts matching ``--limit``: comma-separated group names, host names or glob patterns;
        ``!pattern`` excludes."""
        if not limit:
            return list(self.hosts.values())
        chosen: dict[str, InventoryHost] = {}
        patterns = [p.strip() for p in limit.split(",") if p.strip()]
        for pattern in [p for p in patterns if not p.startswith("!")] or ["*"]:
            names = self.groups.get(pattern) or [n for n in self.hosts if fnmatch.fnmatchcase(n, pattern)]
            if not names:
                raise InventoryError(f"--limit {pattern!r} matches no host or group in {self.source}")
            chosen.update((n, self.hosts[n]) for n in names)
        for pattern in [p[1:] for p in patterns if p.startswith("!")]:
            for name in self.groups.get(pattern) or [n for n in chosen if fnmatch.fnmatchcase(n, pattern)]:
                chosen.pop(name, None)
        return list(chosen.values())


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``top`` into ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# -- checking variables ------------------------------------------------------------------

# A key file must exist only for the hosts a run selects (``targets_from`` checks it).
VAR_RULES = {"host": host_address, "user": login_name, "port": port, "key": text}
SETTING_DEFAULTS: dict[str, Mapping[str, Any]] = {"install": INSTALL_DEFAULTS, "daemon": DAEMON_DEFAULTS}


def _where(path: Path, mapping: Any, key: str) -> str:
    return where(str(path), mapping, key)


def _check_vars(source: str, variables: Any, own: bool, line: str = "") -> dict[str, Any]:
    """Connection variables and settings checked in place (``own``: unknown names refused);
    ``line``: the ``file:line`` of an INI line, whose variables have no lines of their own."""
    if variables is None:
        return {}
    if not isinstance(variables, MutableMapping):
        raise InventoryError(f"{line or where(source, variables)}: variables must be a mapping (name: value), "
                             f"not a {type_name(variables)}")
    for key in list(variables):
        label = f"{line or where(source, variables, key)}: {key}"
        if key in VAR_RULES:
            variables[key] = VAR_RULES[key](variables[key], label)
        elif key in SETTING_DEFAULTS:
            check_mapping(variables, key, SETTING_DEFAULTS[key], file_label(source), (key,),
                          f"{label}: expected a mapping of {key} settings, not a", InventoryError)
        elif own:
            allowed = (*CONNECTION_VARS, *SETTING_VARS)
            raise InventoryError(f"{label}: unknown variable{did_you_mean(str(key), allowed)}; "
                                 f"hostsetup inventories know {', '.join(allowed)}")
    return dict(variables)


def _name_list(path: Path, mapping: Any, key: str, what: str) -> list[str]:
    """A list of names (``hosts: [a, b]``): a single name as text would be read letter by letter."""
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"{_where(path, mapping, key)}: {what} must be a list of names ([a, b]), "
                             f"not a {type_name(value)}")
    names = [text(item, f"{_where(path, mapping, key)}: {what}") for item in value]
    for name in names:
        if names.count(name) > 1:
            raise InventoryError(f"{_where(path, mapping, key)}: {name!r} is listed twice in {what}")
    return names


# -- own format -----------------------------------------------------------------------------

def _check_keys(path: Path, mapping: Any, allowed: set[str], what: str) -> None:
    if not isinstance(mapping, Mapping):
        raise InventoryError(f"{where(str(path), mapping)}: {what} must be a mapping, not a {type_name(mapping)}")
    for key in mapping:
        if key not in allowed:
            raise InventoryError(f"{_where(path, mapping, key)}: unknown key {key!r} in {what}"
                                 f"{did_you_mean(str(key), allowed)} (expected {', '.join(sorted(allowed))})")


def _own_format(path: Path, data: Any) -> Inventory:
    source = str(path)
    _check_keys(path, data, {"vars", "hosts", "groups"}, "the inventory")
    base_vars = _check_vars(source, data.get("vars"), own=True)
    raw_hosts = data.get("hosts") or {}
    if isinstance(raw_hosts, list):
        raw_hosts = dict.fromkeys(_name_list(path, data, "hosts", "hosts"))
    _check_keys(path, raw_hosts, set(raw_hosts) if isinstance(raw_hosts, Mapping) else set(), "hosts")
    for name in raw_hosts:
        raw_hosts[name] = _check_vars(source, raw_hosts[name], own=True, line="" if isinstance(
            raw_hosts[name], Mapping) or raw_hosts[name] is None else f"{_where(path, raw_hosts, name)}: host {name}")
    raw_groups = data.get("groups") or {}
    _check_keys(path, raw_groups, set(raw_groups) if isinstance(raw_groups, Mapping) else set(), "groups")
    groups: dict[str, tuple[list[Any], Mapping[str, Any], list[str]]] = {}
    for name, group in raw_groups.items():
        group = group if group is not None else {}
        _check_keys(path, group, {"hosts", "vars", "children"}, f"group {name!r}")
        members = _name_list(path, group, "hosts", f"group {name!r} hosts")
        for member in members:
            raw_hosts.setdefault(member, {})
        groups[name] = (members, _check_vars(source, group.get("vars"), own=True),
                        _name_list(path, group, "children", f"group {name!r} children"))
    for name, (_, _, children) in groups.items():
        for child in children:
            if child not in groups:
                raise InventoryError(f"{_where(path, raw_groups, name)}: group {name!r} has unknown child "
                                     f"group {child!r}")
    return _build(str(path), base_vars, {n: dict(v or {}) for n, v in raw_hosts.items()}, groups)


def _build(source: str, base_vars: Mapping[str, Any], hosts: dict[str, dict[str, Any]],
           groups: dict[str, tuple[list[Any], Mapping[str, Any], list[str]]]) -> Inventory:
    """Resolve group membership (children included) and merge variables per host."""
    def members(group: str, seen: tuple[str, ...] = ()) -> list[str]:
        if group in seen:
            raise InventoryError(f"{source}: group {group!r} contains itself through its children")
        direct, _, children = groups[group]
        out = [str(h) for h in direct]
        for child in children:
            out += members(child, (*seen, group))
        return list(dict.fromkeys(out))

    def depth(group: str) -> int:  # parents (fewer ancestors) first
        parents = [g for g, (_, _, children) in groups.items() if group in children]
        return 1 + max((depth(p) for p in parents), default=0)

    resolved = {g: tuple(members(g)) for g in groups}
    inventory_hosts = {}
    for name, own in hosts.items():
        host_groups = sorted((g for g, names in resolved.items() if name in names), key=depth)
        merged = dict(base_vars)
        for group in host_groups:
            merged = deep_merge(merged, groups[group][1])
        inventory_hosts[name] = InventoryHost(name, tuple(host_groups), deep_merge(merged, own))
    seen: dict[tuple[str, int], str] = {}
    for name, host in inventory_hosts.items():
        endpoint = host.spec.endpoint
        if endpoint in seen:
            raise InventoryError(f"{source}: hosts {seen[endpoint]!r} and {name!r} are the same machine "
                                 f"({host.spec}); give it once")
        seen[endpoint] = name
    return Inventory(inventory_hosts, {**resolved, "all": tuple(hosts)}, source)


# -- Ansible --------------------------------------------------------------------------------

def _ansible_vars(raw: Any, path: Path) -> Any:
    """Ansible's variable names turned into hostsetup's (lines kept)."""
    if not isinstance(raw, Mapping):
        return raw
    out = Located()
    out.lines, out.line = {}, getattr(raw, "line", 0)
    for key, value in raw.items():
        name = ANSIBLE_VARS.get(str(key), str(key))
        out[name] = value
        out.lines[name] = line_of(raw, str(key)) or 0
    return out


def _ansible_yaml(path: Path, data: Any) -> Inventory:
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, tuple[list[Any], Mapping[str, Any], list[str]]] = {}

    def walk(name: str, group: Any) -> None:
        group = group if group is not None else {}
        if not isinstance(group, Mapping):
            raise InventoryError(f"{where(str(path), group)}: group {name!r} must be a mapping, "
                                 f"not a {type_name(group)}")
        member_hosts = group.get("hosts") or {}
        children = group.get("children") or {}
        for key, value in (("hosts", member_hosts), ("children", children)):
            if not isinstance(value, Mapping):
                raise InventoryError(f"{_where(path, group, key)}: {key} of group {name!r} must be a mapping "
                                     f"(name: ...), not a {type_name(value)}")
        for host, host_vars in member_hosts.items():
            checked = _check_vars(str(path), _ansible_vars(host_vars, path), own=False)
            hosts[str(host)] = deep_merge(hosts.get(str(host), {}), checked)
        groups[name] = (list(member_hosts), _check_vars(str(path), _ansible_vars(group.get("vars"), path), own=False),
                        list(children))
        for child, child_group in children.items():
            walk(str(child), child_group)

    for name, group in data.items():
        walk(str(name), group)
    base = groups.pop("all", ([], {}, []))
    for child in base[2]:
        groups.setdefault(child, ([], {}, []))
    if base[0]:
        groups["ungrouped"] = (list(base[0]), {}, [])
    return _build(str(path), base[1], hosts, groups)


_INI_HOST = re.compile(r"""(\S+)((?:\s+\S+=(?:"[^"]*"|'[^']*'|\S+))*)\s*$""")


def _ini_value(text: str) -> Any:
    text = text.strip().strip("'\"")
    return int(text) if text.isdigit() else text


_Group = tuple[list[Any], Mapping[str, Any], list[str]]   # hosts, vars, children


def _ini_section(line: str, where: str) -> tuple[str, str]:
    """``[name]``, ``[name:vars]`` or ``[name:children]`` -> (name, kind)."""
    if not line.endswith("]"):
        raise InventoryError(f"{where}: unclosed section header {line!r}")
    section, _, kind = line[1:-1].partition(":")
    kind = kind or "hosts"
    if kind not in ("hosts", "vars", "children"):
        raise InventoryError(f"{where}: unknown section kind {kind!r}")
    return section, kind


def _ini_vars(path: Path, line: str, section: str, where: str) -> dict[str, Any]:
    key, sep, value = line.partition("=")
    if not sep:
        raise InventoryError(f"{where}: expected key=value in [{section}:vars]")
    name = ANSIBLE_VARS.get(key.strip(), key.strip())
    return _check_vars(str(path), {name: _ini_value(value)}, own=False, line=where)


def _ini_host(path: Path, line: str, where: str) -> tuple[str, dict[str, Any]]:
    match = _INI_HOST.match(line)
    if not match:
        raise InventoryError(f"{where}: cannot read host line {line!r}")
    assignments = re.findall(r"""(\S+?)=("[^"]*"|'[^']*'|\S+)""", match.group(2))
    host_vars = {ANSIBLE_VARS.get(k, k): _ini_value(v) for k, v in assignments}
    _check_vars(str(path), host_vars, own=False, line=where)
    return match.group(1), host_vars


def _ansible_ini(path: Path, text_of: str) -> Inventory:
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, _Group] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text_of.splitlines(), 1):
        line = raw.split(" #")[0].strip()
        where = f"{path}:{number}"
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section, kind = _ini_section(line, where)
            groups.setdefault(section, ([], {}, []))
            continue
        group = groups.setdefault(section, ([], {}, []))
        if kind == "vars":
            group_vars = group[1]
            assert isinstance(group_vars, dict)
            group_vars.update(_ini_vars(path, line, section, where))
        elif kind == "children":
            group[2].append(line)
        else:
            name, host_vars = _ini_host(path, line, where)
            hosts[name] = deep_merge(hosts.get(name, {}), host_vars)
            group[0].append(name)
    for name, (_, _, children) in groups.items():
        for child in children:
            if child not in groups:
                raise InventoryError(f"{path}: group {name!r} has unknown child group {child!r}")
    base = groups.pop("all", ([], {}, []))
    return _build(str(path), base[1], hosts, groups)


def _looks_like_ansible_yaml(data: Any) -> bool:
    return isinstance(data, Mapping) and bool(data) and not ({"vars", "hosts", "groups"} & set(data)) and all(
        isinstance(g, Mapping) and ({"hosts", "children", "vars"} & set(g)) for g in data.values())


def load_inventory(file: str | Path) -> Inventory:
    """Read an inventory: own YAML/TOML, Ansible YAML, or Ansible INI (chosen by content)."""
    path = Path(file).expanduser()
    content = read_text(path, "inventory", MAX_INVENTORY_BYTES)
    if path.suffix == ".toml":
        return _own_format(path, parse_toml(content, str(path)))
    first = next((ln.strip() for ln in content.splitlines() if ln.strip() and not ln.strip().startswith(("#", ";"))),
                 "")
    if path.suffix in (".ini", ".cfg") or first.startswith("[") or (path.suffix == "" and "=" in first):
        return _ansible_ini(path, content)
    data = parse_yaml(content, str(path))
    if data is None:
        raise InventoryError(f"{path}: the inventory is empty")
    if not isinstance(data, Mapping):
        raise InventoryError(f"{path}: the top level must be a mapping (vars, hosts, groups), not a {type_name(data)}")
    if _looks_like_ansible_yaml(data):
        return _ansible_yaml(path, data)
    return _own_format(path, data)

