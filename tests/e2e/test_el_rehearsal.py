"""EL rehearsal: hostsetup's unchanged RHEL-family path, end to end, with real dnf and rpm.

The hosts are NOT CentOS or Rocky Linux. They are the sandbox's Debian bookworm userland
answering as Rocky Linux 9 (``rocky9``: dnf) or CentOS 7 (``centos7``: ``yum``, which is
Debian's dnf behind a wrapper), with Debian's own dnf, rpm and versionlock plugin, a system
rpm database declaring the userland (``el-rehearsal-base``), and dnf reading only
``/etc/yum.repos.d``. The docker-ce RPMs come from the sandbox mirror's yum layout, signed
with its throwaway key and carrying Debian's engine binaries (``hostsetup.sandbox.rpmrepo``).

What this exercises for real: os-release resolution, the rpm facts, conflict removal with
dnf/yum, the repository file with ``$releasever`` pinned and dnf's ``$basearch``, the key
fingerprint check and dnf's signature check against the imported key, RPM epochs and version
pins, upgrades and downgrades through RPM scriptlets, versionlock, ``systemctl enable --now``
after an RPM that does not start the service, the docker group and re-planning to zero changes.
What it cannot catch: real EL dependency resolution against BaseOS/AppStream, SELinux and
``container-selinux``, real yum 3 on CentOS 7 (yum here is dnf 4), EL's glibc/systemd/kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from hostsetup.facts import facts_script, parse_facts
from hostsetup.host.versions import upstream_version
from hostsetup.mirrors import PRESETS
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from hostsetup.sandbox.layout import RpmRepo
from tests.e2e.conftest import only_host, sandbox_of_its_own, ssh, steps_with
from tests.e2e.test_lifecycle import lifecycle

ALL_STEPS = ["conflicts", "prerequisites", "key", "repository", "packages", "service", "group"]
FLAVORS = ["rocky9", "centos7"]
MANAGER = {"rocky9": "dnf", "centos7": "yum"}
RELEASEVER = {"rocky9": "9", "centos7": "7"}
# Preinstalled from el-fixtures: Docker's conflict list for each (podman and runc from EL 8 on).
CONFLICTING = {"rocky9": ["docker", "docker-common", "podman", "runc"], "centos7": ["docker", "docker-common"]}
LOCK_LIST = {"rocky9": "/etc/dnf/plugins/versionlock.list", "centos7": "/etc/yum/pluginconf.d/versionlock.list"}
FIXTURES_REPO = """[el-fixtures]
name=EL rehearsal fixtures (stands in for the distribution's repositories) - $basearch
baseurl={url}/el-fixtures/$releasever/$basearch
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-el-fixtures
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """An ``el-<pid>`` sandbox of this module's own (hosts, mirror, network), removed at the end."""
    yield from sandbox_of_its_own("el")


@pytest.fixture(scope="module")
def mirror(sandbox: Sandbox) -> SandboxMirror:
    served = sandbox.start_mirror()
    if served.build.rpm is None:
        pytest.fail("the sandbox mirror has no EL rehearsal RPM repositories (rpm, createrepo-c missing?)")
    return served


@pytest.fixture(scope="module")
def rpmrepo(mirror: SandboxMirror) -> RpmRepo:
    assert mirror.build.rpm is not None
    return mirror.build.rpm


def root_run(sandbox: Sandbox, host: SandboxHost, command: str, **kwargs: Any) -> str:
    with ssh(sandbox, host, "root") as c:
        return c.run(command, hide=True, timeout=300, **kwargs).stdout


def installed(sandbox: Sandbox, host: SandboxHost, *names: str) -> dict[str, str]:
    """name -> epoch:version-release for the installed ones among ``names`` (rpm -q, as the user)."""
    with ssh(sandbox, host) as c:
        out = c.run("rpm -q --qf '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n' " + " ".join(names),
                    hide=True, warn=True).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def add_fixtures_repo(sandbox: Sandbox, host: SandboxHost, mirror: SandboxMirror, rpm: RpmRepo) -> None:
    """Configure el-fixtures, the stand-in for the distribution's own repositories."""
    root_run(sandbox, host, f"curl -fsS {mirror.url}/{rpm.fixtures_key_path} "
                            "-o /etc/pki/rpm-gpg/RPM-GPG-KEY-el-fixtures && cat > /etc/yum.repos.d/el-fixtures.repo "
                            f"<<'EOF'\n{FIXTURES_REPO.format(url=mirror.url)}EOF")


def rpm_state(sandbox: Sandbox, host: SandboxHost) -> str:
    return root_run(sandbox, host, "rpm -qa --qf '%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE} %{INSTALLTIME}\\n' | sort")


def facts_of(sandbox: Sandbox, host: SandboxHost) -> Any:
    with ssh(sandbox, host) as c:
        return parse_facts(c.run(facts_script(("hostsetup",)), hide=True).stdout)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_el_rehearsal_conflicts_pin_upgrade_and_noop(sandbox, mirror, rpmrepo, cli, fresh_hosts, flavor) -> None:
    """EL rehearsal (Debian userland, real dnf/rpm): remove conflicts, pin, run, upgrade, converge."""
    host = fresh_hosts(flavor)[0]
    releasever, manager = RELEASEVER[flavor], MANAGER[flavor]
    newest, older = rpmrepo.versions[releasever][:2]
    add_fixtures_repo(sandbox, host, mirror, rpmrepo)
    root_run(sandbox, host, f"{manager} install -y -q {' '.join(CONFLICTING[flavor])}")
    assert set(installed(sandbox, host, *CONFLICTING[flavor])) == set(CONFLICTING[flavor])

    before = facts_of(sandbox, host)
    assert {"rpm", manager} <= before.commands and not {"dpkg", "apt-get"} & before.commands
    code, report, out = cli(host, "--users", "hostsetup", "--version", upstream_version(older), "--dry-run")
    assert code == 0, out
    assert only_host(report)["status"] == "planned"
    assert facts_of(sandbox, host) == before  # the dry run changed nothing

    code, report, out = cli(host, "--users", "hostsetup", "--version", upstream_version(older))
    assert code == 0, out
    assert steps_with(report, "changed") == ["conflicts", "key", "repository", "packages", "service", "group"]
    conflicts = next(s for s in only_host(report)["steps"] if s["name"] == "conflicts")
    assert conflicts["summary"].removeprefix("remove conflicting ").split(", ") == CONFLICTING[flavor]
    assert installed(sandbox, host, *CONFLICTING[flavor]) == {}
    repo_file = root_run(sandbox, host, "cat /etc/yum.repos.d/docker-ce.repo")
    assert f"baseurl={mirror.url}/linux/centos/{releasever}/$basearch/stable\n" in repo_file
    assert "gpgcheck=1\n" in repo_file and "gpgkey=file:///etc/pki/rpm-gpg/docker-ce.gpg\n" in repo_file
    key_ids = root_run(sandbox, host, "rpm -q gpg-pubkey --qf '%{VERSION}\\n'").split()
    assert rpmrepo.key_fingerprint[-8:].lower() in key_ids  # dnf imported hostsetup's key file
    _, _, vr = older.partition(":")
    assert installed(sandbox, host, "docker-ce", "docker-ce-cli") == {"docker-ce": older, "docker-ce-cli": f"1:{vr}"}
    assert root_run(sandbox, host, "systemctl is-enabled docker containerd").split() == ["enabled", "enabled"]
    assert upstream_version(older) in root_run(sandbox, host, "dockerd --version")

    with ssh(sandbox, host) as c:  # the user, in a new session and without sudo, uses docker
        assert "docker" in c.run("id -nG", hide=True).stdout.split()
        c.run(f"curl -fsS {mirror.url}/{mirror.build.tiny_image} | docker load", hide=True, timeout=120)
        assert c.run(f"docker run --rm {mirror.build.tiny_image_ref}", hide=True,
                     timeout=120).stdout.strip() == mirror.build.tiny_image_output

    state = rpm_state(sandbox, host)
    code, report, out = cli(host, "--users", "hostsetup", "--version", upstream_version(older))
    assert code == 0, out
    assert only_host(report)["status"] == "ok" and steps_with(report, "ok") == ALL_STEPS
    assert only_host(report)["ssh_sessions"] == 1  # facts only
    assert rpm_state(sandbox, host) == state

    code, report, out = cli(host, "--users", "hostsetup", "--version", upstream_version(newest))
    assert code == 0, out
    assert steps_with(report, "changed") == ["packages", "service"]
    _, _, vr = newest.partition(":")
    assert installed(sandbox, host, "docker-ce", "docker-ce-cli") == {"docker-ce": newest, "docker-ce-cli": f"1:{vr}"}
    with ssh(sandbox, host) as c:  # the RPM's %postun restarted the running engine
        assert c.run("docker version --format '{{.Server.Version}}'", hide=True,
                     timeout=60).stdout.startswith(upstream_version(newest))
    code, report, out = cli(host, "--users", "hostsetup", "--version", upstream_version(newest))
    assert code == 0 and only_host(report)["status"] == "ok" and only_host(report)["ssh_sessions"] == 1, out


@pytest.mark.parametrize("flavor", ["rocky9", "centos7"])
def test_el_rehearsal_hold_follows_version_changes(sandbox, mirror, rpmrepo, cli, fresh_hosts, flavor) -> None:
    """EL rehearsal: --hold installs the versionlock plugin, locks, and a later pin moves the lock."""
    host = fresh_hosts(flavor)[0]
    newest, older = rpmrepo.versions[RELEASEVER[flavor]][:2]
    add_fixtures_repo(sandbox, host, mirror, rpmrepo)
    code, report, out = cli(host, "--version", upstream_version(older), "--hold")
    assert code == 0, out
    assert "prerequisites" in steps_with(report, "changed")
    locks = root_run(sandbox, host, f"cat {LOCK_LIST[flavor]}")
    assert f"docker-ce-{older}" in locks and f"docker-ce-cli-1:{older.partition(':')[2]}" in locks
    code, report, out = cli(host, "--version", upstream_version(older), "--hold")
    assert code == 0 and only_host(report)["status"] == "ok", out

    code, report, out = cli(host, "--version", upstream_version(newest), "--hold")
    assert code == 0, out
    assert installed(sandbox, host, "docker-ce")["docker-ce"] == newest
    locks = root_run(sandbox, host, f"cat {LOCK_LIST[flavor]}")
    assert f"docker-ce-{newest}" in locks and f"docker-ce-{older}" not in locks
    assert cli(host, "--version", upstream_version(newest), "--hold")[1]["hosts"][0]["status"] == "ok"


def test_el_rehearsal_docker_ce_rpm_leaves_the_service_to_hostsetup(sandbox, mirror, rpmrepo, cli,
                                                                     fresh_hosts) -> None:
    """EL rehearsal: like Docker's RPM, ours creates the group but does not enable or start docker."""
    host = fresh_hosts("rocky9")[0]
    root_run(sandbox, host, f"curl -fsS {mirror.url}/linux/centos/gpg -o /etc/pki/rpm-gpg/docker-ce.gpg && "
                            "cat > /etc/yum.repos.d/docker-ce.repo <<'EOF'\n[docker-ce-stable]\nname=by hand\n"
                            f"baseurl={mirror.url}/linux/centos/$releasever/$basearch/stable\ngpgcheck=1\n"
                            "gpgkey=file:///etc/pki/rpm-gpg/docker-ce.gpg\nEOF\n"
                            "dnf install -y -q docker-ce docker-ce-cli containerd.io docker-buildx-plugin "
                            "docker-compose-plugin")
    assert root_run(sandbox, host, "systemctl is-enabled docker containerd",
                    warn=True).split() == ["disabled", "disabled"]
    assert root_run(sandbox, host, "systemctl is-active docker containerd", warn=True).split() == ["inactive"] * 2
    assert root_run(sandbox, host, "getent group docker").startswith("docker:")
    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0, out
    assert steps_with(report, "changed") == ["repository", "service", "group"]  # packages: already there
    assert root_run(sandbox, host, "systemctl is-active docker containerd").split() == ["active"] * 2


def test_el_rehearsal_wrong_key_fingerprint_stops_before_any_package(sandbox, cli, fresh_hosts) -> None:
    """EL rehearsal: Docker's official RPM key fingerprint does not match the sandbox's key."""
    host = fresh_hosts("rocky9")[0]
    code, report, _out = cli(host, fingerprint="060A61C51B558A7F742B77AAC52FEB6B621E9F35")
    assert code == 1
    steps = {s["name"]: s for s in only_host(report)["steps"]}
    assert steps["key"]["status"] == "failed" and "refusing to trust it" in steps["key"]["error"]
    assert all(steps[n]["status"] == "skipped" for n in ("repository", "packages", "service", "group"))
    assert installed(sandbox, host, "docker-ce") == {}
    assert root_run(sandbox, host, "find /etc/pki/rpm-gpg /etc/yum.repos.d -type f").split() == []


@pytest.mark.parametrize("flavor", FLAVORS)
def test_el_rehearsal_default_and_aliyun_presets_pass_verify(sandbox, mirror, rpmrepo, cli, fresh_hosts,
                                                             flavor) -> None:
    """No --mirror (Docker's repository) and then aliyun, each through the sandbox's HTTPS name
    mapping under the preset's own yum layout, each followed by hostsetup's own verify."""
    host = fresh_hosts(flavor)[0]
    releasever = RELEASEVER[flavor]
    for preset in ("official", "aliyun"):
        seen = len(mirror.requests())
        code, report, out = cli(host, "--users", "hostsetup", mirror_url="" if preset == "official" else preset,
                                verify=True)
        assert code == 0, (preset, out)
        assert "repository" in steps_with(report, "changed"), (preset, out)
        assert f"{host.hostname}  passed" in out, (preset, out)
        repo_file = root_run(sandbox, host, "cat /etc/yum.repos.d/docker-ce.repo")
        assert f"({preset})" in repo_file.splitlines()[0], repo_file
        assert f"baseurl={PRESETS[preset]}/linux/centos/{releasever}/$basearch/stable\n" in repo_file
        url = urlparse(PRESETS[preset])
        repodata = f"https {url.hostname} GET {url.path}/linux/centos/{releasever}/x86_64/stable/repodata/repomd.xml"
        assert any(r.startswith(repodata) and r.endswith(" 200") for r in mirror.requests()[seen:]), \
            (preset, mirror.requests()[seen:])
    code, report, out = cli(host, "--users", "hostsetup", mirror_url="aliyun")
    assert code == 0 and only_host(report)["status"] == "ok", out


def test_el_rehearsal_upgrade_under_live_restore_uninstall_and_reinstall(sandbox, mirror, rpmrepo, cli,
                                                                        fresh_hosts) -> None:
    """The lifecycle of test_lifecycle on Rocky 9: the hold is dnf's versionlock, removal is dnf's."""
    host = fresh_hosts("rocky9")[0]
    add_fixtures_repo(sandbox, host, mirror, rpmrepo)
    newest, older = rpmrepo.versions["9"][:2]
    lifecycle(sandbox, mirror, cli, host, newest, older)
    assert "docker-ce" not in root_run(sandbox, host, f"cat {LOCK_LIST['rocky9']}")  # uninstall released the lock
