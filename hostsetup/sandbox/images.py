"""Sandbox host images: Debian with systemd as PID 1, sshd, sudo and python3.

Each image is built with ``debootstrap`` from the machine's own Debian archive
and ``docker import``-ed under a tag that carries a hash of its recipe, so an
image is rebuilt only when its recipe changes.

The EL rehearsal flavors (``rocky9``, ``centos7``) are the same Debian bookworm
userland made to answer like an EL host: the os-release of that system, Debian's
own ``dnf`` and ``rpm`` with one system rpm database, dnf reading only
``/etc/yum.repos.d``, EL's "disable *" systemd preset, and dpkg/apt moved out of
``PATH``. The rpm database holds one package, ``el-rehearsal-base``, which
declares to rpm what the Debian userland really has (see ``base_rpm``). No
CentOS or Rocky code runs in them: they rehearse hostsetup's EL path with real
dnf and rpm, not a real EL system.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from hostsetup.host.versions import upstream_version
from hostsetup.sandbox.debarchive import archive_url
from hostsetup.sandbox.engine import Progress, SandboxError, docker
from hostsetup.sandbox.rpmrepo import RpmSpec, spec_text

IMAGE_REPOSITORY = "hostsetup-host"
SANDBOX_USER = "hostsetup"

# What every host needs to boot, be reached and be provisioned offline: the
# runtime libraries docker-ce depends on are baked in, because hosts reach only
# the sandbox mirror, never a Debian archive.
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "python3",
    "ca-certificates", "curl", "gnupg", "iptables", "libseccomp2",
    "libdevmapper1.02.1", "libsystemd0", "procps", "iproute2", "kmod", "adduser",
)

# Units that have nothing to do inside a container and only slow boot down.
MASKED_UNITS = (
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-modules-load.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "systemd-remount-fs.service", "getty@tty1.service",
    "console-getty.service", "systemd-firstboot.service", "apt-daily.timer",
    "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
)

SETUP_SCRIPT = r"""set -eu
# Hosts reach only the sandbox mirror: no Debian sources, no stale lists.
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
apt-get clean
# A non-root user with passwordless sudo; keys are injected when a host starts.
id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{user}
chmod 0440 /etc/sudoers.d/{user}
passwd --lock root >/dev/null
# Each host makes its own host keys at first boot.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    > /etc/systemd/system/ssh.service.d/hostkeys.conf
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd
systemctl enable ssh.service >/dev/null 2>&1
systemctl mask {masked} >/dev/null 2>&1
# Each container gets its own machine id at boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
"""

# A cloud server stand-in: Debian's cloud-init, reading a NoCloud seed (/var/lib/cloud/seed/nocloud, copied in
# before the host starts: ``Sandbox.start_hosts(files=...)``) and leaving the container's network alone.
# (apt-get in the new root, not debootstrap --include: debootstrap configures cloud-init's Python packages
# out of order and fails.)
CLOUD_SETUP_SCRIPT = r"""set -eu
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cloud-init >/dev/null
""" + SETUP_SCRIPT + r"""
cat > /etc/cloud/cloud.cfg.d/90-hostsetup-sandbox.cfg <<'EOF'
datasource_list: [NoCloud, None]
network: {{config: disabled}}
# (locales has no en_US.UTF-8 generated here: cloud-init's default locale would fail its locale module)
locale: C.UTF-8
EOF
"""
NOCLOUD_SEED = "/var/lib/cloud/seed/nocloud"


# --- EL rehearsal ------------------------------------------------------------------

EL_FORMAT = 1  # bump when the EL build code changes in a way the recipe does not show
EL_PACKAGES = (*BASE_PACKAGES, "dnf", "dnf-plugins-core", "rpm", "xz-utils")
EL_LIB = "/usr/libexec/el-rehearsal"

# What el-rehearsal-base declares to rpm: the EL package name, the Debian package that really
# provides it here (its upstream version becomes the declared version) and a path proving it.
EL_CAPABILITIES: tuple[tuple[str, str, str], ...] = (
    ("bash", "bash", "/usr/bin/bash"),
    ("coreutils", "coreutils", "/usr/bin/ls"),
    ("glibc", "libc6", "/usr/bin/ldd"),
    ("shadow-utils", "passwd", "/usr/sbin/groupadd"),
    ("util-linux", "util-linux", "/usr/bin/mount"),
    ("systemd", "systemd", "/usr/bin/systemctl"),
    ("systemd-libs", "libsystemd0", ""),
    ("iptables", "iptables", "/usr/sbin/iptables"),
    ("libseccomp", "libseccomp2", ""),
    ("device-mapper-libs", "libdevmapper1.02.1", ""),
    ("tar", "tar", "/usr/bin/tar"),
    ("xz", "xz-utils", "/usr/bin/xz"),
    ("procps-ng", "procps", "/usr/bin/ps"),
    ("iproute", "iproute2", "/usr/sbin/ip"),
    ("kmod", "kmod", "/usr/sbin/modprobe"),
    ("openssh-server", "openssh-server", "/usr/sbin/sshd"),
    ("sudo", "sudo", "/usr/bin/sudo"),
    ("curl", "curl", "/usr/bin/curl"),
    ("ca-certificates", "ca-certificates", ""),
    ("python3", "python3", "/usr/bin/python3"),
    ("gnupg2", "gnupg", "/usr/bin/gpg"),
    ("rpm", "rpm", "/usr/bin/rpm"),
)
DNF_CAPABILITIES = (("dnf", "dnf", "/usr/bin/dnf-3"), ("dnf-plugins-core", "dnf-plugins-core", ""))
# Paths declared as file provides (rpm resolves "Requires: /bin/sh" against them).
EL_FILE_PROVIDES = ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/sbin/groupadd", "/usr/sbin/useradd",
                    "/usr/sbin/usermod", "/usr/bin/systemctl")

ROCKY9_OS_RELEASE = """\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx) - EL rehearsal on a Debian 12 userland"
VARIANT="EL rehearsal (Debian 12 userland, real dnf and rpm)"
VARIANT_ID="el-rehearsal"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

CENTOS7_OS_RELEASE = """\
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core) - EL rehearsal on a Debian 12 userland"
VARIANT="EL rehearsal (Debian 12 userland, real dnf and rpm; yum is dnf)"
VARIANT_ID="el-rehearsal"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
REDHAT_SUPPORT_PRODUCT="centos"
REDHAT_SUPPORT_PRODUCT_VERSION="7"
"""

# Rocky 9's /etc/dnf/dnf.conf, plus an explicit reposdir.
EL9_DNF_CONF = """\
[main]
gpgcheck=1
installonly_limit=3
clean_requirements_on_remove=True
best=True
skip_if_unavailable=False
# EL rehearsal: only /etc/yum.repos.d (dnf's default also reads /etc/yum/repos.d, /etc/distro.repos.d).
reposdir=/etc/yum.repos.d
"""

# CentOS 7's /etc/yum.conf as far as dnf understands it (here yum is Debian's dnf).
EL7_YUM_CONF = """\
[main]
cachedir=/var/cache/yum/$basearch/$releasever
keepcache=0
debuglevel=2
exactarch=1
obsoletes=1
gpgcheck=1
plugins=1
installonly_limit=5
clean_requirements_on_remove=False
best=False
skip_if_unavailable=False
# EL rehearsal: only /etc/yum.repos.d; plugin settings where yum 3 keeps them.
reposdir=/etc/yum.repos.d
pluginconfpath=/etc/yum/pluginconf.d
"""

DNF_SETUP = """\
# As on EL 8+: yum is dnf.
ln -sfn dnf-3 /usr/bin/yum
ln -sfn dnf/dnf.conf /etc/yum.conf
"""

# Debian has no yum 3: yum and yum-config-manager run Debian's dnf with CentOS 7's yum.conf,
# and dnf itself leaves PATH, as on CentOS 7.
YUM_SETUP = f"""\
mv /usr/bin/dnf-3 {EL_LIB}/dnf-3
rm -f /usr/bin/dnf
cat > /etc/yum.conf <<'EOF'
{EL7_YUM_CONF}EOF
install -d /etc/yum/pluginconf.d /etc/yum/vars
cat > /usr/bin/yum <<'EOF'
#!/bin/sh
# EL rehearsal: Debian's dnf standing in for CentOS 7's yum 3.
exec {EL_LIB}/dnf-3 --config /etc/yum.conf "$@"
EOF
cat > /usr/bin/yum-config-manager <<'EOF'
#!/bin/sh
# EL rehearsal: dnf config-manager standing in for yum-utils' yum-config-manager.
exec {EL_LIB}/dnf-3 --config /etc/yum.conf config-manager "$@"
EOF
chmod 0755 /usr/bin/yum /usr/bin/yum-config-manager
"""

RPMDB_SCRIPT = r"""set -eu
# One system rpm database (Debian's rpm defaults to ~/.rpmdb, per user).
install -d /etc/rpm /var/lib/rpm
printf '%%_dbpath /var/lib/rpm\n' > /etc/rpm/macros.el-rehearsal
rpmdb --initdb
"""

EL_SETUP_SCRIPT = r"""set -eu
lib={lib}
install -d $lib/debian
# The EL system's identity (Debian's /etc/os-release links to /usr/lib/os-release).
cat > /usr/lib/os-release <<'EOF'
{os_release}EOF
ln -sfn ../usr/lib/os-release /etc/os-release
echo '{release_line}' > /etc/{release_file}
for link in redhat-release system-release; do
  [ {release_file} = $link ] || ln -sfn {release_file} /etc/$link
done
mv /etc/debian_version $lib/debian/
# dnf: EL's defaults and only the repositories in /etc/yum.repos.d (none until one is written).
install -d /etc/yum.repos.d /etc/pki/rpm-gpg
cat > /etc/dnf/dnf.conf <<'EOF'
{dnf_conf}EOF
# Debian's dnf-plugins-core has two plugins a minimal EL host lacks: "local" (Debian only: it
# copies every installed package into a repository of its own) and versionlock (EL ships it
# apart, python3-dnf-plugin-versionlock or yum-plugin-versionlock; el-fixtures carries it).
plugins=/usr/lib/python3/dist-packages/dnf-plugins
mv $plugins/local.py $plugins/versionlock.py $lib/debian/
rm -f $plugins/__pycache__/local.* $plugins/__pycache__/versionlock.*
rm -f /etc/dnf/plugins/local.conf /etc/dnf/plugins/versionlock.conf /etc/dnf/plugins/versionlock.list
# EL enables only the units its presets name: packages' `systemctl preset` leaves docker off.
printf 'disable *\n' > /usr/lib/systemd/system-preset/99-default-disable.preset
{manager_setup}
# Debian's package tools leave PATH (hostsetup's facts would pick dpkg-query first);
# rpm-build is not on a minimal EL host either.
for tool in /usr/bin/dpkg /usr/bin/dpkg-* /usr/sbin/dpkg-* /usr/bin/apt /usr/bin/apt-* /usr/bin/rpmbuild; do
  mv "$tool" $lib/debian/
done
rm -rf /var/cache/dnf/*
"""


@dataclass(frozen=True)
class ElIdentity:
    """The EL system a rehearsal image answers as."""

    os_release: str
    release_file: str      # /etc/<release_file>; redhat-release and system-release link to it
    release_line: str
    releasever: str        # dnf's $releasever (from system-release(releasever))
    version: str           # the full release, e.g. 9.4
    dist: str              # rpm dist tag, e.g. el9
    manager: str           # dnf or yum
    dnf_conf: str = EL9_DNF_CONF
    capabilities: tuple[tuple[str, str, str], ...] = EL_CAPABILITIES
    file_provides: tuple[str, ...] = EL_FILE_PROVIDES

    @property
    def manager_setup(self) -> str:
        return YUM_SETUP if self.manager == "yum" else DNF_SETUP


ROCKY9 = ElIdentity(ROCKY9_OS_RELEASE, "rocky-release", "Rocky Linux release 9.4 (Blue Onyx)", "9", "9.4",
                    "el9", "dnf", capabilities=(*EL_CAPABILITIES, *DNF_CAPABILITIES))
CENTOS7 = ElIdentity(CENTOS7_OS_RELEASE, "centos-release", "CentOS Linux release 7.9.2009 (Core)", "7",
                     "7.9.2009", "el7", "yum")


@dataclass(frozen=True)
class HostImageRecipe:
    """How to build one host image."""

    flavor: str          # e.g. "debian12"
    codename: str        # Debian suite used by debootstrap
    packages: tuple[str, ...] = BASE_PACKAGES
    setup_script: str = SETUP_SCRIPT
    el: ElIdentity | None = None   # an EL rehearsal image answering as this system

    @property
    def recipe_hash(self) -> str:
        recipe = {**asdict(self), "masked": MASKED_UNITS, "user": SANDBOX_USER}
        if self.el is None:  # keeps the hashes (and tags) of the Debian images
            del recipe["el"]
        else:
            recipe["el_build"] = [EL_FORMAT, RPMDB_SCRIPT, EL_SETUP_SCRIPT, self.el.manager_setup]
        blob = json.dumps(recipe, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.flavor}-{self.recipe_hash}"


RECIPES: dict[str, HostImageRecipe] = {
    "debian12": HostImageRecipe("debian12", "bookworm"),
    "debian13": HostImageRecipe("debian13", "trixie"),
    "debian12-cloud": HostImageRecipe("debian12-cloud", "bookworm", setup_script=CLOUD_SETUP_SCRIPT),
    "rocky9": HostImageRecipe("rocky9", "bookworm", EL_PACKAGES, el=ROCKY9),
    "centos7": HostImageRecipe("centos7", "bookworm", EL_PACKAGES, el=CENTOS7),
}


# --- el-rehearsal-base -----------------------------------------------------------------

def base_rpm(el: ElIdentity, versions: dict[str, str], libraries: list[str]) -> RpmSpec:
    """The package that declares the Debian userland to rpm, honestly named.

    ``versions`` maps Debian package -> upstream version for the capabilities; ``libraries``
    is what rpm's own elfdeps says the image's shared libraries provide.
    """
    missing = sorted({deb for _, deb, _ in el.capabilities} - set(versions))
    if missing:
        raise SandboxError(f"el-rehearsal-base: Debian packages not installed: {', '.join(missing)}")
    provides = [f"{name} = {versions[deb]}" for name, deb, _ in el.capabilities]
    provides += [f"system-release = {el.version}", "system-release(releasever) = " + el.releasever,
                 "rtld(GNU_HASH)", *el.file_provides, *libraries]
    stands_for = "\n".join(f"  {name}: Debian {deb} {versions[deb]}" for name, deb, _ in el.capabilities)
    return RpmSpec(
        name="el-rehearsal-base", version=el.version, release=f"1.{el.dist}", license="MIT",
        summary="EL rehearsal: declares this host's Debian userland to rpm (not an EL package)",
        description=("This host is an EL rehearsal: a Debian bookworm userland answering as "
                     f"{el.release_line}. This package holds no files; it tells rpm what the Debian "
                     "packages installed here provide, so that dnf can resolve dependencies:\n"
                     f"{stands_for}\nplus the shared libraries' sonames (from rpm's elfdeps)."),
        provides=tuple(provides), auto_deps=False)


def _chroot(root: Path, script: str, what: str) -> str:
    proc = subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-8:])
        raise SandboxError(f"{what} failed:\n{tail}")
    return proc.stdout


def _debian_versions(root: Path, packages: list[str]) -> dict[str, str]:
    """Upstream versions of the installed ``packages`` (per dpkg, inside the image)."""
    out = _chroot(root, "dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' "
                  + " ".join(shlex.quote(p) for p in packages) + " || true", "dpkg-query")
    rows = [line.split("\t") for line in out.splitlines()]
    return {r[0].split(":")[0]: upstream_version(r[1]) for r in rows if len(r) == 3 and r[2][1:2] == "i"}


def _check_paths(root: Path, paths: list[str]) -> None:
    script = "; ".join(f"test -e {shlex.quote(p)} || echo {shlex.quote(p)}" for p in paths)
    missing = _chroot(root, script or "true", "checking paths").split()
    if missing:
        raise SandboxError(f"el-rehearsal-base would declare missing paths: {', '.join(missing)}")


def _library_provides(root: Path) -> list[str]:
    """What rpm's elfdeps says the image's shared libraries (per ldconfig) provide."""
    script = ("ldconfig -p | awk '/=>/ {print $NF}' | xargs -r readlink -f | sort -u"
              " | /usr/lib/rpm/elfdeps --provides | sort -u")
    return [line for line in _chroot(root, script, "elfdeps").splitlines() if line.strip()]


def _install_base_rpm(el: ElIdentity, root: Path) -> None:
    """Give the image one system rpm database holding el-rehearsal-base."""
    _chroot(root, RPMDB_SCRIPT, "rpmdb --initdb")
    _check_paths(root, [p for _, _, p in el.capabilities if p] + list(el.file_provides))
    versions = _debian_versions(root, sorted({deb for _, deb, _ in el.capabilities}))
    spec = base_rpm(el, versions, _library_provides(root))
    build = root / "tmp" / "el-rehearsal-base"
    build.mkdir(parents=True)
    (build / "base.spec").write_text(spec_text(spec, {}))
    _chroot(root, "set -e; cd /tmp/el-rehearsal-base; "
            "rpmbuild -bb --quiet --define '_topdir /tmp/el-rehearsal-base' "
            "--define '_buildhost el-rehearsal.invalid' base.spec; "
            "rpm -i --quiet RPMS/noarch/*.rpm 2>&1 | grep -v -e Alien -e 'know what you are doing' || true; "
            "rpm -q el-rehearsal-base", "building el-rehearsal-base")
    shutil.rmtree(build)


def _make_el(recipe: HostImageRecipe, root: Path) -> None:
    """Turn the Debian rootfs into an EL rehearsal host."""
    assert recipe.el is not None
    el = recipe.el
    _install_base_rpm(el, root)
    script = EL_SETUP_SCRIPT.format(lib=EL_LIB, os_release=el.os_release, release_line=el.release_line,
                                    release_file=el.release_file, dnf_conf=el.dnf_conf,
                                    manager_setup=el.manager_setup)
    _chroot(root, script, f"making {recipe.flavor} an EL rehearsal host")


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def _run(cmd: list[str], what: str, timeout: float = 1200) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-8:])
        raise SandboxError(f"{what} failed:\n{tail}")


def build_image(recipe: HostImageRecipe, work_dir: Path, progress: Progress = print) -> str:
    """Build the image with debootstrap and docker import; return its tag."""
    work_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"rootfs-{recipe.flavor}-", dir=work_dir))
    try:
        progress(f"building host image {recipe.tag} with debootstrap ({recipe.codename}); "
                 "this takes about a minute")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
              recipe.codename, str(root), archive_url()], f"debootstrap {recipe.codename}")
        script = recipe.setup_script.format(user=SANDBOX_USER, masked=" ".join(MASKED_UNITS))
        _run(["chroot", str(root), "/bin/sh", "-c", script], f"setting up {recipe.flavor} rootfs")
        if recipe.el is not None:
            _make_el(recipe, root)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE)
        assert tar.stdout is not None
        with tar.stdout:
            imported = subprocess.run(
                ["docker", "import",
                 "--change", 'CMD ["/sbin/init"]',
                 "--change", "ENV container=docker",
                 "--change", f"LABEL hostsetup.recipe={recipe.recipe_hash}",
                 "-", recipe.tag],
                stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        if imported.returncode != 0:
            tar.kill()
        if tar.wait() != 0 or imported.returncode != 0:
            raise SandboxError(f"docker import of {recipe.tag} failed: {imported.stderr.strip()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return recipe.tag


def ensure_image(flavor: str, work_dir: Path, progress: Progress = print) -> str:
    """Return the tag of the host image for ``flavor``, building it when missing."""
    try:
        recipe = RECIPES[flavor]
    except KeyError:
        raise SandboxError(f"unknown host flavor {flavor!r}; choose from "
                           f"{', '.join(sorted(RECIPES))}") from None
    if image_exists(recipe.tag):
        return recipe.tag
    return build_image(recipe, work_dir, progress)
