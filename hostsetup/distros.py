"""Supported operating systems as data: one table row per distribution.

A host's ``/etc/os-release`` is matched by ``ID`` first and then by each entry
of ``ID_LIKE``. Facts for each row come from Docker's install docs (see
``docs``/shared reference ``docker-packaging-facts.md`` d2, d3, d5).
"""

from __future__ import annotations

from dataclasses import dataclass

from hostsetup.errors import HostsetupError
from hostsetup.host.packages import MANAGERS, PackageManager

ENGINE_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io")
PLUGIN_PACKAGES = ("docker-buildx-plugin", "docker-compose-plugin")
# Installed with the engine by Docker's packages' recommendations; removed with it.
COMPANION_PACKAGES = ("docker-ce-rootless-extras",)


def install_packages(plugins: bool) -> tuple[str, ...]:
    """What an install puts on a host: the engine, and the plugins unless left out."""
    return (*ENGINE_PACKAGES, *(PLUGIN_PACKAGES if plugins else ()))

# Conflicting packages, per Docker's install page for each distribution.
CENTOS_CONFLICTS = (
    "docker", "docker-client", "docker-client-latest", "docker-common", "docker-latest",
    "docker-latest-logrotate", "docker-logrotate", "docker-engine",
)
EL8_EXTRA_CONFLICTS = ("podman", "runc", "buildah")
DEBIAN_CONFLICTS = ("docker.io", "docker-doc", "docker-compose", "podman-docker",
                    "containerd", "runc")
UBUNTU_CONFLICTS = (*DEBIAN_CONFLICTS, "docker-compose-v2")
FEDORA_CONFLICTS = (*CENTOS_CONFLICTS, "docker-selinux", "docker-engine-selinux")

# Debian codenames by major version (derivatives such as Kali map through ID_LIKE
# but must name a real Debian codename).
DEBIAN_CODENAMES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
UBUNTU_CODENAMES = {"20.04": "focal", "22.04": "jammy", "24.04": "noble"}


class UnsupportedSystem(HostsetupError):
    """The host runs a system hostsetup does not know how to install Docker on."""


@dataclass(frozen=True)
class PackageFamily:
    """How one packaging world installs Docker: commands and file locations."""

    name: str                # "apt" or "rpm"
    repo_file: str
    key_file: str
    legacy_files: tuple[str, ...]   # older docker source/key files that clash with ours
    prerequisites: tuple[str, ...]  # packages install needs first
    prerequisite_commands: tuple[str, ...]  # those of them a command on PATH stands for (EL 9: curl-minimal)
    reinstall: str           # the command that reinstalls packages (their names follow)


APT = PackageFamily(
    name="apt",
    repo_file="/etc/apt/sources.list.d/docker.sources",
    key_file="/etc/apt/keyrings/docker.asc",
    legacy_files=(
        "/etc/apt/sources.list.d/docker.list",
        "/etc/apt/sources.list.d/docker-ce.list",
        "/etc/apt/sources.list.d/download_docker_com_linux_debian.list",
        "/etc/apt/sources.list.d/download_docker_com_linux_ubuntu.list",
        "/etc/apt/keyrings/docker.gpg",
        "/usr/share/keyrings/docker-archive-keyring.gpg",
        "/etc/apt/trusted.gpg.d/docker.gpg",
    ),
    prerequisites=("ca-certificates", "curl"),
    prerequisite_commands=(),
    reinstall="apt-get install --reinstall -y",
)


RPM = PackageFamily(
    name="rpm",
    repo_file="/etc/yum.repos.d/docker-ce.repo",
    key_file="/etc/pki/rpm-gpg/docker-ce.gpg",
    legacy_files=("/etc/yum.repos.d/docker-ce-staging.repo",),
    prerequisites=("curl",),
    prerequisite_commands=("curl",),
    reinstall="yum reinstall -y",   # yum on EL 7, dnf's alias on 8+
)


@dataclass(frozen=True)
class Distro:
    """One row of the table: a distribution and what differs about it."""

    id: str
    family: PackageFamily
    repo_path: str                      # <base>/linux/<repo_path>/...
    conflicts: tuple[str, ...]
    versions: tuple[str, ...]           # supported major versions
    codenames: dict[str, str] | None = None   # apt only: version -> codename


DISTROS: dict[str, Distro] = {d.id: d for d in (
    Distro("debian", APT, "debian", DEBIAN_CONFLICTS, ("11", "12", "13"), DEBIAN_CODENAMES),
    Distro("ubuntu", APT, "ubuntu", UBUNTU_CONFLICTS, ("20.04", "22.04", "24.04"),
           UBUNTU_CODENAMES),
    Distro("centos", RPM, "centos", CENTOS_CONFLICTS, ("7", "8", "9", "10")),
    Distro("rhel", RPM, "rhel", (*CENTOS_CONFLICTS, "podman", "runc"), ("8", "9", "10")),
    # Rocky, Alma and Oracle Linux use the CentOS repository (docker docs, centos.md).
    Distro("rocky", RPM, "centos", CENTOS_CONFLICTS, ("8", "9", "10")),
    Distro("almalinux", RPM, "centos", CENTOS_CONFLICTS, ("8", "9", "10")),
    Distro("ol", RPM, "centos", CENTOS_CONFLICTS, ("8", "9", "10")),
    Distro("fedora", RPM, "fedora", FEDORA_CONFLICTS,
           tuple(str(v) for v in range(40, 45))),
)}


# Every conflicting package of every row (what the facts ask the host about).
ALL_CONFLICTS = tuple(dict.fromkeys((*(c for d in DISTROS.values() for c in d.conflicts), *EL8_EXTRA_CONFLICTS)))


@dataclass(frozen=True)
class Platform:
    """A host's system resolved against the table: everything planning needs."""

    distro: Distro
    name: str            # PRETTY_NAME, for messages
    version: str         # major version (or Ubuntu's YY.MM)
    codename: str        # apt suite ("" on rpm systems)
    package_manager: str  # apt-get, dnf or yum

    @property
    def family(self) -> PackageFamily:
        return self.distro.family

    @property
    def manager(self) -> PackageManager:
        """The package manager's commands (``package_manager`` names it)."""
        return MANAGERS[self.package_manager]

    @property
    def conflicts(self) -> tuple[str, ...]:
        extra = EL8_EXTRA_CONFLICTS if self.family is RPM and self.version != "7" else ()
        return tuple(dict.fromkeys((*self.distro.conflicts, *extra)))

    def repo_url(self, base: str) -> str:
        """The repository URL for this platform under a mirror ``base``."""
        return f"{base.rstrip('/')}/linux/{self.distro.repo_path}"


def family_of(ids: tuple[str, ...] | list[str]) -> PackageFamily | None:
    """The packaging family of a system known by its os-release ``ID`` and ``ID_LIKE`` words."""
    return next((DISTROS[i].family for i in ids if i in DISTROS), None)


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict, quotes removed."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            fields[key] = value.strip().strip('"').strip("'")
    return fields


def _major(version_id: str, distro: Distro) -> str:
    if distro.id == "ubuntu":
        return version_id
    return version_id.split(".")[0]


def resolve_platform(os_release: dict[str, str]) -> Platform:
    """Match a host's os-release against the table, or explain why not."""
    ids = [os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()]
    pretty = os_release.get("PRETTY_NAME") or " ".join(
        filter(None, (os_release.get("ID"), os_release.get("VERSION_ID")))) or "unknown"
    distro = next((DISTROS[i] for i in ids if i in DISTROS), None)
    if distro is None:
        raise UnsupportedSystem(f"unsupported system {pretty!r} (ID={os_release.get('ID', '')!r}"
                                f", ID_LIKE={os_release.get('ID_LIKE', '')!r}); supported: "
                                f"{', '.join(sorted(DISTROS))} and their derivatives")
    if distro.family is APT:
        return _resolve_apt(distro, os_release, pretty)
    version = _major(os_release.get("VERSION_ID", ""), distro)
    if distro.id != os_release.get("ID") and distro.id == "rhel" and "centos" in ids:
        distro = DISTROS["centos"]
    if version not in distro.versions:
        raise UnsupportedSystem(f"{pretty}: {distro.id} version {version or '?'} is not "
                                f"supported (supported: {', '.join(distro.versions)})")
    manager = "yum" if version == "7" else "dnf"
    return Platform(distro, pretty, version, "", manager)


def _resolve_apt(distro: Distro, os_release: dict[str, str], pretty: str) -> Platform:
    assert distro.codenames is not None
    if distro.id == "ubuntu":
        codename = os_release.get("UBUNTU_CODENAME") or os_release.get("VERSION_CODENAME", "")
    else:
        codename = os_release.get("VERSION_CODENAME", "")
    versions = {c: v for v, c in distro.codenames.items()}
    if codename not in versions:
        raise UnsupportedSystem(f"{pretty}: {distro.id} release {codename or '?'} is not "
                                f"supported (supported: {', '.join(distro.codenames.values())})")
    return Platform(distro, pretty, versions[codename], codename, "apt-get")
