"""Inventories: own YAML/TOML format, Ansible INI/YAML import, selection, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostsetup.inputs import InputError
from hostsetup.inventory import InventoryError, deep_merge, load_inventory

OWN = """
vars:
  user: admin
  install: {mirror: tuna}
hosts:
  web1: {host: 10.0.0.5}
  web2: {host: 10.0.0.6, port: 2222, key: ~/.ssh/web}
  db1: {}
groups:
  web:
    hosts: [web1, web2]
    vars: {install: {users: [deploy]}}
  prod:
    children: [web]
    hosts: [db1]
    vars: {user: root}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_own_yaml_merges_vars_parents_first(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "inv.yaml", OWN))
    web2 = inv.hosts["web2"]
    assert web2.groups == ("prod", "web")
    assert web2.target == "root@10.0.0.6:2222"
    assert web2.key == str(Path("~/.ssh/web").expanduser())
    assert web2.settings("install") == {"mirror": "tuna", "users": ["deploy"]}
    assert inv.hosts["db1"].target == "root@db1" and inv.hosts["db1"].settings("install") == {"mirror": "tuna"}
    assert inv.groups["prod"] == ("db1", "web1", "web2")


def test_toml_is_the_same_format(tmp_path: Path) -> None:
    text = '[vars]\nuser = "ops"\n[hosts.a]\nhost = "10.1.0.1"\n[groups.g]\nhosts = ["a"]\n'
    inv = load_inventory(write(tmp_path, "inv.toml", text))
    assert inv.hosts["a"].target == "ops@10.1.0.1" and inv.groups["g"] == ("a",)


@pytest.mark.parametrize(("limit", "names"), [
    ("web", ["web1", "web2"]), ("web,!web2", ["web1"]), ("db*", ["db1"]), ("prod,!web", ["db1"]),
    (None, ["web1", "web2", "db1"]),
])
def test_limit(tmp_path: Path, limit: str | None, names: list[str]) -> None:
    inv = load_inventory(write(tmp_path, "inv.yaml", OWN))
    assert [h.name for h in inv.select(limit)] == names


def test_limit_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="matches no host or group"):
        load_inventory(write(tmp_path, "inv.yaml", OWN)).select("nope")


def test_ansible_ini(tmp_path: Path) -> None:
    text = """# ansible
db1 ansible_host=10.0.0.9
[web]
web1 ansible_host=10.0.0.5 ansible_user=admin
web2 ansible_host=10.0.0.6 ansible_port=2222 ansible_ssh_private_key_file=/k/web

[web:vars]
ansible_user=deploy

[prod:children]
web
"""
    inv = load_inventory(write(tmp_path, "hosts", text))
    assert inv.hosts["web1"].target == "admin@10.0.0.5"  # host var beats group var
    assert inv.hosts["web2"].target == "deploy@10.0.0.6:2222" and inv.hosts["web2"].key == "/k/web"
    assert inv.hosts["db1"].target == "10.0.0.9"
    assert inv.groups["prod"] == ("web1", "web2")


def test_ansible_yaml(tmp_path: Path) -> None:
    text = """all:
  vars: {ansible_user: ops}
  children:
    web:
      hosts:
        web1: {ansible_host: 10.0.0.5}
      vars: {ansible_port: 2200}
      children:
        canary:
          hosts:
            web9: {ansible_host: 10.0.0.99, ansible_port: 22}
"""
    inv = load_inventory(write(tmp_path, "inv.yml", text))
    assert inv.hosts["web1"].target == "ops@10.0.0.5:2200"
    assert inv.hosts["web9"].target == "ops@10.0.0.99:22"
    assert inv.groups["web"] == ("web1", "web9")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.yaml", "hosts:\n  web1: {host: [unclosed\n", r"bad\.yaml:\d+: "),
    ("bad.yaml", "vars: {}\nhostz:\n  a: {}\n", r"bad\.yaml:2: unknown key 'hostz'"),
    ("bad.yaml", "groups:\n  web: {children: [nope]}\n", r"bad\.yaml:2: group 'web' has unknown child group 'nope'"),
    ("bad.ini", "[web\nweb1\n", r"bad\.ini:1: unclosed section header"),
    ("bad.ini", "[web:vars]\nnovalue\n", r"bad\.ini:2: expected key=value"),
    ("bad.toml", "[hosts\n", r"bad\.toml: "),
])
def test_malformed_inventory_names_file_line_and_reason(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_inventory(write(tmp_path, name, text))


def test_deep_merge() -> None:
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "b": {"z": 1}}) == {
        "a": {"x": 1, "y": 3}, "b": {"z": 1}}
