"""Offline bundles without a network: target names, index parsing, the package closure, the manifest as read
back, and the install plan from a bundle (upload once, dependency check, the added system packages)."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from hostsetup.bundle import Bundle, BundleError, platform_key, read_bundle, target_platform
from hostsetup.bundlebuild import Candidate, relation_names, select
from hostsetup.operations import InstallPackages, Run, UploadBundle
from hostsetup.plan import PlanError, plan_install
from hostsetup.reference import download_script, parse_download, request_names
from hostsetup.repoindex import parse_deb822, release_sha256
from hostsetup.run.fleet import describe_plan
from hostsetup.run.settings import from_bundle
from hostsetup.settings import install_settings
from hostsetup.steps import Plan
from tests.unit.test_plan import recorded, synthetic


@pytest.mark.parametrize(("name", "key"), [
    ("debian12", "debian/bookworm/amd64"), ("ubuntu2404", "ubuntu/noble/amd64"), ("ubuntu22.04", "ubuntu/jammy/amd64"),
    ("rocky9", "centos/9/x86_64"), ("almalinux9", "centos/9/x86_64"), ("rhel8", "rhel/8/x86_64"),
    ("centos7", "centos/7/x86_64"), ("fedora41", "fedora/41/x86_64")])
def test_target_names_resolve_like_the_hosts_they_stand_for(name: str, key: str) -> None:
    platform = target_platform(name)
    assert platform_key(platform, "amd64" if platform.family.name == "apt" else "x86_64") == key


@pytest.mark.parametrize("name", ["debian99", "solaris11", "debian", "12", "rocky9;rm -rf /", "", "ubuntu19.10"])
def test_unknown_targets_are_refused(name: str) -> None:
    with pytest.raises(BundleError):
        target_platform(name)


def test_inrelease_sha256_list_and_packages_stanzas() -> None:
    release = ("Origin: Docker\nMD5Sum:\n 0123 10 stable/binary-amd64/Packages\nSHA256:\n"
               " aa11 7295 stable/binary-amd64/Packages\n bb22 2265 stable/binary-amd64/Packages.gz\n")
    assert release_sha256(release) == {"stable/binary-amd64/Packages": ("aa11", 7295),
                                             "stable/binary-amd64/Packages.gz": ("bb22", 2265)}
    stanzas = parse_deb822("Package: a\nDescription: x\n more\n\nPackage: b\nVersion: 1\n")
    assert stanzas == [{"Package": "a", "Description": "x\nmore"}, {"Package": "b", "Version": "1"}]
    assert relation_names("containerd.io (>= 1.4.1), iptables | nftables, libc6:any") == \
        ["containerd.io", "iptables", "nftables", "libc6"]


def _cand(name: str, version: str, *relations: str, provides: tuple[str, ...] = ()) -> Candidate:
    return Candidate(name, version, f"pool/{name}_{version}.deb", "0" * 64, 1, list(relations), list(provides))


def test_closure_pins_the_engine_takes_the_rest_newest_and_lists_system_needs() -> None:
    index = [_cand("docker-ce", "5:20.10.24-1", "containerd.io (>= 1.4.1)", "docker-ce-cli", "iptables",
                   "docker-ce-rootless-extras"),
             _cand("docker-ce", "5:20.10.5-1", "containerd.io (>= 1.4.1)"),
             _cand("docker-ce-cli", "5:20.10.24-1", "libc6 (>= 2.34)"), _cand("docker-ce-cli", "5:20.10.5-1"),
             _cand("containerd.io", "1.6.20-1", "libseccomp2 (>= 2.5.0)"), _cand("containerd.io", "1.6.9-1"),
             _cand("docker-ce-rootless-extras", "5:26.1.0-1")]
    chosen, needs = select(index, ["docker-ce", "docker-ce-cli", "containerd.io"], "5:20.10.24-1", relation_names)
    assert {(c.name, c.version) for c in chosen} == {
        ("docker-ce", "5:20.10.24-1"), ("docker-ce-cli", "5:20.10.24-1"), ("containerd.io", "1.6.20-1"),
        ("docker-ce-rootless-extras", "5:26.1.0-1")}   # recommended: apt would fetch it from the same index
    assert needs == ["iptables", "libc6 (>= 2.34)", "libseccomp2 (>= 2.5.0)"]
    with pytest.raises(BundleError, match=r"no docker-ce-cli 5:19\.03"):
        select(index, ["docker-ce-cli"], "5:19.03.0-1", relation_names)


def test_rpm_closure_meets_capabilities_through_provides_and_ignores_the_cli_epoch() -> None:
    index = [_cand("docker-ce", "3:20.10.24-1.el9", "containerd.io >= 1.4.1", "libsystemd.so.0()(64bit)"),
             _cand("docker-ce-cli", "1:20.10.24-1.el9"),
             _cand("containerd.io", "1.6.20-3.1.el9", provides=("containerd.io >= 1.4.1",))]
    chosen, needs = select(index, ["docker-ce", "docker-ce-cli"], "3:20.10.24-1.el9", lambda r: [r])
    assert sorted(c.name for c in chosen) == ["containerd.io", "docker-ce", "docker-ce-cli"]
    assert needs == ["libsystemd.so.0()(64bit)"]


def _write_bundle(path: Path, targets: dict[str, object], version: str = "20.10.24", files: bool = True,
                  extra: tarfile.TarInfo | None = None) -> Path:
    """A bundle's manifest and (``files``) a stand-in for every file it names."""
    named = {p["file"] for t in targets.values() if isinstance(t, dict)
             for p in (*t.get("packages", ()), *t.get("extras", ()))} if files else set()
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", json.dumps({"format": 1, "version": version, "targets": targets})
                            .encode()), *((n, b"x") for n in sorted(named))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return path


def _package(name: str, version: str) -> dict[str, object]:
    return {"name": name, "version": version, "file": f"linux/debian/pool/{name}.deb", "sha256": "0" * 64, "size": 1}


DEBIAN12 = {"key": "debian/bookworm/amd64", "family": "apt", "needs": ["iptables"],
            "packages": [_package(n, "5:20.10.24-1~debian.12~bookworm") for n in ("docker-ce", "docker-ce-cli")]
            + [_package(n, "1") for n in ("containerd.io", "docker-buildx-plugin", "docker-compose-plugin")],
            "extras": [_package("libdevmapper1.02.1", "2:1.02.185-2") | {"file": "extras/debian12/libdm.deb"}]}


def test_read_bundle_and_its_refusals(tmp_path: Path) -> None:
    bundle = read_bundle(str(_write_bundle(tmp_path / "b.tar", {"debian12": DEBIAN12})))
    assert bundle.version == "20.10.24" and bundle.targets["debian12"].exact("docker-ce").startswith("5:20.10.24")
    assert bundle.url == f"file:///var/lib/hostsetup/bundles/{bundle.sha256[:16]}"
    assert bundle.extra_names == ("libdevmapper1.02.1",)
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    link = tarfile.TarInfo("linux/debian/gpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    escape = tarfile.TarInfo("../../etc/cron.d/x")
    escape.size = 1
    for path, message in ((tmp_path / "none.tar", "no such file"), (tmp_path / "junk.tar", "not a hostsetup bundle"),
                          (_write_bundle(tmp_path / "old.tar", {"x": {}}), "its manifest is not one hostsetup wrote"),
                          (_write_bundle(tmp_path / "link.tar", {"debian12": DEBIAN12}, extra=link),
                           "it holds 'linux/debian/gpg', which hostsetup does not write"),
                          (_write_bundle(tmp_path / "up.tar", {"debian12": DEBIAN12}, extra=escape),
                           "it holds '../../etc/cron.d/x'"),
                          (_write_bundle(tmp_path / "short.tar", {"debian12": DEBIAN12}, files=False),
                           "it names linux/debian/pool/docker-ce.deb, which the archive does not hold")):
        with pytest.raises(BundleError, match=message):
            read_bundle(str(path))


def _plan(bundle: Bundle, facts_name: str = "debian12-bare", **facts_changes: Any) -> Plan:
    facts = dataclasses.replace(recorded(facts_name), **facts_changes)
    settings = from_bundle(install_settings({"users": ["hostsetup"]}), bundle)
    return plan_install(facts, settings, bundle=bundle)


def test_a_bare_host_gets_the_bundle_a_dependency_check_and_the_missing_system_packages(tmp_path: Path) -> None:
    bundle = read_bundle(str(_write_bundle(tmp_path / "b.tar", {"debian12": DEBIAN12})))
    plan = _plan(bundle)
    first = plan.steps[0]
    assert first.name == "bundle" and isinstance(first.operations[0], UploadBundle)
    check = first.operations[1]
    assert isinstance(check, Run) and "apt-get install -s" in check.command
    assert f"{bundle.remote_dir}/extras/debian12/libdm.deb" in check.command
    install = next(op for s in plan.steps for op in s.operations if isinstance(op, InstallPackages))
    assert install.local_files == (f"{bundle.remote_dir}/extras/debian12/libdm.deb",) and install.pin == "20.10.24"
    text = "\n".join(describe_plan(plan))
    assert f"URIs: {bundle.url}/linux/debian" in text and f"curl -fsSL {bundle.url}/linux/debian/gpg" in text


def test_a_host_that_has_the_bundle_and_the_system_package_is_sent_neither(tmp_path: Path) -> None:
    bundle = read_bundle(str(_write_bundle(tmp_path / "b.tar", {"debian12": DEBIAN12})))
    facts = recorded("debian12-bare")
    plan = _plan(bundle, files={**facts.files, bundle.marker: bundle.sha256 + "\n"},
                 packages={**facts.packages, "libdevmapper1.02.1": "2:1.02.185-2"})
    first = plan.steps[0]
    assert [type(op) for op in first.operations] == [Run]   # the check only: packages are still to install
    install = next(op for s in plan.steps for op in s.operations if isinstance(op, InstallPackages))
    assert install.local_files == ()


def test_a_host_the_bundle_has_no_packages_for_is_refused_naming_what_it_has(tmp_path: Path) -> None:
    bundle = read_bundle(str(_write_bundle(tmp_path / "b.tar", {"debian12": DEBIAN12})))
    with pytest.raises(PlanError, match=r"no packages for this host's .*\(centos/9/x86_64\); it has: debian12"):
        plan_install(synthetic("rocky9"), from_bundle(install_settings({}), bundle), bundle=bundle)


def test_reference_host_requests_and_downloads() -> None:
    assert request_names(["libc6 (>= 2.34)", "iptables | nftables", "libc6 (>= 2.36)"], "apt") == ["libc6", "iptables"]
    assert request_names(["libsystemd.so.0()(64bit)", "/bin/sh"], "rpm") == ["libsystemd.so.0()(64bit)", "/bin/sh"]
    assert "--releasever=9" in download_script(target_platform("rocky9"), ["/bin/sh"])
    assert "'libsystemd.so.0()(64bit)'" in download_script(target_platform("rocky9"), ["libsystemd.so.0()(64bit)"])
    assert "apt-get install --download-only" in download_script(target_platform("debian12"), ["iptables"])
    directory, packages = parse_download("noise\n@@dir /var/tmp/hostsetup-deps-x\n"
                                         "@@pkg libdevmapper1.02.1\t2:1.02.185-2\t/var/tmp/hostsetup-deps-x/a.deb\n")
    assert directory == "/var/tmp/hostsetup-deps-x"
    assert packages == [("libdevmapper1.02.1", "2:1.02.185-2", "/var/tmp/hostsetup-deps-x/a.deb")]


def test_mirror_credentials_are_decoded_and_go_to_the_mirror_only() -> None:
    """A redirect to another origin gets no Authorization header (urllib would copy it along)."""
    import base64
    import http.server
    import threading

    from hostsetup.bundlebuild import Downloader

    seen: dict[int, list[str | None]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        server: http.server.HTTPServer  # (a BaseServer to typeshed): the HTTPServers below

        def do_GET(self) -> None:
            seen.setdefault(self.server.server_port, []).append(self.headers.get("Authorization"))
            target = {"/same": self.server.server_port, "/away": other.server_port}.get(self.path)
            if target:
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{target}/ok")
                self.end_headers()
            else:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    mirror, other = (http.server.HTTPServer(("127.0.0.1", 0), Handler) for _ in range(2))
    for server in (mirror, other):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        downloader = Downloader(f"http://deploy%40corp:p%40ss@127.0.0.1:{mirror.server_port}")
        assert downloader.must("same") == b"ok" and downloader.must("away") == b"ok"
    finally:
        for server in (mirror, other):
            server.shutdown()
    token = "Basic " + base64.b64encode(b"deploy@corp:p@ss").decode()
    assert seen == {mirror.server_port: [token, token, token], other.server_port: [None]}


def test_install_refuses_a_bundle_whose_sha256_is_not_the_pinned_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _write_bundle(tmp_path / "b.tar", {"debian12": DEBIAN12})
    run = subprocess.run([sys.executable, "-m", "hostsetup", "-H", "h.invalid", "install", "--bundle", str(path),
                          "--bundle-sha256", "0" * 64], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.startswith(f"hostsetup: --bundle {path} has sha256 ")
    assert "refusing it" in run.stderr and len(run.stderr.strip().splitlines()) == 1
