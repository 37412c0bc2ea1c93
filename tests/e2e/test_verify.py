"""``hostsetup verify``: the shipped testinfra checks pass on a converged host and name exactly
the broken check on a host broken in one way."""

from __future__ import annotations

import json

from hostsetup.sandbox.registries import REGISTRY_MIRROR
from tests.e2e.conftest import run_hostsetup, ssh

BREAKAGES = {
    "docker stopped": ("systemctl stop docker.socket docker.service", "test_service_running_and_enabled[docker]"),
    "user left the docker group": ("gpasswd -d hostsetup docker", "test_users_in_docker_group"),
    "daemon.json edited by hand": ("""printf '{"registry-mirrors": ["https://other.example"]}' """
                                   "> /etc/docker/daemon.json && systemctl reload docker", "test_daemon_json"),
    "repo file points elsewhere": ("sed -i 's#^URIs: .*#URIs: https://elsewhere.example/linux/debian#' "
                                   "/etc/apt/sources.list.d/docker.sources", "test_repository_file"),
}
SETTINGS = {"install": {"users": "hostsetup"},
            "daemon": {"settings": {"registry-mirrors": [f"https://{REGISTRY_MIRROR}"]}}}


def test_verify_passes_then_names_each_breakage(sandbox, cli, fresh_hosts, registries) -> None:
    host = fresh_hosts("debian12")[0]
    # install (with daemon settings) runs the checks itself at the end of a changing run.
    code, report, out = cli(host, config=SETTINGS, verify=True)
    assert code == 0, out
    assert "verifying 1 changed host(s)" in out and "passed" in out
    code, report, out = cli(host, "--smoke", task="verify", config=SETTINGS)
    assert code == 0, out
    (result,) = report["hosts"]
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert statuses["test_registry_mirrors_serve_pulls"] == "passed"  # the pull goes through the sandbox mirror
    assert statuses["test_smoke_container_runs"] == "skipped"
    assert list(statuses.values()).count("failed") == 0
    for what, (command, check) in BREAKAGES.items():
        with ssh(sandbox, host, "root") as c:
            c.run(f"cp -a /etc/docker/daemon.json /root/daemon.json.bak; cp -a /etc/apt/sources.list.d/docker.sources "
                  f"/root/docker.sources.bak; {command}", hide=True)
        code, report, out = cli(host, task="verify", config=SETTINGS)
        failed = [c["name"] for c in report["hosts"][0]["checks"] if c["status"] == "failed"]
        assert code == 1, (what, out)
        assert failed == [check], (what, failed, out)
        assert f"FAILED {host.hostname}: {check}: expected" in out, out
        with ssh(sandbox, host, "root") as c:  # mend it for the next breakage
            c.run("cp -a /root/daemon.json.bak /etc/docker/daemon.json; cp -a /root/docker.sources.bak "
                  "/etc/apt/sources.list.d/docker.sources; usermod -aG docker hostsetup; "
                  "systemctl start docker.socket docker.service; systemctl reload docker", hide=True)


def test_a_fleet_is_checked_in_one_process_and_a_broken_host_behind_the_first_is_named(sandbox, mirror, trio,
                                                                                      tmp_path) -> None:
    """The first host runs its checks live, the others answer the commands ahead in one session each: a host
    broken after the first must still be caught (from its own answers), each with its own JUnit file."""
    broken = trio[1]
    with ssh(sandbox, broken, "root") as c:
        c.run("systemctl stop docker.socket docker.service", hide=True)
    try:
        report, junit = tmp_path / "verify.json", tmp_path / "junit.xml"
        code, out = run_hostsetup(sandbox, mirror, [h.hostname for h in trio], "verify", "--json", str(report),
                                  "--junit-xml", str(junit), env={"HOSTSETUP_INSTALL_USERS": "hostsetup"})
        assert code == 1, out
        hosts = {h["host"]: h for h in json.loads(report.read_text())["hosts"]}
        assert [hosts[h.hostname]["status"] for h in trio] == ["passed", "failed", "passed"], out
        failed = [c["name"] for c in hosts[broken.hostname]["checks"] if c["status"] == "failed"]
        assert failed == ["test_service_running_and_enabled[docker]"], out
        for host in trio:
            text = (tmp_path / f"junit.xml.{host.hostname}.xml").read_text()
            assert ('<failure' in text) == (host is broken), host.hostname
    finally:
        with ssh(sandbox, broken, "root") as c:
            c.run("systemctl start docker.socket docker.service", hide=True)
