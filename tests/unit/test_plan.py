"""Planning per distribution x starting state, against golden plans.

Facts come from tests/unit/data/facts, recorded from real sandbox hosts by
``python3 -m tests.tools.record_facts``. Other distributions reuse a recorded
bare Debian host with its /etc/os-release replaced (marked "synthetic"): their
package state is Debian's, only the OS identity differs.
Regenerate the golden files with ``UPDATE_GOLDEN=1 pytest tests/unit/test_plan.py``
and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from hostsetup.facts import HostFacts, parse_facts
from hostsetup.host.versions import upstream_version
from hostsetup.openpgp import primary_fingerprints
from hostsetup.operations import FetchKey, InstallPackages, RemoveFiles, Run, WriteFile
from hostsetup.plan import PlanError, plan_install, resolve_version
from hostsetup.run.fleet import describe_plan
from hostsetup.settings import install_settings

DATA = Path(__file__).parent / "data" / "facts"
GOLDEN = Path(__file__).parent / "golden"
SANDBOX_MIRROR = "http://mirror.sandbox.internal"

SYNTHETIC_OS = {
    "ubuntu2404": {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04", "VERSION_CODENAME": "noble",
                   "UBUNTU_CODENAME": "noble", "PRETTY_NAME": "Ubuntu 24.04 LTS"},
    "rocky9": {"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4",
               "PRETTY_NAME": "Rocky Linux 9.4 (Blue Onyx)"},
    "centos7": {"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "7", "PRETTY_NAME": "CentOS Linux 7 (Core)"},
    "rhel9": {"ID": "rhel", "ID_LIKE": "fedora", "VERSION_ID": "9.4", "PRETTY_NAME": "Red Hat Enterprise Linux 9.4"},
    "fedora41": {"ID": "fedora", "VERSION_ID": "41", "PRETTY_NAME": "Fedora Linux 41"},
}


def recorded(name: str) -> HostFacts:
    return parse_facts((DATA / f"{name}.txt").read_text())


def synthetic(os_name: str, base: str = "debian12-bare") -> HostFacts:
    facts = recorded(base)
    return dataclasses.replace(facts, os_release=SYNTHETIC_OS[os_name])


def sandbox_fingerprint(facts: HostFacts) -> str:
    return primary_fingerprints((facts.files["/etc/apt/keyrings/docker.asc"] or "").encode())[0]


def sandbox_settings(facts: HostFacts, **extra: Any):
    return install_settings({"mirror": SANDBOX_MIRROR, "insecure_mirror": True,
                             "key_fingerprint": sandbox_fingerprint(facts), "users": ["hostsetup"], **extra})


CASES = {
    "debian12-bare-official": lambda: (recorded("debian12-bare"), install_settings({"users": ["hostsetup"]})),
    "debian13-bare-tuna-pinned": lambda: (recorded("debian13-bare"),
                                          install_settings({"mirror": "tuna", "version": "26.1", "hold": True})),
    "debian12-docker-io": lambda: (recorded("debian12-docker-io"), install_settings({"mirror": "aliyun"})),
    "debian12-converged-other-base-url": lambda: (
        recorded("debian12-converged"),
        sandbox_settings(recorded("debian12-converged"), mirror="https://mirror.example.internal/docker-ce")),
    "debian12-pinned-upgrade": lambda: (
        recorded("debian12-pinned-held"),
        sandbox_settings(recorded("debian12-pinned-held"), version="20.10.24", hold=True)),
    "debian12-converged-official-key": lambda: (recorded("debian12-converged"),
                                                install_settings({"mirror": SANDBOX_MIRROR, "insecure_mirror": True,
                                                                  "users": ["hostsetup"]})),
    "ubuntu2404-bare-synthetic": lambda: (synthetic("ubuntu2404"), install_settings({})),
    "rocky9-bare-synthetic": lambda: (synthetic("rocky9"), install_settings({"version": "24.0", "hold": True})),
    "centos7-bare-synthetic": lambda: (synthetic("centos7"), install_settings({"mirror": "aliyun"})),
    "rhel9-bare-synthetic": lambda: (synthetic("rhel9"), install_settings({})),
    "fedora41-bare-synthetic": lambda: (synthetic("fedora41"), install_settings({"plugins": False})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_plan(case: str) -> None:
    facts, settings = CASES[case]()
    text = "\n".join(describe_plan(plan_install(facts, settings))) + "\n"
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", ["debian12-converged", "debian13-converged"])
def test_converged_host_plans_nothing(name: str) -> None:
    facts = recorded(name)
    assert plan_install(facts, sandbox_settings(facts)).empty


def test_pinned_and_held_host_plans_nothing_when_pin_unchanged() -> None:
    facts = recorded("debian12-pinned-held")
    plan = plan_install(facts, sandbox_settings(facts, version="20.10.5", hold=True))
    assert plan.empty, [s.summary for s in plan.changes]


def test_hold_requested_on_unheld_host_only_holds() -> None:
    facts = recorded("debian12-converged")
    plan = plan_install(facts, sandbox_settings(facts, hold=True))
    assert [s.name for s in plan.changes] == ["packages"]
    assert "apt-mark hold docker-ce docker-ce-cli" in "\n".join(describe_plan(plan))


def test_other_base_url_changes_only_the_repository_file() -> None:
    facts = recorded("debian12-converged")
    plan = plan_install(facts, sandbox_settings(facts, mirror="https://mirrors.aliyun.com/docker-ce"))
    assert [s.name for s in plan.changes] == ["repository"]
    _wait, write, refresh = plan.changes[0].operations  # the wait for the package manager's lock first
    assert isinstance(write, WriteFile) and write.old and "mirrors.aliyun.com" in write.content
    # nothing to install would read the new repository: its index is refreshed to prove it works
    assert isinstance(refresh, Run) and refresh.command.startswith("apt-get update -q -o Dir::Etc::SourceList=")


def test_other_base_url_with_only_a_hold_to_do_still_refreshes_the_new_repository() -> None:
    facts = recorded("debian12-converged")
    plan = plan_install(facts, sandbox_settings(facts, mirror="https://mirrors.aliyun.com/docker-ce", hold=True))
    assert [s.name for s in plan.changes] == ["repository", "packages"]
    refresh = plan.changes[0].operations[-1]
    assert isinstance(refresh, Run) and refresh.command.startswith("apt-get update -q -o Dir::Etc::SourceList=")


def test_docker_io_host_removes_it_first() -> None:
    plan = plan_install(recorded("debian12-docker-io"), install_settings({}))
    assert plan.steps[0].name == "conflicts" and plan.steps[0].changes
    assert "docker.io" in plan.steps[0].summary and "containerd" in plan.steps[0].summary


def test_another_key_is_fetched_again_and_checked() -> None:
    facts = recorded("debian12-converged")
    plan = plan_install(facts, install_settings({"mirror": SANDBOX_MIRROR, "insecure_mirror": True}))
    key = next(s for s in plan.changes if s.name == "key")
    (fetch,) = key.operations
    assert isinstance(fetch, FetchKey) and fetch.fingerprints == ("9DC858229FC7DD38854AE2D88D81803C0EBFCD88",)


def test_key_file_holding_the_expected_key_and_another_is_fetched_again(tmp_path) -> None:
    """The expected key plus an attacker's in one file: apt would trust both, so it is replaced."""
    import shutil

    from tests.unit.test_openpgp import make_key

    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    facts = recorded("debian12-converged")
    path = "/etc/apt/keyrings/docker.asc"
    assert plan_install(facts, sandbox_settings(facts)).empty
    evil, _ = make_key(tmp_path / "evil", "ed25519", "Attacker <x@example.invalid>")
    expected_key = facts.files[path]
    assert expected_key is not None
    both = expected_key + evil.decode()
    plan = plan_install(dataclasses.replace(facts, files={**facts.files, path: both}), sandbox_settings(facts))
    key = next(s for s in plan.changes if s.name == "key")
    assert isinstance(key.operations[0], FetchKey) and "is not trusted as it is" in key.summary


def test_unknown_pinned_version_lists_available_versions() -> None:
    facts = recorded("debian12-converged")
    with pytest.raises(PlanError, match=r"version 19\.03 is not in the repository; it has: 20\.10\.24, 20\.10\.5"):
        plan_install(facts, sandbox_settings(facts, version="19.03"))


def test_pin_resolved_on_host_when_repository_is_new() -> None:
    plan = plan_install(recorded("debian12-bare"), install_settings({"version": "25.0"}))
    (install,) = next(s for s in plan.steps if s.name == "packages").operations
    assert isinstance(install, InstallPackages) and install.pin == "25.0" and install.version is None


def test_missing_user_is_refused_before_anything_changes() -> None:
    with pytest.raises(PlanError, match="nobody2"):
        plan_install(recorded("debian12-bare"), install_settings({"users": ["hostsetup", "nobody2"]}))


def test_unsupported_system_is_a_plan_error() -> None:
    facts = dataclasses.replace(recorded("debian12-bare"), os_release={"ID": "arch", "PRETTY_NAME": "Arch Linux"})
    with pytest.raises(PlanError, match="unsupported system 'Arch Linux'"):
        plan_install(facts, install_settings({}))


@pytest.mark.parametrize(("pin", "expected"), [
    ("20.10", "5:20.10.24-1~debian.12~bookworm"),
    ("20.10.5", "5:20.10.5-1~debian.12~bookworm"),
    ("5:20.10.5-1~debian.12~bookworm", "5:20.10.5-1~debian.12~bookworm"),
    ("20.10.2", None),
])
def test_resolve_version(pin: str, expected: str | None) -> None:
    available = ("5:20.10.5-1~debian.12~bookworm", "5:20.10.24-1~debian.12~bookworm")
    if expected is None:
        with pytest.raises(PlanError):
            resolve_version(pin, available)
    else:
        assert resolve_version(pin, available) == expected


def test_upstream_version() -> None:
    assert upstream_version("5:20.10.24-1~debian.12~bookworm") == "20.10.24"
    assert upstream_version("3:24.0.7-1.el9") == "24.0.7"


def test_legacy_source_and_key_files_are_removed_with_the_repository_step() -> None:
    facts = recorded("debian12-converged")
    legacy = {"/etc/apt/sources.list.d/docker.list": "deb [signed-by=/etc/apt/keyrings/docker.gpg] x bookworm stable\n",
              "/etc/apt/keyrings/docker.gpg": "binary"}
    facts = dataclasses.replace(facts, files={**facts.files, **legacy})
    plan = plan_install(facts, sandbox_settings(facts))
    assert [s.name for s in plan.changes] == ["repository"]
    (remove,) = plan.changes[0].operations
    assert isinstance(remove, RemoveFiles) and set(remove.paths) == set(legacy)
