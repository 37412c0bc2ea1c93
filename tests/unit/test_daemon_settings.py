"""daemon.json rendering: profiles, user templates, canonical JSON, ExecStart parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostsetup.daemon.settings import DaemonSettingsError, canonical_json, daemon_settings
from hostsetup.host.dockerd import drop_flags, effective_execstart, flag_names

GOLDEN = Path(__file__).parent / "golden" / "daemon"


@pytest.mark.parametrize(("name", "raw"), [
    ("log-rotation", {"profiles": ["log-rotation"]}),
    ("registry-mirrors", {"profiles": "registry-mirrors",
                          "vars": {"registry_mirrors": ["https://mirror.example.com"]}}),
    ("production", {"profiles": ["production"], "vars": {"log_max_size": "64m", "log_max_file": 5}}),
    ("layered", {"profiles": ["production", "registry-mirrors"],
                 "vars": {"registry_mirrors": ["https://a.example", "https://b.example"]},
                 "settings": {"live-restore": False, "data-root": "/srv/docker"}}),
])
def test_profiles_render_canonical_json(name: str, raw: dict, monkeypatch) -> None:
    text = canonical_json(daemon_settings(raw).config)
    golden = GOLDEN / f"{name}.json"
    if __import__("os").environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert text.endswith("}\n") and json.loads(text) == daemon_settings(raw).config


def test_later_layers_win_and_sources_are_tracked() -> None:
    s = daemon_settings({"profiles": ["production"], "settings": {"live-restore": False}})
    assert s.config["live-restore"] is False
    assert s.sources == {"live-restore": "daemon.settings", "log-driver": "profile production",
                         "log-opts": "profile production", "userland-proxy": "profile production"}


def test_canonical_json_is_sorted_and_never_html_escaped() -> None:
    text = canonical_json({"labels": ["a<b>&'c"], "debug": True})
    assert text == '{\n  "debug": true,\n  "labels": [\n    "a<b>&\'c"\n  ]\n}\n'


def test_user_template_with_strict_variables(tmp_path: Path) -> None:
    template = tmp_path / "mine.json.j2"
    template.write_text('{"labels": [{{ ("site=" ~ site) | json }}], "debug": {{ debug | json }}}')
    s = daemon_settings({"template": str(template), "vars": {"site": "<ams>", "debug": True}})
    assert s.config == {"labels": ["site=<ams>"], "debug": True}
    with pytest.raises(DaemonSettingsError, match="'debug' is undefined"):
        daemon_settings({"template": str(template), "vars": {"site": "x"}})


@pytest.mark.parametrize(("raw", "message"), [
    ({"profiles": ["registry-mirrors"]}, "registry_mirrors"),
    ({"profiles": ["turbo"]}, "unknown daemon profile 'turbo'"),
    ({"template": "/nonexistent.j2"}, "does not exist"),
    ({"setings": {}}, "unknown daemon setting"),
])
def test_bad_settings(raw: dict, message: str) -> None:
    with pytest.raises(DaemonSettingsError, match=message):
        daemon_settings(raw)


UNIT = """# /lib/systemd/system/docker.service
[Service]
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID

# /etc/systemd/system/docker.service.d/override.conf
[Service]
ExecStart=
ExecStart=/usr/bin/dockerd -H fd:// -H tcp://127.0.0.1:2375 --debug
"""


def test_effective_execstart_follows_drop_ins() -> None:
    assert effective_execstart(UNIT) == "/usr/bin/dockerd -H fd:// -H tcp://127.0.0.1:2375 --debug"
    assert effective_execstart("ExecStart=/a\nExecStart=\n") is None
    assert effective_execstart("") is None


@pytest.mark.parametrize(("command", "flags", "kept", "removed"), [
    ("/usr/bin/dockerd -H fd:// --containerd=/run/c.sock", {"-H", "--host"},
     "/usr/bin/dockerd --containerd=/run/c.sock", ["-H", "fd://"]),
    ("/usr/bin/dockerd --host=fd:// -Hunix:///x.sock --debug", {"-H", "--host"},
     "/usr/bin/dockerd --debug", ["--host=fd://", "-Hunix:///x.sock"]),
    ("/usr/bin/dockerd --debug", {"-H", "--host"}, "/usr/bin/dockerd --debug", []),
])
def test_drop_flags(command: str, flags: set[str], kept: str, removed: list[str]) -> None:
    assert drop_flags(command, flags) == (kept, removed)


def test_boolean_flag_takes_no_value() -> None:
    assert drop_flags("/usr/bin/dockerd -D -H fd://", {"-D", "--debug"}, takes_value=False) == (
        "/usr/bin/dockerd -H fd://", ["-D"])


def test_flag_names() -> None:
    assert flag_names("-H, --host") == {"-H", "--host"}
    assert flag_names("(none)") == set() and flag_names(None) == set()


def test_pre_host_check_refuses_only_what_no_engine_accepts() -> None:
    from hostsetup.daemon.plan import DaemonPlanError, check_settings

    check_settings(daemon_settings({"settings": {"graph": "/srv/docker"}}))  # fine on 20.10: decided per host
    check_settings(daemon_settings({"settings": {"proxies": {"http-proxy": "http://p:3128"}}}))  # 23.0+: per host
    with pytest.raises(DaemonPlanError, match="log-level"):
        check_settings(daemon_settings({"settings": {"log-level": "loud"}}))
    with pytest.raises(DaemonPlanError, match="did you mean 'registry-mirrors'"):
        check_settings(daemon_settings({"settings": {"registry-mirror": ["https://m.example"]}}))
