"""Offline bundles for real: built on this machine from the sandbox mirror (reached over HTTP on 127.0.0.1),
installed on hosts of a second sandbox that has no mirror and no name server at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostsetup.bundle import BUNDLE_ROOT
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from tests.e2e.conftest import sandbox_of_its_own, ssh

TARGETS = "debian12,rocky9"


def hostsetup(mirror: SandboxMirror, *args: str, sandbox: Sandbox | None = None) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "hostsetup", *(["-S", str(sandbox.ssh_config_path)] if sandbox else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HOSTSETUP_INSTALL_KEY_FINGERPRINT": mirror.build.key_fingerprint})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def bundle_file(sandbox: Sandbox, mirror: SandboxMirror, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle for Debian 12 and Rocky 9 with the defaults (the newest release both have)."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar"
    code, text = hostsetup(mirror, "bundle", "--os", TARGETS, "-o", str(out), "--mirror", sandbox.publish_mirror(),
                           "--insecure-mirror")
    assert code == 0, text
    digest = next(line.split()[1] for line in text.splitlines() if line.startswith("sha256 "))
    assert f"install --bundle {out} --bundle-sha256 {digest}" in text
    out.with_suffix(".sha256").write_text(digest)
    return out


@pytest.fixture(scope="module")
def offline() -> Iterator[Sandbox]:
    """A sandbox of its own with no mirror: its hosts reach no repository and resolve no name."""
    yield from sandbox_of_its_own("offline")


def root(sandbox: Sandbox, host: SandboxHost, command: str) -> tuple[int, str]:
    with ssh(sandbox, host, "root") as c:
        result = c.run(command, hide=True, warn=True, timeout=120)
        return result.exited, result.stdout + result.stderr


def test_bundle_holds_checked_packages_for_each_target(mirror: SandboxMirror, bundle_file: Path) -> None:
    with tarfile.open(bundle_file) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = set(tar.getnames())
    newest = mirror.build.versions["bookworm"][0]
    assert manifest["version"] == newest.split(":", 1)[1].split("-", 1)[0]
    assert set(manifest["targets"]) == {"debian12", "rocky9"}
    for target in manifest["targets"].values():
        assert {p["name"] for p in target["packages"]} == {"docker-ce", "docker-ce-cli", "containerd.io",
                                                           "docker-buildx-plugin", "docker-compose-plugin"}
        assert all(p["file"] in names for p in target["packages"])
        assert "iptables" in target["needs"]   # from the distribution, not from Docker's repository
    assert "linux/debian/dists/bookworm/InRelease" in names and "linux/centos/gpg" in names
    # the downloads came from the mirror itself (its request log), over the relay on 127.0.0.1
    assert any(" GET /linux/debian/dists/bookworm/InRelease 200" in line for line in mirror.requests())


def test_bundle_refuses_what_it_cannot_trust_and_bad_input(sandbox: Sandbox, mirror: SandboxMirror,
                                                           tmp_path: Path) -> None:
    url = sandbox.publish_mirror()
    out = tmp_path / "b.tar"
    with mirror.faults({"/linux/debian/dists/bookworm/stable/binary-amd64/Packages*": b"Package: evil\n"}):
        code, text = hostsetup(mirror, "bundle", "--os", "debian12", "-o", str(out), "--mirror", url,
                               "--insecure-mirror")
    assert code == 1 and "its sha256 is not the one its signed index gives; refusing it" in text, text
    code, text = hostsetup(mirror, "bundle", "--os", "debian12", "-o", str(out), "--mirror", url,
                           "--insecure-mirror", "--key-fingerprint", "0" * 40)
    assert code == 1 and "refusing it" in text and not out.exists(), text
    for args, message in ((["--os", "debian99"], "debian release ? is not supported"),
                          (["--os", "solaris11"], "is not a system like debian12"),
                          (["--os", "debian12", "--arch", "sparc"], "--arch 'sparc'"),
                          (["--os", ""], "bundle needs --os"),
                          (["--os", "debian12", "--version", "20.10;rm"], "is neither a short version")):
        code, text = hostsetup(mirror, "bundle", "-o", str(out), "--mirror", url, "--insecure-mirror", *args)
        assert code == 2 and message in text and len(text.strip().splitlines()) == 1, (args, text)
    assert not out.exists()


def test_offline_hosts_install_from_the_bundle_then_converge(offline: Sandbox, mirror: SandboxMirror,
                                                             bundle_file: Path) -> None:
    hosts = offline.start_hosts(["debian12", "rocky9"])
    names = ",".join(h.hostname for h in hosts)
    with tarfile.open(bundle_file) as tar:
        release = json.loads(tar.extractfile("manifest.json").read())["version"]  # type: ignore[union-attr]
    for host in hosts:   # no repository, no name server
        assert root(offline, host, "getent hosts download.docker.com mirror.sandbox.internal")[0] != 0
    code, text = hostsetup(mirror, "-H", names, "install", "--bundle", str(bundle_file), "--users", "hostsetup",
                           "--bundle-sha256", bundle_file.with_suffix(".sha256").read_text(), sandbox=offline)
    assert code == 0, text
    assert "2 hosts: 2 changed" in text and text.count("  passed  ") == 2, text   # and verified
    for host in hosts:
        assert "docker" in root(offline, host, "id -nG hostsetup")[1].split()
        code, out = root(offline, host, "docker version --format '{{.Server.Version}}'")
        assert code == 0 and out.startswith(release), out
    code, text = hostsetup(mirror, "-H", names, "install", "--bundle", str(bundle_file), "--users", "hostsetup",
                           "--json", str(bundle_file.with_name("again.json")), sandbox=offline)
    assert code == 0 and "2 hosts: 2 ok" in text, text
    report = json.loads(bundle_file.with_name("again.json").read_text())
    assert all(h["ssh_sessions"] == 1 for h in report["hosts"])   # the bundle is not sent again

    code, text = hostsetup(mirror, "-H", names, "uninstall", sandbox=offline)   # and the bundle goes with it
    assert code == 0 and f"remove the offline bundles in {BUNDLE_ROOT}" in text and text.count("  passed  ") == 2, text
    assert all(root(offline, host, f"test -e {BUNDLE_ROOT}")[0] != 0 for host in hosts)
    offline.remove_hosts(hosts)


def test_missing_dependencies_are_named_before_anything_changes_then_a_reference_host_adds_them(
        offline: Sandbox, sandbox: Sandbox, mirror: SandboxMirror, bundle_file: Path) -> None:
    debian, rocky = offline.start_hosts(["debian12", "rocky9"])
    root(offline, debian, "dpkg --purge --force-depends libdevmapper1.02.1")
    root(offline, rocky, "rpm -e --nodeps el-rehearsal-base")   # the stand-in for the system's own packages
    code, text = hostsetup(mirror, "-H", f"{debian.hostname},{rocky.hostname}", "install", "--bundle",
                           str(bundle_file), sandbox=offline)
    assert code == 1 and "2 hosts: 2 failed" in text, text
    assert "docker-ce : Depends: libdevmapper1.02.1 (>= 2:1.02.97) but it is not installable" in text
    assert "nothing provides iptables needed by docker-ce-3:" in text
    assert text.count("nothing was installed or configured") == 4   # each host: its step line and the table
    assert root(offline, debian, "ls /etc/apt/sources.list.d /etc/apt/keyrings")[1].split() == \
        ["/etc/apt/keyrings:", "/etc/apt/sources.list.d:"]
    assert root(offline, rocky, "ls /etc/yum.repos.d")[1].split() == []
    assert root(offline, debian, f"ls {BUNDLE_ROOT}")[1].strip()   # the bundle stays for the next try
    offline.remove_hosts([rocky])

    # A reference host of the same system, as bare as the target (no libdevmapper1.02.1), with the system's
    # repository (the sandbox's debian-fixtures stands in for Debian's archive) resolves what is missing.
    reference = sandbox.start_hosts(["debian12"])[0]
    root(sandbox, reference, f"curl -fsS {mirror.url}/linux/debian/gpg -o /etc/apt/keyrings/fixtures.asc && "
                             f"printf 'Types: deb\nURIs: {mirror.url}/{mirror.build.fixtures_path}\nSuites: bookworm\n"
                             "Components: main\nSigned-By: /etc/apt/keyrings/fixtures.asc\n' "
                             "> /etc/apt/sources.list.d/fixtures.sources && apt-get update -q && "
                             "dpkg --purge --force-depends libdevmapper1.02.1")
    with_system = bundle_file.with_name("with-system.tar")
    code, text = hostsetup(mirror, "bundle", "--os", "debian12", "-o", str(with_system), "--mirror",
                           sandbox.publish_mirror(), "--insecure-mirror", "--from", reference.hostname,
                           sandbox=sandbox)
    assert code == 0 and "libdevmapper1.02.1 2:1.02.185-2 (from the reference host)" in text, text
    assert "1 of the system's packages added (--from)" in text
    assert root(sandbox, reference, "dpkg-query -W -f '${db:Status-Abbrev}' libdevmapper1.02.1")[1].strip() != "ii"
    assert root(sandbox, reference, "ls /var/tmp | grep -c hostsetup-deps")[1].strip() == "0"   # nothing left there
    sandbox.remove_hosts([reference])

    code, text = hostsetup(mirror, "-H", debian.hostname, "install", "--bundle", str(with_system), sandbox=offline)
    assert code == 0 and "with 1 of the system's packages from the bundle" in text and "  passed  " in text, text
    assert root(offline, debian, "dpkg-query -W -f '${db:Status-Abbrev}' libdevmapper1.02.1")[1].strip() == "ii"
    assert len(root(offline, debian, f"ls {BUNDLE_ROOT}")[1].split()) == 1   # the first bundle made way
    offline.remove_hosts([debian])


def test_reference_el_host_adds_what_docker_wants_from_appstream(offline: Sandbox, sandbox: Sandbox,
                                                                  mirror: SandboxMirror) -> None:
    """EL rehearsal: docker-ce recommends container-selinux, which only the distribution's repository has
    (el-fixtures stands in for AppStream). A Rocky 9 reference host with that repository fetches it; the
    offline Rocky 9 host gets it in the same transaction."""
    assert mirror.build.rpm is not None
    reference = sandbox.start_hosts(["rocky9"])[0]
    root(sandbox, reference, f"curl -fsS {mirror.url}/{mirror.build.rpm.fixtures_key_path} "
                             "-o /etc/pki/rpm-gpg/RPM-GPG-KEY-el-fixtures && printf '%s\\n' '[el-fixtures]' "
                             "'name=EL rehearsal fixtures' "
                             f"'baseurl={mirror.url}/{mirror.build.rpm.fixtures_path}/$releasever/$basearch' "
                             "gpgcheck=1 gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-el-fixtures "
                             "> /etc/yum.repos.d/el-fixtures.repo")
    out = offline.home / "el-bundle.tar"
    code, text = hostsetup(mirror, "bundle", "--os", "rocky9", "-o", str(out), "--mirror", sandbox.publish_mirror(),
                           "--insecure-mirror", "--from", reference.hostname, sandbox=sandbox)
    assert code == 0 and "rocky9: container-selinux 0:2.229.0-0.fixture.el9 (from the reference host)" in text, text
    assert root(sandbox, reference, "rpm -q container-selinux")[0] != 0   # downloaded, not installed there
    sandbox.remove_hosts([reference])

    host = offline.start_hosts(["rocky9"])[0]
    code, text = hostsetup(mirror, "-H", host.hostname, "install", "--bundle", str(out), sandbox=offline)
    assert code == 0 and "with 1 of the system's packages from the bundle" in text and "  passed  " in text, text
    assert root(offline, host, "rpm -q container-selinux")[1].startswith("container-selinux-2.229.0")
    offline.remove_hosts([host])
