"""The validation layer, case by case: each malformed input of the issue ends in exit 2 with one
line naming its source, before any host is contacted (tests/unit/contract.py runs the program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostsetup.inputs import InputError
from hostsetup.inputs.files import parse_yaml
from hostsetup.inputs.values import host_string
from tests.unit.contract import run_cli

BOMB = ("a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n")


def refused(outcome, *fragments: str) -> None:
    outcome.check()
    assert outcome.code == 2, outcome
    for fragment in fragments:
        assert fragment in outcome.stderr, outcome.stderr


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--parallel", "abc", "-H", "a", "install"], ["--parallel: 'abc' is not a whole number"]),
    (["--parallel", "0", "-H", "a", "install"], ["--parallel: 0 is out of range"]),
    (["-H", "a:99999", "install"], ["port: 99999 is out of range"]),
    (["-H", "a:-5", "install"], ["port: -5 is out of range"]),
    (["-H", "host:abc", "install"], ["port: 'abc' is not a whole number"]),
    (["-H", "a b@c", "install"], ["'a b' is not a user name"]),
    (["-H", "a,a", "install"], ["are the same host"]),
    (["-S", "/nonexistent", "-H", "a", "install"], ["-S: /nonexistent does not exist"]),
    (["-f", "/nonexistent.yaml", "-H", "a", "install"], ["-f: /nonexistent.yaml does not exist"]),
    (["-i", "/nonexistent/key", "-H", "a", "install"], ["-i: /nonexistent/key does not exist"]),
    (["-H", "a", "install", "--json", "/nonexistent/dir/r.json"], ["--json: the directory /nonexistent/dir"]),
    (["-H", "a", "install", "--bogus"], ["unknown option or task '--bogus'"]),
    (["-H", "a", "install", "--dry-rn"], ["did you mean '--dry-run'"]),
    (["-T", "x", "-H", "a", "install"], ["-T: 'x' is not a whole number"]),
    (["--batch", "150%", "-H", "a", "install"], ["--batch: '150%'"]),
])
def test_bad_flags(tmp_path: Path, argv: list[str], fragments: list[str]) -> None:
    refused(run_cli(argv, tmp_path), *fragments)


@pytest.mark.parametrize(("content", "fragments"), [
    (b"paralel: 3\n", ["hostsetup.yaml:1: paralel: unknown setting (did you mean 'parallel'?)"]),
    (b"parallel: abc\n", ["hostsetup.yaml:1: parallel: 'abc' is not a whole number"]),
    (b"- a\n- b\n", ["the top level must be a mapping"]),
    (b"install: [1, 2]\n", ["hostsetup.yaml:1: install: expected a mapping"]),
    (b"install:\n  mirorr: tuna\n", ["hostsetup.yaml:2: install.mirorr: unknown setting (did you mean 'mirror'?)"]),
    (b"install:\n  version: 25.10\n", ["put it in quotes"]),
    (b"\xff\xfeparallel: 2\n", ["hostsetup.yaml:1: not UTF-8 text"]),
    (b"parallel: [unclosed\n", ["hostsetup.yaml:2: not valid YAML"]),
    (b"a: &a [*a]\n", ["recursive alias"]),
    (BOMB.encode(), ["alias bomb"]),
    (b"parallel: 2\nparallel: 3\n", ["hostsetup.yaml:2: 'parallel' is given twice (first on line 1)"]),
    (b"port: -5\n", ["port: -5 is out of range"]),
    (b"gateway: {}\n", ["gateway: expected a single value"]),
])
def test_bad_settings_files(tmp_path: Path, content: bytes, fragments: list[str]) -> None:
    (tmp_path / "hostsetup.yaml").write_bytes(content)
    refused(run_cli(["-H", "a", "install"], tmp_path), *fragments)


@pytest.mark.parametrize(("env", "fragment"), [
    ({"HOSTSETUP_PARALLEL": "abc"}, "HOSTSETUP_PARALLEL: 'abc' is not a whole number"),
    ({"HOSTSETUP_PARALLEL": "0"}, "HOSTSETUP_PARALLEL: 0 is out of range"),
    ({"HOSTSETUP_INSTALL_HOLD": "maybe"}, "HOSTSETUP_INSTALL_HOLD: 'maybe' is not a boolean"),
    ({"HOSTSETUP_INSTALL_MIRORR": "tuna"}, "did you mean 'HOSTSETUP_INSTALL_MIRROR'"),
])
def test_bad_environment(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    refused(run_cli(["-H", "a", "install"], tmp_path, env), fragment)


@pytest.mark.parametrize(("content", "fragment"), [
    ("hosts:\n  a: {port: abc}\n", "inventory.yaml:2: port: 'abc' is not a whole number"),
    ("hosts:\n  a: {port: -5}\n", "port: -5 is out of range"),
    ("hosts:\n  a: {user: 'a b'}\n", "'a b' is not a user name"),
    ("hosts: [a, a]\n", "'a' is listed twice"),
    ("hosts:\n  a: {}\n  a: {}\n", "'a' is given twice"),
    ("hosts:\n  a: {host: 10.0.0.1}\n  b: {host: 10.0.0.1}\n", "are the same machine"),
    ("groups:\n  web: {hosts: abc}\n", "must be a list of names"),
    ("paralel: 3\n", "unknown key 'paralel' in the inventory"),
    ("hosts:\n  a: {prot: 22}\n", "did you mean 'port'"),
    ("hosts:\n  a: {key: /nonexistent/key}\n", "key: /nonexistent/key does not exist"),
    ("hosts:\n  a: {install: {mirorr: x}}\n", "inventory.yaml:2: install.mirorr: unknown setting"),
    ("[web]\nweb1 ansible_port=abc\n", "inventory.yaml:2: port: 'abc' is not a whole number"),
])
def test_bad_inventories(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "inventory.yaml").write_text(content)
    refused(run_cli(["--inventory", str(tmp_path / "inventory.yaml"), "install"], tmp_path), fragment)


def test_host_given_with_h_and_in_the_inventory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text("hosts:\n  web1: {host: 10.0.0.5}\n")
    refused(run_cli(["-H", "10.0.0.5", "--inventory", str(tmp_path / "inv.yaml"), "install"], tmp_path),
            "is also inventory host 'web1'")


def test_a_big_inventory_is_refused_quickly(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text("hosts:\n" + "".join(f"  h{i}: {{port: 22}}\n" for i in range(400_000)))
    refused(run_cli(["--inventory", str(tmp_path / "inv.yaml"), "install"], tmp_path), "larger than 1024 KiB")


def test_good_input_reaches_the_hosts_with_checked_values(tmp_path: Path) -> None:
    (tmp_path / "hostsetup.yaml").write_text("parallel: '4'\ninstall: {hold: 'yes'}\n")
    outcome = run_cli(["-H", "admin@web1:2222,[::1]:22", "--max-fail-percent", "50", "install", "--dry-run"],
                      tmp_path, {"HOSTSETUP_CONNECT_ATTEMPTS": "2"})
    outcome.check()
    assert outcome.code == 0, outcome
    assert [address for address, _ in outcome.reached] == ["admin@web1:2222", "[::1]:22"]
    config = outcome.reached[0][1]
    assert (config.parallel, config.max_fail_percent, config.connect_attempts, config.install.hold) == (4, 50, 2, True)


@pytest.mark.parametrize(("text", "expected"), [
    ("web1", ("web1", None, None)), ("root@10.0.0.5:2222", ("10.0.0.5", "root", 2222)),
    ("[::1]:22", ("::1", None, 22)), ("::1", ("::1", None, None)), ("a.b-c_d", ("a.b-c_d", None, None)),
])
def test_host_strings(text: str, expected: tuple[str, str | None, int | None]) -> None:
    spec = host_string(text, "-H")
    assert (spec.host, spec.user, spec.port) == expected


@pytest.mark.parametrize("text", ["", "a b", "@h", "h:", "h:0", "h:65536", "a..b", "[::1", "u@h@", "-x", "h/x"])
def test_bad_host_strings(text: str) -> None:
    with pytest.raises(InputError):
        host_string(text, "-H")


def test_yaml_merge_keys_and_lines() -> None:
    data = parse_yaml("base: &b {user: a, port: 2}\nhost:\n  <<: *b\n  port: 3\n", "f.yaml")
    assert data["host"] == {"user": "a", "port": 3}
    assert data.lines == {"base": 1, "host": 2} and data["host"].lines["port"] == 4


@pytest.mark.parametrize(("argv", "fragments"), [
    (["-H", "a", "configure", "--registry-ca", "ca.crt"], ["--registry-ca takes REGISTRY=FILE"]),
    (["-H", "a", "configure", "--registry-ca", "a/b=ca.crt"], ["--registry-ca 'a/b' is not a registry name"]),
    (["-H", "a", "configure", "--registry-ca", "r.example.com:99999=ca.crt"], ["the port must be a number"]),
    (["-H", "a", "configure", "--registry-ca", "r.example.com=/nonexistent.crt"],
     ["CA certificate for r.example.com /nonexistent.crt does not exist"]),
    (["-H", "a", "configure", "--registry-ca", "r.example.com=hostsetup.yaml"], ["holds no PEM certificate"]),
    (["-H", "a", "configure", "--set", 'insecure-registries=["r.example.com"]'], ["--insecure-registry"]),
    (["-H", "a", "configure", "--insecure-registry", "r.example.com/x"], ["is not a registry name"]),
    (["-H", "a", "verify", "--pull", "Bad Image"], ["--pull 'Bad Image' is not an image reference"]),
    (["-H", "a", "login"], ["login"]),
    (["-H", "a", "login", "r.example.com;id", "--username", "u"], ["is not a registry name"]),
    (["-H", "a", "login", "r.example.com"], ["give --username"]),
    (["-H", "a", "login", "r.example.com", "--username", "a:b", "--password-file", "hostsetup.yaml"],
     ["has no ':'"]),
    (["-H", "a", "login", "r.example.com", "--username", "u", "--password-file", "/nonexistent"],
     ["password file /nonexistent does not exist"]),
    (["-H", "a", "login", "r.example.com", "--username", "u", "--password-file", "empty.txt"], ["is empty"]),
    (["-H", "a", "login", "r.example.com", "--username", "u"], ["no password for u at r.example.com"]),
    (["-H", "a", "login", "r.example.com", "--username", "u", "--users", "a b", "--password-file", "hostsetup.yaml"],
     ["'a b' is not a valid user name"]),
])
def test_registry_inputs(tmp_path: Path, argv: list[str], fragments: list[str]) -> None:
    (tmp_path / "hostsetup.yaml").write_text("parallel: 2\n")
    (tmp_path / "empty.txt").write_text("\n")
    outcome = run_cli(argv, tmp_path)
    refused(outcome, *fragments)
    assert not outcome.reached, "no host may be contacted"
