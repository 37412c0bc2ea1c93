"""Planning the daemon.json step on recorded hosts (dockerd 20.10 on Debian 12, 26.1 on Debian 13)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hostsetup.daemon.plan import DaemonPlanError, plan_daemon
from hostsetup.daemon.settings import daemon_settings
from hostsetup.facts import HostFacts, parse_facts
from hostsetup.host.paths import DAEMON_JSON, EXECSTART_DROPIN, PROXY_DROPIN
from hostsetup.operations import ConfigureDaemon, WriteFile

DATA = Path(__file__).parent / "data" / "facts"


def host(name: str, daemon_json: dict | None = None) -> HostFacts:
    facts = parse_facts((DATA / f"{name}.txt").read_text())
    if daemon_json is not None:
        facts = dataclasses.replace(facts, files={**facts.files, DAEMON_JSON: json.dumps(daemon_json)})
    return facts


def configure_op(step) -> ConfigureDaemon:
    return next(op for op in step.operations if isinstance(op, ConfigureDaemon))


def test_merge_keeps_host_keys_and_says_so() -> None:
    step = plan_daemon(host("debian12-converged", {"debug": True}),
                       daemon_settings({"settings": {"registry-mirrors": ["https://m.example"]}}))
    op = configure_op(step)
    assert op.content is not None
    assert json.loads(op.content) == {"debug": True, "registry-mirrors": ["https://m.example"]}
    assert "keep debug" in step.summary and not op.restart  # registry-mirrors reloads on SIGHUP


def test_replace_owns_the_whole_file_and_restart_when_a_key_goes() -> None:
    step = plan_daemon(host("debian12-converged", {"debug": True, "log-driver": "local"}),
                       daemon_settings({"settings": {"debug": True}, "replace": True}))
    op = configure_op(step)
    assert op.content is not None
    assert json.loads(op.content) == {"debug": True} and op.restart


def test_identical_content_plans_nothing() -> None:
    facts = host("debian13-converged", {"registry-mirrors": ["https://m.example"]})
    step = plan_daemon(facts, daemon_settings({"settings": {"registry-mirrors": ["https://m.example"]}}))
    assert not step.changes and "up to date" in step.summary


def test_hosts_key_moves_the_flag_into_a_drop_in() -> None:
    step = plan_daemon(host("debian13-converged"),
                       daemon_settings({"settings": {"hosts": ["unix:///var/run/docker.sock"]}}))
    dropin = next(op for op in step.operations if isinstance(op, WriteFile) and op.path == EXECSTART_DROPIN)
    assert "ExecStart=\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock" in dropin.content
    assert configure_op(step).restart and configure_op(step).reload_units


def test_proxies_go_to_a_drop_in_before_23_and_to_daemon_json_after() -> None:
    proxies = {"settings": {"proxies": {"http-proxy": "http://user:s3cret@proxy:3128", "no-proxy": "localhost"}}}
    old = plan_daemon(host("debian12-converged"), daemon_settings(proxies))
    dropin = next(op for op in old.operations if isinstance(op, WriteFile) and op.path == PROXY_DROPIN)
    assert 'Environment="HTTP_PROXY=http://user:s3cret@proxy:3128"' in dropin.content
    assert 'Environment="NO_PROXY=localhost"' in dropin.content
    new = plan_daemon(host("debian13-converged"), daemon_settings(proxies))
    new_content = configure_op(new).content
    assert new_content is not None
    assert "proxies" in json.loads(new_content)
    assert not any(isinstance(op, WriteFile) and op.path == PROXY_DROPIN for op in new.operations)


def test_percent_in_proxy_is_escaped_for_systemd() -> None:
    step = plan_daemon(host("debian12-converged"),
                       daemon_settings({"settings": {"proxies": {"http-proxy": "http://u:p%40ss@proxy:3128"}}}))
    dropin = next(op for op in step.operations if isinstance(op, WriteFile) and op.path == PROXY_DROPIN)
    assert "p%%40ss" in dropin.content


def test_tcp_without_tls_refused_unless_allowed_then_warned() -> None:
    tcp = {"settings": {"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}}
    with pytest.raises(DaemonPlanError, match="--allow-insecure-tcp"):
        plan_daemon(host("debian13-converged"), daemon_settings(tcp))
    step = plan_daemon(host("debian13-converged"), daemon_settings({**tcp, "allow_insecure_tcp": True}))
    assert any("hands out root" in w for w in step.warnings)


TLS = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
       "tlskey": "/etc/docker/key.pem"}


# What the schema lets through (other schemes are refused before this check); no scheme means tcp.
@pytest.mark.parametrize("address", ["0.0.0.0:2375", ":2375", "127.0.0.1:2375", "tcp://", "tcp://0.0.0.0:2375"])
@pytest.mark.parametrize("tls", [{}, {"tls": True}, {"tlsverify": True}, {**TLS, "tlsverify": False},
                                 {**TLS, "tlskey": ""}])
def test_tcp_in_any_form_without_full_tls_verification_is_refused(address: str, tls: dict) -> None:
    settings = {"settings": {"hosts": ["unix:///var/run/docker.sock", address], **tls}}
    with pytest.raises(DaemonPlanError, match=f"hosts {address} without TLS verification"):
        plan_daemon(host("debian13-converged"), daemon_settings(settings))


def test_tcp_with_tls_verification_is_planned_without_a_warning() -> None:
    settings = {"settings": {"hosts": ["fd://", "tcp://0.0.0.0:2376"], **TLS}}
    step = plan_daemon(host("debian13-converged"), daemon_settings(settings))
    assert step.changes and not any("hands out root" in w for w in step.warnings)


def test_tls_verification_may_come_from_the_unit_flags() -> None:
    facts = host("debian13-converged")
    flags = "--tlsverify --tlscacert=/etc/docker/ca.pem --tlscert /etc/docker/cert.pem --tlskey=/etc/docker/key.pem"
    unit = f"[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// {flags}\n"
    tcp = daemon_settings({"settings": {"hosts": ["0.0.0.0:2376"]}})
    assert plan_daemon(dataclasses.replace(facts, docker_unit=unit), tcp).changes
    with pytest.raises(DaemonPlanError, match="--allow-insecure-tcp"):
        plan_daemon(dataclasses.replace(facts, docker_unit=unit.replace("--tlsverify", "--tlsverify=false")), tcp)


def test_engine_version_decides() -> None:
    graph = daemon_settings({"settings": {"graph": "/srv/docker"}})
    with pytest.raises(DaemonPlanError, match="graph"):
        plan_daemon(host("debian13-converged"), graph)
    step = plan_daemon(host("debian12-converged"), graph)  # 20.10 still reads it: a warning
    assert step.changes and step.warnings


def test_invalid_json_on_host_is_refused_unless_replace() -> None:
    facts = dataclasses.replace(host("debian12-converged"),
                                files={**host("debian12-converged").files, DAEMON_JSON: "{not json"})
    with pytest.raises(DaemonPlanError, match="not valid JSON"):
        plan_daemon(facts, daemon_settings({"settings": {"debug": True}}))
    assert configure_op(plan_daemon(facts, daemon_settings({"settings": {"debug": True}, "replace": True})))


def test_mask_credentials() -> None:
    from hostsetup.secrets import mask

    assert mask('"http-proxy": "http://user:s3cret@proxy:3128"') == '"http-proxy": "http://user:***@proxy:3128"'
