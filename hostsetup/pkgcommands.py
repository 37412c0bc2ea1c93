"""The package-manager command lines hostsetup runs (apt-get, dnf, yum)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostsetup.operations import InstallPackages

PINNED_PACKAGES = ("docker-ce", "docker-ce-cli")


def refresh_command(op: InstallPackages) -> str:
    """Refresh only the Docker repository's index (not every source on the host)."""
    if op.manager == "apt-get":
        return ("apt-get update -q -o Dir::Etc::SourceList=" + op.repo_file
                + " -o Dir::Etc::SourceParts=/dev/null -o APT::Get::List-Cleanup=0")
    return f"{op.manager} makecache -y --disablerepo='*' --enablerepo='docker-ce-stable'"


def list_versions_command(op: InstallPackages) -> str:
    if op.manager == "apt-get":
        return "apt-cache madison docker-ce | awk -F'|' '{gsub(/ /,\"\",$2); print $2}'"
    return (f"{op.manager} list --showduplicates -q docker-ce 2>/dev/null | "
            "awk '$1 ~ /^docker-ce/ {print $2}' | sort -r")


def install_command(op: InstallPackages, version: str | None) -> str:
    def spec(package: str) -> str:
        if version and package in PINNED_PACKAGES:
            return f"{package}={version}" if op.manager == "apt-get" else f"{package}-{version}"
        return package
    names = " ".join(spec(p) for p in op.packages)
    if op.manager == "apt-get":
        command = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
                   "--allow-downgrades --allow-change-held-packages " + names)
        if op.hold:
            command += " && apt-mark hold " + " ".join(PINNED_PACKAGES)
        return command
    command = f"{op.manager} install -y --allowerasing {names}" if op.manager == "dnf" else \
        f"yum install -y {names}"
    if version:  # install refuses to go down a version; downgrade does not install new ones
        command = (f"({command}) || {op.manager} downgrade -y "
                   + " ".join(spec(p) for p in PINNED_PACKAGES))
    if op.hold:
        command += f" && {op.manager} versionlock add " + " ".join(PINNED_PACKAGES)
    return command
