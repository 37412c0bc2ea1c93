"""Property tests of the input contract (tests/unit/contract.py): generated flags, host strings,
settings files, ``HOSTSETUP_*`` variables, inventories and templates, good and bad, through the real
program. Each run must end in exit 2 with one line and no host contacted, or in a plan from checked
values; never a traceback, an internal error or a hang.

``HOSTSETUP_CONTRACT_EXAMPLES`` sets how many inputs each test generates (default 120; the number
tried is printed at the end of the session, see conftest's terminal summary).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostsetup.config import HostsetupConfig
from hostsetup.daemon.settings import DAEMON_DEFAULTS
from hostsetup.doctor.findings import CODES
from hostsetup.settings import INSTALL_DEFAULTS
from tests.unit.contract import run_cli

EXAMPLES = int(os.environ.get("HOSTSETUP_CONTRACT_EXAMPLES", "120"))
CONTRACT = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOP_KEYS = sorted(HostsetupConfig.global_defaults())
TRICKY = ["", " ", "abc", "0", "-1", "-5", "1", "10", "99999", "65536", "1e3", "5%", "0%", "150%", "yes", "no",
          "maybe", "true", "a b", "x@y:z", "[::1]:22", "::1", "root@", "@host", "h:", ":22", "../../etc/passwd",
          "/nonexistent", "/dev/null", "/tmp", "~", "a,b", "a,,b", "a\tb", "é", "\u202e", "${HOME}", "$(id)",
          "`id`", "'", '"', "\\", "*", "!web", "official", "tuna", "http://x", "https://u:p@m.example/x", "25.0",
          "5:25.0.3-1~debian.12~bookworm", "latest"]


def typos(words: list[str]) -> st.SearchStrategy[str]:
    """Near misses of known names: a letter dropped, doubled or swapped."""
    def mangle(word: str, position: int, kind: int) -> str:
        if not word:
            return word
        i = position % len(word)
        if kind == 0:
            return word[:i] + word[i + 1:]
        if kind == 1:
            return word[:i] + word[i] + word[i:]
        return word[:i] + word[i + 1:i + 2] + word[i:i + 1] + word[i + 2:]
    return st.builds(mangle, st.sampled_from(words), st.integers(0, 40), st.integers(0, 2))


# hypothesis takes Literal category names; mypy infers a bare ("Cs",) argument as tuple[str], so it is typed here
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
no_nul_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=SURROGATES), max_size=24)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10 ** 6), 10 ** 6), st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(TRICKY), no_nul_text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.one_of(st.sampled_from(TRICKY), no_nul_text), inner, max_size=4),
                      max_leaves=12)
ports = st.one_of(st.integers(-10, 70000).map(str), st.sampled_from(["abc", "", "22", "0", "1e3", "+22", " 22"]))
hosts = st.one_of(
    st.sampled_from(TRICKY),
    no_nul_text,
    st.builds(lambda user, host, port: f"{user}{host}{port}",
              st.one_of(st.just(""), st.sampled_from(["root@", "a b@", "@", "admin@", "é@", "x:y@"])),
              st.one_of(st.sampled_from(["web1", "10.0.0.5", "[::1]", "::1", "a..b", "-x", "h_1", "x" * 300]),
                        no_nul_text),
              st.one_of(st.just(""), ports.map(lambda p: ":" + p))))


def shaped_like(defaults: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings with the defaults' own keys (and near misses), each value of the right shape or not."""
    keys = sorted(str(k) for k in defaults) or ["x"]

    def value_for(key: str) -> st.SearchStrategy[Any]:
        default = defaults.get(key)
        if isinstance(default, Mapping) and default and depth < 2:
            return st.one_of(shaped_like(default, depth + 1), values)
        return values
    pairs = st.one_of(st.sampled_from(keys), typos(keys)).flatmap(lambda k: st.tuples(st.just(k), value_for(k)))
    return st.lists(pairs, max_size=4).map(dict)


def settings_documents() -> st.SearchStrategy[dict[str, Any]]:
    top = st.dictionaries(st.one_of(st.sampled_from(TOP_KEYS), typos(TOP_KEYS), no_nul_text), values, max_size=3)
    return st.builds(lambda a, b: {**a, **b}, top, shaped_like(HostsetupConfig.global_defaults()))


def as_yaml(data: Any) -> bytes:
    try:
        return yaml.safe_dump(data, allow_unicode=True).encode()
    except yaml.YAMLError:
        return json.dumps(data, default=str).encode()


def corrupted(text: bytes, position: int, junk: bytes) -> bytes:
    i = position % (len(text) + 1)
    return text[:i] + junk + text[i:]


def files_from(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A document as YAML, as JSON, corrupted, or any bytes at all."""
    return st.one_of(
        documents.map(as_yaml),
        documents.map(lambda d: json.dumps(d, default=str).encode()),
        st.builds(corrupted, documents.map(as_yaml), st.integers(0, 400),
                  st.one_of(st.binary(max_size=8), st.sampled_from([b"\xff", b"\x00", b"&a [*a]", b"- x\n", b"{",
                                                                    b": :", b"\t", b"<<: *b\n"]))),
        st.binary(max_size=120),
        st.sampled_from([b"", b"- a\n- b\n", b"a: &a [*a]\n", b"x: 1\nx: 2\n", b"\xef\xbb\xbfparallel: 2\n",
                         b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                         b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                         b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"]))


def inventory_documents() -> st.SearchStrategy[Any]:
    host_vars = st.dictionaries(st.one_of(st.sampled_from(["host", "user", "port", "key", "install", "daemon"]),
                                          typos(["host", "user", "port"]), no_nul_text),
                                st.one_of(values, hosts, ports), max_size=3)
    names = st.one_of(st.sampled_from(["web1", "web2", "db1", "all", "*", "web1 "]), no_nul_text)
    group = st.dictionaries(st.sampled_from(["hosts", "vars", "children", "hostz"]),
                            st.one_of(st.lists(names, max_size=3), names, host_vars, values), max_size=3)
    return st.one_of(
        st.fixed_dictionaries({}, optional={
            "vars": st.one_of(host_vars, values),
            "hosts": st.one_of(st.dictionaries(names, st.one_of(st.none(), host_vars, values), max_size=4),
                               st.lists(names, max_size=4), values),
            "groups": st.one_of(st.dictionaries(names, st.one_of(st.none(), group), max_size=3), values)}),
        values)


FLAG_VALUES = {
    "--parallel": st.one_of(st.sampled_from(TRICKY), st.integers(-5, 2000).map(str)),
    "--batch": st.one_of(st.sampled_from(TRICKY), st.integers(-5, 200).map(lambda n: f"{n}%")),
    "--max-fail-percent": st.one_of(st.sampled_from(TRICKY), st.integers(-5, 200).map(str)),
    "--limit": st.one_of(st.sampled_from(TRICKY), no_nul_text),
    "-H": st.lists(hosts, min_size=1, max_size=3).map(",".join),
    "-i": st.sampled_from(["/nonexistent/key", "/dev/null", "/tmp", "KEY"]),
    "-S": st.sampled_from(["/nonexistent", "/tmp", "CONFIG"]),
    "-f": st.sampled_from(["/nonexistent.yaml", "/tmp", "CONFIG"]),
    "-T": st.sampled_from(TRICKY),
    "-t": st.sampled_from(TRICKY),
    "--list-format": st.sampled_from(["flat", "json", "bogus", ""]),
    "--list-depth": st.sampled_from(TRICKY),
    "--print-completion-script": st.sampled_from(["bash", "bogus"]),
    "--hide": st.sampled_from(["both", "bogus"]),
    "-c": st.sampled_from(TRICKY),
}
TASK_FLAG_VALUES = {
    "--mirror": st.sampled_from(TRICKY), "--version": st.sampled_from(TRICKY), "--users": st.sampled_from(TRICKY),
    "--key-fingerprint": st.one_of(st.sampled_from(TRICKY), st.text("0123456789ABCDEF ", max_size=50)),
    "--json": st.sampled_from(["/nonexistent/dir/r.json", "/tmp", "report.json", "", "/proc/1/x"]),
    "--hold": st.none(), "--no-plugins": st.none(), "--insecure-mirror": st.none(), "--bogus": st.none(),
}
CONFIGURE_FLAG_VALUES = {
    "--profile": st.sampled_from(["log-rotation", "production", "nope", "", "a,b"]),
    "--set": st.one_of(st.sampled_from(["log-driver=json-file", "a", "=", "debug=true", "hosts=[1]",
                                        "storage-driver=btrfs", "a.b=c"]), no_nul_text),
    "--template": st.sampled_from(["/nonexistent.j2", "TEMPLATE", "/tmp"]),
    "--json": TASK_FLAG_VALUES["--json"],
}


def flag_args(table: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[list[str]]:
    pair = st.sampled_from(sorted(table)).flatmap(lambda f: table[f].map(lambda v: [f] if v is None else [f, v]))
    return st.lists(pair, max_size=4).map(lambda pairs: [word for p in pairs for word in p])


def materialize(words: list[str], tmp: Path) -> list[str]:
    """Placeholders for files that exist: a key, a config, a template."""
    (tmp / "KEY").write_text("not really a key\n")
    (tmp / "CONFIG").write_text("parallel: 2\n")
    (tmp / "TEMPLATE").write_text('{"log-driver": "{{ driver | default(\'json-file\') }}"}\n')
    return [str(tmp / w) if w in ("KEY", "CONFIG", "TEMPLATE") else w for w in words]


@CONTRACT
@given(core=flag_args(FLAG_VALUES), task=st.sampled_from(["install", "configure"]),
       install=flag_args(TASK_FLAG_VALUES), configure=flag_args(CONFIGURE_FLAG_VALUES), host=hosts)
def test_generated_flags_keep_the_contract(core: list[str], task: str, install: list[str], configure: list[str],
                                           host: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        hosts_given = [] if "-H" in core else ["-H", host]
        task_args = install if task == "install" else configure
        run_cli(materialize([*hosts_given, *core, task, *task_args, "--dry-run"], tmp), tmp).check()


@CONTRACT
@given(content=files_from(settings_documents()), where=st.sampled_from(["project", "user", "runtime"]))
def test_generated_settings_files_keep_the_contract(content: bytes, where: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        path = {"project": tmp / "hostsetup.yaml", "user": tmp / ".hostsetup.yaml", "runtime": tmp / "run.yaml"}[where]
        path.write_bytes(content)
        runtime = ["-f", str(path)] if where == "runtime" else []
        run_cli([*runtime, "-H", "web1", "install", "--dry-run"], tmp).check()


env_names = st.one_of(
    st.sampled_from(["HOSTSETUP_PARALLEL", "HOSTSETUP_BATCH", "HOSTSETUP_MAX_FAIL_PERCENT", "HOSTSETUP_PORT",
                     "HOSTSETUP_USER", "HOSTSETUP_CONNECT_ATTEMPTS", "HOSTSETUP_INVENTORY", "HOSTSETUP_LIMIT",
                     "HOSTSETUP_HOSTS", "HOSTSETUP_SUDO_PASSWORD", "HOSTSETUP_TIMEOUTS_CONNECT",
                     *(f"HOSTSETUP_INSTALL_{k.upper()}" for k in INSTALL_DEFAULTS),
                     *(f"HOSTSETUP_DAEMON_{k.upper()}" for k in DAEMON_DEFAULTS)]),
    typos(["HOSTSETUP_PARALLEL", "HOSTSETUP_INSTALL_MIRROR", "HOSTSETUP_INSTALL_HOLD"]))


@CONTRACT
@given(env=st.dictionaries(env_names, st.one_of(st.sampled_from(TRICKY), no_nul_text), max_size=4))
def test_generated_environment_keeps_the_contract(env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as name:
        run_cli(["-H", "web1", "install", "--dry-run"], Path(name), env).check()


@CONTRACT
@given(content=st.one_of(files_from(inventory_documents()),
                         st.lists(st.one_of(st.sampled_from(["[web]", "[web:vars]", "[all:children]", "[bad",
                                                             "web1 ansible_port=abc", "web1 ansible_host=10.0.0.5",
                                                             "ansible_user=a b", "x=", "web2 ansible_port=99999"]),
                                            no_nul_text), max_size=6).map(lambda ls: "\n".join(ls).encode())),
       suffix=st.sampled_from([".yaml", ".toml", ".ini", ""]),
       limit=st.one_of(st.none(), st.sampled_from(["web", "web1", "nope", "!web1", "*", ",", "db*"])))
def test_generated_inventories_keep_the_contract(content: bytes, suffix: str, limit: str | None) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        path = tmp / f"inventory{suffix}"
        path.write_bytes(content)
        run_cli(["--inventory", str(path), *(["--limit", limit] if limit else []), "install", "--dry-run"],
                tmp).check()


@CONTRACT
@given(template=st.one_of(st.sampled_from(['{"a": {{ 1 + "x" }}}', "{% if %}", "[1]", "{{ undefined_var }}",
                                           '{"debug": {{ flag }}}', "{{ range(10**9) | list }}", "{% include 'x' %}",
                                           '{"a": "{{ "x" * 3 }}"}', "{{ self.__init__ }}", "{}"]),
                          no_nul_text),
       variables=st.dictionaries(st.sampled_from(["flag", "driver", "x"]), values, max_size=2))
def test_generated_templates_keep_the_contract(template: str, variables: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "daemon.json.j2").write_text(template)
        (tmp / "hostsetup.yaml").write_text(json.dumps({"daemon": {"vars": variables}}, default=str))
        run_cli(["-H", "web1", "configure", "--template", str(tmp / "daemon.json.j2"), "--dry-run"], tmp).check()


@CONTRACT
@given(word=st.one_of(no_nul_text, st.sampled_from([*CODES, "all", "ALL", " healthy ", "START_LIMIT"])))
def test_generated_explain_codes_keep_the_contract(word: str) -> None:
    """``doctor --explain WORD``: a code (any case, ALL) is explained; anything else is exit 2, one line."""
    with tempfile.TemporaryDirectory() as name:
        outcome = run_cli(["doctor", "--explain", word], Path(name))
        outcome.check()
        known = word.strip().upper() in (*CODES, "ALL")
        assert outcome.code == (0 if known else 2), (word, outcome.stderr)
        if known:
            assert outcome.stdout.splitlines()[0].split(":")[0] in CODES


def test_a_run_leaves_no_secret_registered_for_later_tests() -> None:
    """A generated sudo password such as "official" is masked in that run only: left registered, it masked
    "repository (official)" in the golden plans that ran later in the same process."""
    from hostsetup import secrets
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "hostsetup.yaml").write_text("sudo:\n  password: official\n")
        run_cli(["-H", "web1", "install", "--dry-run"], tmp).check()
    assert secrets.mask("repository (official)") == "repository (official)"
