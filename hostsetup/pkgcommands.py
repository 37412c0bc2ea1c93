"""The package-manager command lines hostsetup runs (apt-get, dnf, yum)."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostsetup.operations import InstallPackages

PINNED_PACKAGES = ("docker-ce", "docker-ce-cli")


def refresh_command(op: InstallPackages) -> str:
    """Refresh only the Docker repository's index (not every source on the host)."""
    return repository_refresh_command(op.manager, op.repo_file)


def repository_refresh_command(manager: str, repo_file: str) -> str:
    """``manager``'s refresh of the one repository in ``repo_file``: proves it serves signed metadata."""
    if manager == "apt-get":
        return ("apt-get update -q -o Dir::Etc::SourceList=" + repo_file
                + " -o Dir::Etc::SourceParts=/dev/null -o APT::Get::List-Cleanup=0")
    return f"{manager} makecache -y --disablerepo='*' --enablerepo='docker-ce-stable'"


def list_versions_command(op: InstallPackages) -> str:
    if op.manager == "apt-get":
        return "apt-cache madison docker-ce | awk -F'|' '{gsub(/ /,\"\",$2); print $2}'"
    return (f"{op.manager} list --showduplicates -q docker-ce 2>/dev/null | "
            "awk '$1 ~ /^docker-ce/ {print $2}' | sort -r")


def rpm_pin(version: str) -> str:
    """``3:24.0.7-1.el9`` -> ``24.0.7-1.el9``: the epoch cannot be shared by both pinned packages.

    Docker's RPMs carry epoch 3 (docker-ce) and 1 (docker-ce-cli); name-version-release
    matches whatever epoch a package has.
    """
    return version.split(":", 1)[-1]


def install_command(op: InstallPackages, version: str | None) -> str:
    def spec(package: str) -> str:
        # Versions come from the repository's index (the host's output): quoted like any value.
        if version and package in PINNED_PACKAGES:
            return shlex.quote(f"{package}={version}" if op.manager == "apt-get" else f"{package}-{rpm_pin(version)}")
        return shlex.quote(package)
    names = " ".join(spec(p) for p in op.packages)
    if op.manager == "apt-get":
        command = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
                   "--allow-downgrades --allow-change-held-packages " + names)
        if op.hold:
            command += " && apt-mark hold " + " ".join(PINNED_PACKAGES)
        return command
    pinned = " ".join(spec(p) for p in PINNED_PACKAGES) if version else ""
    return rpm_install_command(op.manager, names, pinned, op.hold)


def lock_command(manager: str) -> str:
    """Lock docker-ce/-cli at the installed versions, replacing an older lock of them.

    A lock names one version and ``versionlock add`` keeps an existing one, so it is
    deleted first (apt's holds name packages, not versions).
    """
    names = " ".join(PINNED_PACKAGES)
    return f"{manager} versionlock delete {names} >/dev/null && {manager} versionlock add {names}"


def rpm_install_command(manager: str, names: str, pinned: str, hold: bool) -> str:
    """dnf/yum install; ``pinned`` (the version-pinned docker-ce and -cli) overrides a versionlock.

    Like apt's ``--allow-change-held-packages``, an explicit version wins over a hold, and a
    hold that was there follows the new version.
    """
    unlocked = " --disableplugin=versionlock" if pinned else ""
    command = (f"dnf install -y --allowerasing{unlocked} {names}" if manager == "dnf"
               else f"yum install -y{unlocked} {names}")
    if pinned:  # install refuses to go down a version; downgrade does not install new ones
        relock = lock_command(manager) if hold else (
            f"if {manager} versionlock list 2>/dev/null | grep -q docker-ce; then {lock_command(manager)}; fi")
        return f"({command}) || {manager} downgrade -y{unlocked} {pinned} && {relock}"
    if hold:
        command += f" && {manager} versionlock add " + " ".join(PINNED_PACKAGES)
    return command


def versionlocked(text: str) -> set[str]:
    """Names locked in a versionlock list: dnf writes ``name-E:V-R.*``, yum 3 ``E:name-V-R.*``."""
    names = set()
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith(("#", "!")) and entry.count("-") >= 2:
            names.add(re.sub(r"^\d+:", "", entry.rsplit("-", 2)[0]))
    return names
