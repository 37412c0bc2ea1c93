"""daemon.json schema and validator: one row per rule, with real key names."""

from __future__ import annotations

from typing import Any

import pytest

from hostsetup.daemon.schema import (
    KEYS,
    REMOVED,
    Issue,
    flag_for,
    key_known,
    needs_restart,
    reloadable_keys,
    validate,
)
from hostsetup.host.versions import parse_engine_version

VALID: dict[str, Any] = {
    "data-root": "/srv/docker",
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3", "compress": "true"},
    "registry-mirrors": ["https://mirror.gcr.io", "https://registry.example.com:5000/"],
    "insecure-registries": ["registry.lan:5000", "10.0.0.0/8", "[::1]:5000", "192.168.1.10"],
    "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}, {"base": "fd00:dead::/56", "size": 64}],
    "bip": "172.26.0.1/16",
    "fixed-cidr": "172.26.5.0/24",
    "dns": ["1.1.1.1", "2606:4700:4700::1111"],
    "dns-search": ["corp.example.com"],
    "exec-opts": ["native.cgroupdriver=systemd"],
    "cgroup-parent": "docker.slice",
    "live-restore": True,
    "log-level": "info",
    "features": {"containerd-snapshotter": True},
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
    "proxies": {"http-proxy": "http://proxy.corp:3128", "no-proxy": "localhost,.corp"},
    "runtimes": {"crun": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]},
                 "gvisor": {"runtimeType": "io.containerd.runsc.v1", "options": {"ConfigPath": "/etc/runsc.toml"}}},
    "default-runtime": "crun",
    "labels": ["env=prod", "team=infra"],
    "max-concurrent-downloads": 6,
    "builder": {"gc": {"enabled": True, "defaultKeepStorage": "20GB",
                       "policy": [{"keepStorage": "10GB", "filter": ["unused-for=48h"]}]}},
    "storage-driver": "overlay2",
    "hosts": ["unix:///var/run/docker.sock", "fd://"],
    "metrics-addr": "127.0.0.1:9323",
    "default-shm-size": "64M",
    "mtu": 1450,
    "icc": False,
}


@pytest.mark.parametrize("engine", [None, "26.1.5", "Docker version 29.1.3, build f52814d"])
def test_realistic_config_has_no_issues(engine: str | None) -> None:
    assert validate(VALID, engine) == []


def test_the_valid_config_still_fails_on_an_engine_that_predates_proxies() -> None:
    assert validate(VALID, "20.10.24") == [
        Issue("proxies", "added in Docker 23.0; this host runs 20.10.24", "error")]


# config, engine, path, severity, text expected in the message
CASES: list[tuple[dict[str, Any], str | None, str, str, str]] = [
    # unknown keys and suggestions (rule 5)
    ({"registry-mirror": ["https://m.example"]}, None, "registry-mirror", "error", "did you mean 'registry-mirrors'?"),
    ({"log_driver": "local"}, None, "log_driver", "error", "did you mean 'log-driver'?"),
    ({"insecure-registry": ["r:5000"]}, None, "insecure-registry", "error", "did you mean 'insecure-registries'?"),
    ({"label": ["a=b"]}, None, "label", "error", "did you mean 'labels'?"),
    ({"Debug": True}, None, "Debug", "error", "did you mean 'debug'?"),
    ({"live-restroe": True}, None, "live-restroe", "error", "did you mean 'live-restore'?"),
    ({"add-runtime": {}}, None, "add-runtime", "error", "did you mean 'runtimes'?"),
    ({"zzz-nothing": 1}, None, "zzz-nothing", "error", "unknown key; dockerd refuses to start"),
    # top-level types (rule 1)
    ({"ipv6": "true"}, None, "ipv6", "error", "must be true without quotes"),
    ({"mtu": "1500"}, None, "mtu", "error", "must be a number without quotes: 1500"),
    ({"mtu": 1500.0}, None, "mtu", "error", "must be a whole number: 1500"),
    ({"debug": 1}, None, "debug", "error", "must be true or false, not a number"),
    ({"dns": "8.8.8.8"}, None, "dns", "error", 'must be a list of strings: ["8.8.8.8"]'),
    ({"dns": ["8.8.8.8", 9]}, None, "dns[1]", "error", "must be a string; quote it"),
    ({"data-root": 5}, None, "data-root", "error", 'quote it: "5"'),
    ({"log-opts": ["max-size=10m"]}, None, "log-opts", "error", "must be a JSON object, not an array"),
    ({"default-shm-size": 67108864}, None, "default-shm-size", "error", 'quote it: "67108864"'),
    ({"hosts": None}, None, "hosts", "warning", "null has no effect"),
    # log-opts
    ({"log-opts": {"max-file": 3}}, None, "log-opts.max-file", "error", 'must be a string; quote it: "3"'),
    ({"log-opts": {"max-size": "10 megs"}}, None, "log-opts.max-size", "error", "must be a size"),
    ({"log-opts": {"max-size": "0"}}, None, "log-opts.max-size", "error", "more than 0"),
    ({"log-opts": {"max-file": "0"}}, None, "log-opts.max-file", "error", "1 or more"),
    ({"log-opts": {"max_size": "10m"}}, None, "log-opts.max_size", "error", "did you mean 'max-size'?"),
    ({"log-opts": {"compress": "true"}}, None, "log-opts.compress", "error", "needs max-size"),
    ({"log-opts": {"compress": "yes", "max-size": "1m", "max-file": "3"}}, None, "log-opts.compress", "error",
     '"true" or "false"'),
    ({"log-opts": {"max-buffer-size": "4m"}}, None, "log-opts.max-buffer-size", "error", "non-blocking"),
    ({"log-opts": {"mode": "async"}}, None, "log-opts.mode", "error", "non-blocking"),
    ({"log-driver": "journald", "log-opts": {"max-size": "10m"}}, None, "log-opts.max-size", "error",
     "journald driver has no max-size"),
    ({"default-network-opts": {"bridge": {"com.docker.network.driver.mtu": 1400}}}, None,
     "default-network-opts.bridge.com.docker.network.driver.mtu", "error", 'quote it: "1400"'),
    # addresses and networks (rule 2)
    ({"default-address-pools": [{"base": "172.30.0.0/33", "size": 24}]}, None, "default-address-pools[0].base",
     "error", "is not a CIDR"),
    ({"default-address-pools": [{"base": "172.30.0.0/16", "size": 8}]}, None, "default-address-pools[0].size",
     "error", "between 16"),
    ({"default-address-pools": [{"base": "172.30.0.0/16", "size": "24"}]}, None, "default-address-pools[0].size",
     "error", "without quotes: 24"),
    ({"default-address-pools": [{"base": "172.30.0.0/16"}]}, None, "default-address-pools[0]", "error", "needs size"),
    ({"bip": "172.26.0.1"}, None, "bip", "error", "with a prefix length"),
    ({"bip": "fd00::1/64"}, None, "bip", "error", "IPv4"),
    ({"fixed-cidr": "10.0.0.0/40"}, None, "fixed-cidr", "error", "IPv4 CIDR"),
    ({"fixed-cidr-v6": "10.0.0.0/8"}, None, "fixed-cidr-v6", "error", "IPv6 CIDR"),
    ({"dns": ["8.8.8.300"]}, None, "dns[0]", "error", "is not an IP address"),
    ({"default-gateway": "fd00::1"}, None, "default-gateway", "error", "IPv4"),
    ({"host-gateway-ips": ["10.0.0.1", "10.0.0.2"]}, None, "host-gateway-ips", "error", "one IPv4"),
    ({"host-gateway-ip": "10.0.0.1", "host-gateway-ips": ["10.0.0.1"]}, None, "host-gateway-ip", "error", "not both"),
    ({"dns-search": ["bad_domain!"]}, None, "dns-search[0]", "error", "search domain"),
    ({"hosts": ["npipe:////./pipe/docker_engine"]}, None, "hosts[0]", "error", "unix://, tcp:// or fd://"),
    ({"hosts": ["unix://docker.sock"]}, None, "hosts[0]", "error", "absolute path"),
    ({"metrics-addr": "127.0.0.1"}, None, "metrics-addr", "error", "host:port"),
    # registries (rule 2, §2.2)
    ({"registry-mirrors": ["mirror.example.com"]}, None, "registry-mirrors[0]", "error",
     'no scheme; write "https://mirror.example.com"'),
    ({"registry-mirrors": ["ftp://mirror.example.com"]}, None, "registry-mirrors[0]", "error", "unsupported scheme"),
    ({"registry-mirrors": ["https://user:pw@mirror.example.com"]}, None, "registry-mirrors[0]", "error",
     "credentials"),
    ({"registry-mirrors": ["https://mirror.example.com/?x=1"]}, None, "registry-mirrors[0]", "error", "query"),
    ({"registry-mirrors": ["https://mirror.example.com/docker"]}, "24.0.7", "registry-mirrors[0]", "error",
     "needs Docker 25.0; this host runs 24.0.7"),
    ({"registry-mirrors": ["https://mirror.example.com/docker"]}, None, "registry-mirrors[0]", "warning",
     "needs Docker 25.0"),
    ({"insecure-registries": ["http://registry.lan:5000"]}, None, "insecure-registries[0]", "warning",
     'write "registry.lan:5000"'),
    ({"insecure-registries": ["ftp://registry.lan"]}, None, "insecure-registries[0]", "error", "without a scheme"),
    ({"insecure-registries": ["registry.lan:5000/v2"]}, None, "insecure-registries[0]", "error", "no path"),
    ({"insecure-registries": ["-registry.lan"]}, None, "insecure-registries[0]", "error", "hyphen"),
    ({"insecure-registries": ["10.0.0.0/33"]}, None, "insecure-registries[0]", "error", "not a valid CIDR"),
    ({"insecure-registries": ["registry.lan:99999"]}, None, "insecure-registries[0]", "error", "host[:port]"),
    # enumerations, sizes, paths
    ({"log-level": "verbose"}, None, "log-level", "error", "must be one of: panic, fatal, error, warn"),
    ({"log-level": "warning"}, "26.1.5", "log-level", "error", 'use "warn"'),
    ({"log-level": "warning"}, "20.10.24", "log-level", "warning", "which still accepts it"),
    ({"log-format": "logfmt"}, None, "log-format", "error", "text, json"),
    ({"default-cgroupns-mode": "shared"}, None, "default-cgroupns-mode", "error", "host, private"),
    ({"default-shm-size": "64 megabytes"}, None, "default-shm-size", "error", "must be a size"),
    ({"data-root": "var/lib/docker"}, None, "data-root", "error", "absolute path"),
    ({"max-concurrent-downloads": -1}, None, "max-concurrent-downloads", "error", "0 or more"),
    ({"network-diagnostic-port": 70000}, None, "network-diagnostic-port", "error", "between 0 and 65535"),
    ({"min-api-version": "v1.24"}, None, "min-api-version", "error", 'without the "v": "1.24"'),
    ({"labels": ["env"]}, None, "labels[0]", "error", "name=value"),
    ({"labels": ["env=a", "env=b"]}, None, "labels[1]", "error", "conflicts with env=a"),
    ({"storage-opts": ["overlay2.size"]}, None, "storage-opts[0]", "error", "driver.option=value"),
    ({"storage-opts": ["overlay2.override_kernel_check=true"]}, "24.0.0", "storage-opts[0]", "error", "24.0"),
    ({"storage-opts": ["overlay2.override_kernel_check=true"]}, "23.0.6", "storage-opts[0]", "warning", "24.0"),
    ({"storage-driver": "aufs"}, "26.1.5", "storage-driver", "error", "removed in Docker 24.0; use overlay2"),
    ({"storage-driver": "devicemapper"}, "24.0.7", "storage-driver", "warning", "removed in Docker 25.0"),
    ({"exec-opts": ["native.cgroupdriver=Systemd"]}, None, "exec-opts[0]", "error", "cgroupfs or systemd"),
    ({"exec-opts": ["native.cgroupdriver"]}, None, "exec-opts[0]", "error", "opt=value"),
    ({"exec-opts": ["isolation=hyperv"]}, "28.0.4", "exec-opts[0]", "error", "unknown exec-opt 'isolation'"),
    ({"exec-opts": ["isolation=hyperv"]}, "26.1.5", "exec-opts[0]", "warning", "unknown exec-opt 'isolation'"),
    ({"exec-opts": ["native.cgroupdriver=systemd"], "cgroup-parent": "/docker"}, None, "cgroup-parent", "error",
     ".slice"),
    ({"icc": False, "iptables": False}, None, "icc", "error", "needs iptables"),
    # nested objects
    ({"proxies": {"http_proxy": "http://p:3128"}}, None, "proxies.http_proxy", "error", "did you mean 'http-proxy'?"),
    ({"proxies": {"https-proxy": 3128}}, None, "proxies.https-proxy", "error", "quote it"),
    # nothing that breaks out of a systemd Environment="..." line or a URL
    ({"proxies": {"http-proxy": 'http://p:3128"\nExecStartPre=/bin/sh -c "id'}}, None, "proxies.http-proxy", "error",
     "would break out of a systemd setting"),
    ({"proxies": {"no-proxy": "localhost\nExecStartPre=/bin/true"}}, None, "proxies.no-proxy", "error",
     "a newline"),
    ({"proxies": {"https-proxy": "http://proxy.corp:3128 x"}}, None, "proxies.https-proxy", "error", "a space"),
    ({"registry-mirrors": ["https://m.example\n"]}, None, "registry-mirrors[0]", "error", "never holds unencoded"),
    ({"default-ulimits": {"nofile": {"Name": "nofile", "Hard": "64000", "Soft": 1024}}}, None,
     "default-ulimits.nofile.Hard", "error", "without quotes: 64000"),
    ({"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 4096}}}, None,
     "default-ulimits.nofile", "error", "above Hard"),
    ({"default-ulimits": {"nofiles": {"Name": "nofiles", "Hard": 1, "Soft": 1}}}, None,
     "default-ulimits.nofiles", "error", "did you mean 'nofile'?"),
    ({"default-ulimits": {"nofile": {"Hard": 1, "Soft": 1}}}, None, "default-ulimits.nofile", "error",
     'needs "Name": "nofile"'),
    ({"runtimes": {"runc": {"path": "/usr/bin/runc"}}}, None, "runtimes.runc", "error", "reserved"),
    ({"runtimes": {"crun": {}}}, None, "runtimes.crun", "error", 'needs "path"'),
    ({"runtimes": {"kata": {"path": "/x", "runtimeType": "io.containerd.kata.v2"}}}, None, "runtimes.kata",
     "error", "not both"),
    ({"runtimes": {"crun": {"path": "/usr/bin/crun", "runtimeargs": "--debug"}}}, None,
     "runtimes.crun.runtimeargs", "error", "list of strings"),
    ({"default-runtime": "crun"}, None, "default-runtime", "error", "no runtime named 'crun'"),
    ({"features": {"cdi": "true"}}, None, "features.cdi", "error", "without quotes"),
    ({"features": {"containerd-snapshoter": True}}, None, "features.containerd-snapshoter", "warning",
     "did you mean 'containerd-snapshotter'?"),
    ({"features": {"embedded-containerd": True}}, "29.1.3", "features.embedded-containerd", "warning", "29.7"),
    ({"builder": {"gc": {"policy": [{"keepDuration": "48h"}]}}}, None, "builder.gc.policy[0].keepDuration",
     "warning", "unused-for=48h"),
    ({"builder": {"gc": {"defaultKeepStorage": 20}}}, None, "builder.gc.defaultKeepStorage", "error", "quote it"),
    ({"nri-opts": {"enable": True, "plugins": "/opt/nri"}}, None, "nri-opts.plugins", "error",
     "refuses to start"),
    # removed and deprecated keys (rule 3)
    ({"graph": "/var/lib/docker"}, "26.1.5", "graph", "error", "removed in Docker 23.0; use data-root"),
    ({"graph": "/var/lib/docker"}, None, "graph", "error", "removed in Docker 23.0; use data-root"),
    ({"graph": "/var/lib/docker"}, "20.10.24", "graph", "warning", "deprecated since Docker 17.05"),
    ({"cluster-store": "consul://kv:8500"}, "23.0.0", "cluster-store", "error", "removed in Docker 23.0"),
    ({"cluster-advertise": "eth0:2376"}, "20.10.24", "cluster-advertise", "warning", "removed in Docker 23.0"),
    ({"disable-legacy-registry": True}, "20.10.24", "disable-legacy-registry", "error", "removed in Docker 19.03"),
    ({"oom-score-adjust": -500}, "24.0.7", "oom-score-adjust", "warning", "removed in Docker 25.0"),
    ({"oom-score-adjust": -500}, "25.0.0", "oom-score-adjust", "error", "removed in Docker 25.0"),
    ({"api-cors-header": "*"}, "28.0.0", "api-cors-header", "error", "reverse proxy"),
    ({"host-gateway-ip": "172.17.0.1"}, "28.0.0", "host-gateway-ip", "warning", "host-gateway-ips"),
    ({"allow-nondistributable-artifacts": ["reg.lan"]}, None, "allow-nondistributable-artifacts", "warning",
     "no effect"),
    ({"deprecated-key-path": "/etc/docker/key.json"}, None, "deprecated-key-path", "warning", "ignores it"),
    # engine-version gates on keys (rule 4)
    ({"proxies": {"http-proxy": "http://p:3128"}}, "20.10.24", "proxies", "error",
     "added in Docker 23.0; this host runs 20.10.24"),
    ({"firewall-backend": "nftables"}, "28.5.2", "firewall-backend", "error", "added in Docker 29.0"),
    ({"log-format": "json"}, "24.0.7", "log-format", "error", "added in Docker 25.0"),
    # flag-only or ignored keys (rule 6)
    ({"containerd-plugin-namespace": "plugins"}, None, "containerd-plugin-namespace", "error", "rejects it"),
    ({"containerd-plugins-namespace": "plugins"}, None, "containerd-plugins-namespace", "warning", "never applies"),
    ({"resolv-conf": "/etc/resolv.conf"}, None, "resolv-conf", "error", "rejects it"),
    ({"http-proxy": "http://p:3128"}, "26.1.5", "http-proxy", "warning", 'move it into "proxies"'),
    ({"http-proxy": "http://p:3128"}, "20.10.24", "http-proxy", "error", "Environment="),
]


@pytest.mark.parametrize(("config", "engine", "path", "severity", "text"), CASES,
                         ids=[f"{c[2]}-{c[1]}-{c[3]}" for c in CASES])
def test_rule(config: dict[str, Any], engine: str | None, path: str, severity: str, text: str) -> None:
    issues = validate(config, engine)
    matching = [i for i in issues if i.path == path and i.severity == severity]
    assert matching, f"no {severity} at {path}: {issues}"
    assert any(text in i.message for i in matching), matching


# config, engine: accepted as written
ACCEPTED: list[tuple[dict[str, Any], str | None]] = [
    ({"log-level": "WARN"}, None),
    ({"log-level": "trace"}, "20.10.24"),
    ({"log-opts": {"max-size": "1.5GiB", "max-file": "10"}}, None),
    ({"log-opts": {"mode": "non-blocking", "max-buffer-size": "4m"}}, None),
    ({"log-driver": "journald", "log-opts": {"tag": "{{.Name}}"}}, None),
    ({"registry-mirrors": ["https://mirror.example.com/docker"]}, "25.0.0"),
    ({"registry-mirrors": ["http://10.0.0.5:5000/"]}, "20.10.24"),
    ({"insecure-registries": ["::1", "fd00::/8", "localhost"]}, None),
    ({"default-address-pools": [{"Base": "10.10.0.0/16", "Size": 24}]}, None),
    ({"default-runtime": "io.containerd.runsc.v1"}, None),
    ({"default-ulimits": {"memlock": {"name": "memlock", "hard": -1, "soft": -1}}}, None),
    ({"hosts": ["tcp://127.0.0.1:2376", "0.0.0.0:2375", "fd://3"]}, None),
    ({"host-gateway-ips": ["172.17.0.1", "fd00::1"]}, "28.0.0"),
    ({"bridge-accept-fwmark": "0x1/0xff"}, None),
    ({"http-proxy": "http://p:3128"}, None),
    ({"graph": "/var/lib/docker"}, "1.12.0"),
    ({"dns-search": [".", "example.com."]}, None),
]


@pytest.mark.parametrize(("config", "engine"), ACCEPTED)
def test_accepted_without_errors(config: dict[str, Any], engine: str | None) -> None:
    assert [i for i in validate(config, engine) if i.severity == "error"] == []


def test_issues_follow_key_order() -> None:
    issues = validate({"mtu": "1", "debug": "no", "graph": "/x"})
    assert [i.path for i in issues] == ["mtu", "debug", "graph"]


def test_render() -> None:
    issue = Issue("registry-mirror", "unknown key; did you mean 'registry-mirrors'?", "error")
    expected = "web1: daemon.json key 'registry-mirror': unknown key; did you mean 'registry-mirrors'?"
    assert issue.render("web1") == expected
    assert Issue("graph", "x", "warning").render("web1") == "web1: daemon.json key 'graph' (warning): x"


@pytest.mark.parametrize(("changed", "removed", "expected"), [
    ({"registry-mirrors"}, set(), False),
    ({"debug", "labels", "live-restore", "insecure-registries", "max-concurrent-downloads"}, set(), False),
    ({"log-driver"}, set(), True),
    ({"log-opts"}, set(), True),
    ({"log-level"}, set(), True),
    ({"registry-mirrors", "data-root"}, set(), True),
    ({"builder"}, set(), True),
    ({"graph"}, set(), True),
    (set(), set(), False),
    ({"registry-mirrors"}, {"registry-mirrors"}, True),         # removing it keeps the old mirrors on SIGHUP
    ({"max-concurrent-downloads"}, {"max-concurrent-downloads"}, False),  # absent resets to the default
    ({"features"}, {"features"}, False),
])
def test_needs_restart(changed: set[str], removed: set[str], expected: bool) -> None:
    assert needs_restart(changed, removed_keys=removed) is expected


def test_reloadable_keys() -> None:
    assert reloadable_keys() == {
        "allow-nondistributable-artifacts", "authorization-plugins", "debug", "default-cgroupns-mode",
        "default-ipc-mode", "default-runtime", "default-shm-size", "default-stop-timeout", "features",
        "insecure-registries", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
        "max-download-attempts", "network-diagnostic-port", "nri-opts", "registry-mirrors", "runtimes",
        "shutdown-timeout"}
    assert not reloadable_keys() & {"log-driver", "log-opts", "log-level", "proxies", "hosts", "builder"}


@pytest.mark.parametrize(("key", "flag"), [
    ("hosts", "-H/--host"), ("labels", "--label"), ("registry-mirrors", "--registry-mirror"),
    ("debug", "-D/--debug"), ("proxies", "--http-proxy/--https-proxy/--no-proxy"),
    ("builder", None), ("min-api-version", None), ("graph", None), ("no-such-key", None),
])
def test_flag_for(key: str, flag: str | None) -> None:
    assert flag_for(key) == flag


@pytest.mark.parametrize(("key", "known"), [
    ("data-root", True), ("nri-opts", True), ("allow-nondistributable-artifacts", True),
    ("graph", False), ("registry-mirror", False), ("containerd-plugin-namespace", False),
])
def test_key_known(key: str, known: bool) -> None:
    assert key_known(key) is known


@pytest.mark.parametrize(("text", "version"), [
    ("Docker version 20.10.24+dfsg1, build 5d6db84", (20, 10, 24)),
    ("26.1.5", (26, 1, 5)),
    ("5:20.10.24-1~debian.12~bookworm", (20, 10, 24)),
    ("Docker version 17.05.0-ce, build 89658be", (17, 5, 0)),
    ("  29.0\n", (29, 0, 0)),
    ("not docker", None),
    ("", None),
])
def test_parse_engine_version(text: str, version: tuple[int, ...] | None) -> None:
    assert parse_engine_version(text) == version


def test_unreadable_engine_version_means_newest_rules() -> None:
    assert validate({"graph": "/x"}, "unknown")[0].severity == "error"


def test_key_table_is_consistent() -> None:
    assert len(KEYS) == 91
    kinds = {"bool", "str", "int", "strs", "object", "objects"}
    for key, spec in KEYS.items():
        assert spec.key == key and spec.kind in kinds, key
        assert parse_engine_version(spec.since) is not None, key
    assert not set(REMOVED) & set(KEYS)
    assert reloadable_keys() <= set(KEYS)
