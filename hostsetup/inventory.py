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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hostsetup.errors import HostsetupError

CONNECTION_VARS = ("host", "user", "port", "key")
SETTING_VARS = ("install", "daemon")
ANSIBLE_VARS = {"ansible_host": "host", "ansible_user": "user", "ansible_port": "port",
                "ansible_ssh_private_key_file": "key", "ansible_ssh_host": "host", "ansible_ssh_user": "user",
                "ansible_ssh_port": "port"}


class InventoryError(HostsetupError):
    """The inventory cannot be read; the message names the file, line and reason."""


@dataclass(frozen=True)
class InventoryHost:
    """One host with its merged variables."""

    name: str
    groups: tuple[str, ...]
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """A Fabric host string: ``user@host:port`` from the variables (the name when no ``host``)."""
        address = str(self.vars.get("host") or self.name)
        user = self.vars.get("user")
        port = self.vars.get("port")
        return f"{user + '@' if user else ''}{address}{':' + str(port) if port else ''}"

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


# -- reading YAML with line numbers -------------------------------------------------------

class _Located(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key (1-based)."""

    lines: dict[str, int]


def _to_python(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = _Located()
        out.lines = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node)
            out[str(key)] = _to_python(value_node)
            out.lines[str(key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n) for n in node.value]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _load_yaml(path: Path) -> Any:
    try:
        node = yaml.compose(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InventoryError(f"{path}{line}: {exc.problem}") from None
    return _to_python(node) if node is not None else {}


def _where(path: Path, mapping: Any, key: str) -> str:
    line = getattr(mapping, "lines", {}).get(key)
    return f"{path}:{line}" if line else str(path)


# -- own format -----------------------------------------------------------------------------

def _check_keys(path: Path, mapping: Any, allowed: set[str], what: str) -> None:
    if not isinstance(mapping, Mapping):
        raise InventoryError(f"{path}: {what} must be a mapping")
    for key in mapping:
        if key not in allowed:
            raise InventoryError(f"{_where(path, mapping, key)}: unknown key {key!r} in {what} "
                                 f"(expected {', '.join(sorted(allowed))})")


def _own_format(path: Path, data: Any) -> Inventory:
    _check_keys(path, data, {"vars", "hosts", "groups"}, "the inventory")
    base_vars = data.get("vars") or {}
    raw_hosts = data.get("hosts") or {}
    if isinstance(raw_hosts, list):
        raw_hosts = {str(h): {} for h in raw_hosts}
    _check_keys(path, raw_hosts, set(raw_hosts), "hosts")
    for name, host_vars in raw_hosts.items():
        if host_vars is not None and not isinstance(host_vars, Mapping):
            raise InventoryError(f"{_where(path, raw_hosts, name)}: host {name!r} must map to variables")
    raw_groups = data.get("groups") or {}
    for name, group in raw_groups.items():
        _check_keys(path, group or {}, {"hosts", "vars", "children"}, f"group {name!r}")
        for member in (group or {}).get("hosts") or []:
            raw_hosts.setdefault(str(member), {})
    groups = {n: (dict(g or {}).get("hosts") or [], dict(g or {}).get("vars") or {},
                  dict(g or {}).get("children") or []) for n, g in raw_groups.items()}
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
    return Inventory(inventory_hosts, {**resolved, "all": tuple(hosts)}, source)


# -- Ansible --------------------------------------------------------------------------------

def _ansible_vars(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        out[ANSIBLE_VARS.get(key, key)] = value
    return out


def _ansible_yaml(path: Path, data: Any) -> Inventory:
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, tuple[list[Any], Mapping[str, Any], list[str]]] = {}

    def walk(name: str, group: Any) -> None:
        group = group or {}
        if not isinstance(group, Mapping):
            raise InventoryError(f"{path}: group {name!r} must be a mapping")
        member_hosts = group.get("hosts") or {}
        for host, host_vars in member_hosts.items():
            hosts[str(host)] = deep_merge(hosts.get(str(host), {}), _ansible_vars(host_vars or {}))
        children = group.get("children") or {}
        groups[name] = (list(member_hosts), _ansible_vars(group.get("vars") or {}), list(children))
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


def _ansible_ini(path: Path) -> Inventory:
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, tuple[list[Any], Mapping[str, Any], list[str]]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InventoryError(f"{path}:{number}: unclosed section header {line!r}")
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"{path}:{number}: unknown section kind {kind!r}")
            groups.setdefault(section, ([], {}, []))
            continue
        group = groups.setdefault(section, ([], {}, []))
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise InventoryError(f"{path}:{number}: expected key=value in [{section}:vars]")
            group_vars = group[1]
            assert isinstance(group_vars, dict)
            group_vars[ANSIBLE_VARS.get(key.strip(), key.strip())] = _ini_value(value)
        elif kind == "children":
            group[2].append(line)
        else:
            match = _INI_HOST.match(line)
            if not match:
                raise InventoryError(f"{path}:{number}: cannot read host line {line!r}")
            name = match.group(1)
            assignments = re.findall(r"""(\S+?)=("[^"]*"|'[^']*'|\S+)""", match.group(2))
            host_vars = {ANSIBLE_VARS.get(k, k): _ini_value(v) for k, v in assignments}
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
    if not path.is_file():
        raise InventoryError(f"inventory {path} does not exist")
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InventoryError(f"{path}: {exc}") from None
        return _own_format(path, data)
    text = path.read_text()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("#", ";"))),
                 "")
    if path.suffix in (".ini", ".cfg") or first.startswith("[") or (path.suffix == "" and "=" in first):
        return _ansible_ini(path)
    data = _load_yaml(path)
    if _looks_like_ansible_yaml(data):
        return _ansible_yaml(path, data)
    return _own_format(path, data)

