"""The OS table: IDs, derivatives, repository paths, pinned releasever, refusals."""

from __future__ import annotations

import pytest

from hostsetup.distros import UnsupportedSystem, parse_os_release, resolve_platform


def platform(**fields: str):
    return resolve_platform(fields)


@pytest.mark.parametrize(("fields", "repo", "version", "codename", "manager"), [
    ({"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"}, "debian", "12", "bookworm", "apt-get"),
    ({"ID": "debian", "VERSION_ID": "13", "VERSION_CODENAME": "trixie"}, "debian", "13", "trixie", "apt-get"),
    ({"ID": "ubuntu", "VERSION_ID": "24.04", "VERSION_CODENAME": "noble", "UBUNTU_CODENAME": "noble"},
     "ubuntu", "24.04", "noble", "apt-get"),
    # Linux Mint: ID_LIKE ubuntu and its own VERSION_CODENAME; UBUNTU_CODENAME wins.
    ({"ID": "linuxmint", "ID_LIKE": "ubuntu debian", "VERSION_ID": "21.3", "VERSION_CODENAME": "virginia",
      "UBUNTU_CODENAME": "jammy"}, "ubuntu", "22.04", "jammy", "apt-get"),
    ({"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "7"}, "centos", "7", "", "yum"),
    ({"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "9"}, "centos", "9", "", "dnf"),
    ({"ID": "rhel", "ID_LIKE": "fedora", "VERSION_ID": "9.4"}, "rhel", "9", "", "dnf"),
    ({"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.3"}, "centos", "9", "", "dnf"),
    ({"ID": "almalinux", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "8.10"}, "centos", "8", "", "dnf"),
    ({"ID": "ol", "ID_LIKE": "fedora", "VERSION_ID": "9.2"}, "centos", "9", "", "dnf"),
    ({"ID": "fedora", "VERSION_ID": "41"}, "fedora", "41", "", "dnf"),
])
def test_supported(fields, repo, version, codename, manager) -> None:
    p = resolve_platform(fields)
    assert (p.distro.repo_path, p.version, p.codename, p.package_manager) == (repo, version, codename, manager)
    assert p.repo_url("https://mirror.example/docker-ce/") == f"https://mirror.example/docker-ce/linux/{repo}"


def test_el8_conflicts_include_podman_runc_buildah_but_el7_not() -> None:
    el9 = platform(ID="rocky", ID_LIKE="rhel centos fedora", VERSION_ID="9.3")
    el7 = platform(ID="centos", VERSION_ID="7")
    assert {"podman", "runc", "buildah"} <= set(el9.conflicts)
    assert not {"podman", "runc", "buildah"} & set(el7.conflicts)
    assert "docker-engine" in el7.conflicts


@pytest.mark.parametrize(("fields", "message"), [
    ({"ID": "arch", "PRETTY_NAME": "Arch Linux"}, "unsupported system 'Arch Linux'"),
    ({"ID": "debian", "VERSION_CODENAME": "buster", "PRETTY_NAME": "Debian 10"}, "release buster"),
    ({"ID": "centos", "VERSION_ID": "6", "PRETTY_NAME": "CentOS 6"}, "version 6 is not supported"),
    ({}, "unsupported system 'unknown'"),
])
def test_unsupported_names_what_was_detected(fields, message) -> None:
    with pytest.raises(UnsupportedSystem, match=message):
        resolve_platform(fields)


def test_parse_os_release_strips_quotes_and_comments() -> None:
    text = '# comment\nNAME="Rocky Linux"\nVERSION_ID=\'9.3\'\nID=rocky\n\nBAD LINE\n'
    assert parse_os_release(text) == {"NAME": "Rocky Linux", "VERSION_ID": "9.3", "ID": "rocky"}
