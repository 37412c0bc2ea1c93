"""The mirror misbehaves, for real HTTP (``SandboxMirror.set_faults``): 404 for the key, 404 for
the repository index, 404 for a package, a valid key with another fingerprint. Each time
``install`` fails the host in one line naming the URL and what it answered, exits 1, and leaves
no source behind that breaks the host's own ``apt-get update`` / ``dnf makecache`` (the host's
other source keeps working). With the fault cleared a rerun converges, and the one after changes
nothing.

One host per OS takes all the faults in turn (each but the package 404 fails before any package is
downloaded), then the converging rerun; then, on the converged host, an index 404 behind a
changed mirror, whose previous repository file is put back byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hostsetup.host.versions import upstream_version
from hostsetup.mirrors import PRESETS
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from tests.e2e.conftest import only_host, steps_with
from tests.e2e.test_el_rehearsal import add_fixtures_repo, root_run
from tests.unit.test_openpgp import make_key

ALL_STEPS = ["conflicts", "prerequisites", "key", "repository", "packages", "service", "group"]


class Layout:
    """Where each OS keeps its sources and keys, the mirror paths to break, and the host's own refresh."""

    def __init__(self, flavor: str) -> None:
        self.apt = flavor.startswith("debian")
        self.repo_path = "/linux/debian" if self.apt else "/linux/centos"
        self.dirs = ("/etc/apt/sources.list.d", "/etc/apt/keyrings") if self.apt \
            else ("/etc/yum.repos.d", "/etc/pki/rpm-gpg")
        self.repo_file = "/etc/apt/sources.list.d/docker.sources" if self.apt else "/etc/yum.repos.d/docker-ce.repo"
        self.key_fault = f"{self.repo_path}/gpg"
        # apt tries InRelease, then Release (+ .gpg); dnf reads repodata/repomd.xml first.
        self.index_fault = f"{self.repo_path}/dists/*/*Release*" if self.apt \
            else f"{self.repo_path}/*/repodata/repomd.xml"
        self.package_fault = f"{self.repo_path}/dists/*/pool/*/docker-ce_*.deb" if self.apt \
            else f"{self.repo_path}/*/Packages/docker-ce-[0-9]*.rpm"
        self.host_refresh = "apt-get update" if self.apt else "dnf makecache"

    def index_url(self, base: str) -> str:
        return f"{base}{self.repo_path}/dists/bookworm/Release" if self.apt \
            else f"{base}{self.repo_path}/9/x86_64/stable/repodata/repomd.xml"

    def package_url(self, base: str) -> re.Pattern[str]:
        name = r"dists/bookworm/pool/stable/amd64/docker-ce_\S+_amd64\.deb" if self.apt \
            else r"9/x86_64/stable/Packages/docker-ce-\S+\.el9\.x86_64\.rpm"
        return re.compile(re.escape(f"downloading {base}{self.repo_path}/") + name + " failed: 404 Not Found; ")


@pytest.fixture
def faulty_mirror(mirror: SandboxMirror) -> Iterator[SandboxMirror]:
    """The session's mirror, its faults cleared however the test ends."""
    try:
        yield mirror
    finally:
        mirror.clear_faults()


def sources_state(sandbox: Sandbox, host: SandboxHost, layout: Layout) -> str:
    """Every file in the source and key directories (content digest, mode, owner), and any rollback left."""
    return root_run(sandbox, host, f"find {' '.join(layout.dirs)} /var/backups/hostsetup/rollback -type f "
                                   "-exec stat -c '%n %a %U' {} \\; -exec sha256sum {} \\; 2>/dev/null | sort",
                    warn=True)


def host_refresh_works(sandbox: Sandbox, host: SandboxHost, layout: Layout) -> str:
    """The host's own refresh of every source it has, as root: it must succeed, with no error line."""
    out = root_run(sandbox, host, f"{layout.host_refresh} 2>&1")  # raises on a non-zero exit
    assert not re.search(r"^(E:|W:|Error)", out, re.M), out
    return out


def prepare(sandbox: Sandbox, host: SandboxHost, mirror: SandboxMirror, layout: Layout) -> None:
    """The host's own source besides Docker's (served by the sandbox, like the distribution's)."""
    if layout.apt:
        root_run(sandbox, host,
                 f"curl -fsS {mirror.url}/{mirror.build.key_path} -o /etc/apt/keyrings/fixtures.asc && "
                 "printf 'Types: deb\\nURIs: %s/%s\\nSuites: %s\\nComponents: main\\n"
                 "Signed-By: /etc/apt/keyrings/fixtures.asc\\n' "
                 f"{mirror.url} {mirror.build.fixtures_path} {mirror.build.fixtures_suite} "
                 "> /etc/apt/sources.list.d/fixtures.sources")
    else:
        assert mirror.build.rpm is not None, "the sandbox mirror has no EL rehearsal RPM repositories"
        add_fixtures_repo(sandbox, host, mirror, mirror.build.rpm)
    assert "fixtures" in host_refresh_works(sandbox, host, layout).lower()


def failed_step(report: dict[str, Any], name: str) -> str:
    host = only_host(report)
    assert host["status"] == "failed", host
    steps = {s["name"]: s for s in host["steps"]}
    assert steps[name]["status"] == "failed", steps
    after = ALL_STEPS[ALL_STEPS.index(name) + 1:]
    assert all(steps[n]["status"] in ("skipped", "ok") for n in after), steps  # ok: nothing to do
    error: str = steps[name]["error"]
    assert "\n" not in error, error
    return error


def package_installed(sandbox: Sandbox, host: SandboxHost, layout: Layout) -> bool:
    check = "dpkg-query -W -f '${db:Status-Abbrev}' docker-ce 2>/dev/null | grep -q '^ii'" if layout.apt \
        else "rpm -q docker-ce >/dev/null"
    return root_run(sandbox, host, f"if {check}; then echo yes; fi").strip() == "yes"


@pytest.mark.parametrize("flavor", ["debian12", "rocky9"])
def test_mirror_faults_fail_clearly_leave_the_sources_working_and_a_rerun_converges(
        sandbox: Sandbox, faulty_mirror: SandboxMirror, cli: Callable[..., tuple[int, dict[str, Any], str]],
        fresh_hosts: Callable[..., list[SandboxHost]], tmp_path: Path, flavor: str) -> None:
    mirror, layout = faulty_mirror, Layout(flavor)
    official = PRESETS["official"]
    host = fresh_hosts(flavor)[0]
    prepare(sandbox, host, mirror, layout)
    versions = mirror.build.versions["bookworm"] if layout.apt else (mirror.build.rpm.versions["9"]
                                                                     if mirror.build.rpm else [])
    before = sources_state(sandbox, host, layout)

    def fails(fault: dict[str, int | bytes], step: str, *args: str, mirror_url: str = "",
              on_host: str = "*") -> tuple[str, dict[str, Any]]:
        """Run install against the faulty mirror; the failed step's error and the report."""
        mirror.set_faults(fault, on_host)
        code, report, out = cli(host, *args, mirror_url=mirror_url)
        assert code == 1, out
        error = failed_step(report, step)
        assert error in out  # what the user sees
        host_refresh_works(sandbox, host, layout)  # while the mirror still misbehaves
        mirror.clear_faults()
        return error, report

    # 1. 404 for the key: nothing written.
    error, _ = fails({layout.key_fault: 404}, "key")
    assert error.startswith(f"downloading the repository key {official}{layout.repo_path}/gpg failed: "
                            "404 Not Found; nothing was written"), error
    assert sources_state(sandbox, host, layout) == before

    # 2. A valid key, but another one: refused before anything is written.
    other_key, other_fingerprint = make_key(tmp_path / "gnupg", "ed25519", "someone else <else@example.invalid>")
    error, _ = fails({layout.key_fault: other_key}, "key")
    assert error.startswith(f"key from {official}{layout.repo_path}/gpg: it holds key {other_fingerprint}, "
                            f"expected {mirror.build.key_fingerprint}; refusing to trust it, nothing was written")
    assert sources_state(sandbox, host, layout) == before

    # 3. 404 for the index: the key and repository file were written, the refresh proves them wrong,
    #    they go back (here: removed, they were new).
    #    The same with a version to resolve on the host: the refresh comes in a session of its own.
    for args in ((), ("--version", upstream_version(versions[0]))):
        error, report = fails({layout.index_fault: 404}, "packages", *args)
        assert error == (f"refreshing the repository's index failed: {layout.index_url(official)} answered "
                         "404 Not Found; the repository file and the key were put back as they were"), (args, error)
        assert steps_with(report, "reverted") == ["key", "repository"], args
        assert sources_state(sandbox, host, layout) == before, args

    # 4. 404 for a package: the index is fine, the download fails; the verified repository stays
    #    (the host's own refresh reads it too), no package is installed.
    error, _ = fails({layout.package_fault: 404}, "packages")
    assert layout.package_url(official).match(error), error
    assert error.endswith("; no package was changed; the repository stays configured (its index was read and "
                          "verified)"), error
    assert not package_installed(sandbox, host, layout)
    configured = sources_state(sandbox, host, layout)
    assert layout.repo_file in configured and configured != before

    # The fault cleared: the rerun converges, the next one changes nothing.
    code, report, out = cli(host, mirror_url="")
    assert code == 0, out
    assert steps_with(report, "changed") == ["packages", "service", "group"], out
    assert package_installed(sandbox, host, layout)
    host_refresh_works(sandbox, host, layout)
    converged = sources_state(sandbox, host, layout)

    # A changed mirror whose index is a 404 (only that mirror's: the host's own refresh still reads
    # Docker's): the previous, working repository file is put back.
    aliyun = PRESETS["aliyun"]
    error, _ = fails({layout.index_fault: 404}, "repository", mirror_url="aliyun", on_host="mirrors.aliyun.com")
    assert error == (f"refreshing the repository's index failed: {layout.index_url(aliyun)} answered "
                     "404 Not Found; the repository file was put back as it was"), error
    assert sources_state(sandbox, host, layout) == converged

    code, report, out = cli(host, mirror_url="")
    assert code == 0 and only_host(report)["status"] == "ok", out
    assert steps_with(report, "ok") == ALL_STEPS
