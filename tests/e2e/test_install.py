"""``hostsetup install`` against real sandbox hosts, from the local docker-ce mirror."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hostsetup.facts import facts_script, parse_facts
from hostsetup.host.versions import upstream_version
from tests.e2e.conftest import only_host, ssh, steps_with

ALL_STEPS = ["conflicts", "prerequisites", "key", "repository", "packages", "service", "group"]


def facts_of(sandbox, host):
    with ssh(sandbox, host) as c:
        return parse_facts(c.run(facts_script(("hostsetup",)), hide=True).stdout)


@pytest.mark.parametrize("flavor", ["debian12", "debian13"])
def test_fresh_install_then_noop(sandbox, mirror, cli, fresh_hosts, flavor) -> None:
    host = fresh_hosts(flavor)[0]
    before = facts_of(sandbox, host)
    code, report, out = cli(host, "--users", "hostsetup", "--dry-run")
    assert code == 0, out
    assert only_host(report)["status"] == "planned"
    assert "+Types: deb" in out and "$ systemctl enable --now" in out  # commands and diffs shown
    assert facts_of(sandbox, host) == before  # dry run changed nothing

    code, report, out = cli(host, "--users", "hostsetup", verify=True)
    assert code == 0, out
    assert only_host(report)["status"] == "changed"
    assert steps_with(report, "changed") == ["key", "repository", "packages", "service", "group"]
    assert "verifying 1 changed host(s)" in out and f"{host.hostname}  passed" in out

    # The user, in a new session and without sudo, uses docker.
    with ssh(sandbox, host) as c:
        assert "docker" in c.run("id -nG", hide=True).stdout.split()
        c.run("docker info --format '{{.ServerVersion}}'", hide=True, timeout=60)
        c.run(f"curl -fsS {mirror.url}/{mirror.build.tiny_image} | docker load", hide=True, timeout=120)
        out_run = c.run(f"docker run --rm {mirror.build.tiny_image_ref}", hide=True, timeout=120).stdout
        assert out_run.strip() == mirror.build.tiny_image_output
        history = c.run("wc -l < /var/log/apt/history.log", hide=True).stdout

    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0, out
    host_report = only_host(report)
    assert host_report["status"] == "ok"
    assert steps_with(report, "ok") == ALL_STEPS
    assert host_report["ssh_sessions"] == 1  # facts only: no package transaction, no writes
    with ssh(sandbox, host) as c:
        assert c.run("wc -l < /var/log/apt/history.log", hide=True).stdout == history


def test_changing_the_base_url_rewrites_only_the_repo_file(sandbox, mirror, cli, fresh_hosts) -> None:
    host = fresh_hosts("debian12")[0]
    assert cli(host)[0] == 0
    other_url = f"http://hs-{sandbox.name}-mirror"  # same mirror, reached by its container name
    code, report, out = cli(host, mirror_url=other_url)
    assert code == 0, out
    assert steps_with(report, "changed") == ["repository"]
    with ssh(sandbox, host) as c:
        assert f"URIs: {other_url}/linux/debian" in c.run("cat /etc/apt/sources.list.d/docker.sources",
                                                         hide=True).stdout
    assert cli(host, mirror_url=other_url)[1]["hosts"][0]["status"] == "ok"


def test_unknown_version_lists_what_the_repository_has(mirror, cli, fresh_hosts) -> None:
    host = fresh_hosts("debian12")[0]
    code, _report, out = cli(host, "--version", "19.03")
    assert code == 1
    assert "version 19.03 is not in the repository" in out
    assert upstream_version(mirror.build.versions["bookworm"][0]) in out


def test_preinstalled_docker_io_is_removed_first(sandbox, mirror, cli, fresh_hosts) -> None:
    host = fresh_hosts("debian12")[0]
    with ssh(sandbox, host, "root") as c:
        c.run(f"curl -fsS {mirror.url}/linux/debian/gpg -o /etc/apt/keyrings/fixtures.asc", hide=True)
        c.run("printf 'Types: deb\\nURIs: %s/debian-fixtures\\nSuites: bookworm\\nComponents: main\\n"
              "Signed-By: /etc/apt/keyrings/fixtures.asc\\n' " + mirror.url
              + " > /etc/apt/sources.list.d/fixtures.sources", hide=True)
        c.run("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io",
              hide=True, timeout=300)
        assert "docker.io" in c.run("dpkg-query -W docker.io", hide=True).stdout
    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0, out
    conflicts = next(s for s in only_host(report)["steps"] if s["name"] == "conflicts")
    assert conflicts["status"] == "changed" and "docker.io" in conflicts["summary"]
    with ssh(sandbox, host) as c:
        assert c.run("dpkg-query -W -f '${db:Status-Abbrev}' docker.io", hide=True, warn=True).stdout \
            .strip() != "ii"
        c.run("docker info", hide=True, timeout=60)


def test_wrong_key_fingerprint_stops_before_any_package(sandbox, cli, fresh_hosts) -> None:
    host = fresh_hosts("debian12")[0]
    official = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    code, report, _out = cli(host, fingerprint=official)
    assert code == 1
    steps = {s["name"]: s for s in only_host(report)["steps"]}
    assert steps["key"]["status"] == "failed"
    assert "refusing to trust it" in steps["key"]["error"]
    assert all(steps[n]["status"] == "skipped" for n in ("repository", "packages", "service", "group"))
    with ssh(sandbox, host, "root") as c:
        assert c.run("dpkg-query -W docker-ce", hide=True, warn=True).failed
        assert c.run("test -e /etc/apt/keyrings/docker.asc", warn=True, hide=True).failed


def test_sudo_user_with_password(sandbox, mirror, cli, fresh_hosts, monkeypatch, registries, tmp_path) -> None:
    host = fresh_hosts("debian12")[0]
    secret = "s3cret-Pa55"
    with ssh(sandbox, host, "root") as c:
        c.run(f"useradd -m -s /bin/bash ops && echo 'ops:{secret}' | chpasswd && "
              "echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops && "
              "install -d -o ops -m 700 /home/ops/.ssh && "
              "install -o ops -m 600 /root/.ssh/authorized_keys /home/ops/.ssh/", hide=True)
    target = dataclasses.replace(host, hostname=f"ops@{host.hostname}")
    code, report, out = cli(target)
    assert code == 1 and "sudo asks ops for a password" in out and "--prompt-for-sudo-password" in out
    assert steps_with(report, "changed") == []
    monkeypatch.setenv("HOSTSETUP_SUDO_PASSWORD", secret)
    code, report, out = cli(target)
    assert code == 0, out
    assert only_host(report)["status"] == "changed"
    assert secret not in out
    # A 0600 daemon.json (it holds a proxy password) is read back as root through the sudo password:
    # the second run sees it and changes nothing.
    proxy = '{"https-proxy": "http://u:pr0xy@proxy.example:3128"}'
    code, report, out = cli(target, "--set", f"proxies={proxy}", task="configure")
    assert code == 0 and only_host(report)["status"] == "changed", out
    code, report, out = cli(target, "--set", f"proxies={proxy}", task="configure")
    assert code == 0 and only_host(report)["status"] == "ok", out
    # Another user's private client config is read as that user, through root (the sudo password): the
    # login keeps its other keys, and a rerun sees the login and changes nothing.
    with ssh(sandbox, host, "root") as c:
        c.run("install -d -o hostsetup -g hostsetup -m 700 /home/hostsetup/.docker && "
              "printf '{\"detachKeys\": \"ctrl-e,e\"}' > /home/hostsetup/.docker/config.json && "
              "chown hostsetup: /home/hostsetup/.docker/config.json && chmod 600 /home/hostsetup/.docker/config.json",
              hide=True)
    registry = registries.private.address
    code, report, out = cli(target, "--registry-ca", f"{registry}={registries.private_ca}", "--set", "proxies={}",
                            task="configure")  # (dockerd would ask the registry through that made-up proxy)
    assert code == 0, out
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-it\n")
    code, report, out = cli(target, registry, "--username", registries.username, "--password-file", str(wrong),
                            "--users", "hostsetup", task="login")
    assert code == 1 and f"         {registry} refused the login of" in out, out  # not after sudo's prompt
    for status in ("changed", "ok"):
        code, report, out = cli(target, registry, "--username", registries.username, "--password-file",
                                str(registries.password_file), "--users", "hostsetup", task="login")
        assert code == 0 and only_host(report)["status"] == status, out
    with ssh(sandbox, host, "root") as c:
        saved = json.loads(c.run("cat /home/hostsetup/.docker/config.json", hide=True).stdout)
        assert saved["detachKeys"] == "ctrl-e,e" and registry in saved["auths"]
        assert secret not in c.run("cat /var/log/auth.log 2>/dev/null; journalctl -q --no-pager 2>/dev/null",
                                   hide=True, warn=True).stdout
