"""Sandbox host images: Debian with systemd as PID 1, sshd, sudo and python3.

Each image is built with ``debootstrap`` from the machine's own Debian archive
and ``docker import``-ed under a tag that carries a hash of its recipe, so an
image is rebuilt only when its recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from hostsetup.sandbox.debarchive import archive_url
from hostsetup.sandbox.engine import Progress, SandboxError, docker

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


@dataclass(frozen=True)
class HostImageRecipe:
    """How to build one host image."""

    flavor: str          # e.g. "debian12"
    codename: str        # Debian suite used by debootstrap
    packages: tuple[str, ...] = BASE_PACKAGES
    setup_script: str = SETUP_SCRIPT

    @property
    def recipe_hash(self) -> str:
        blob = json.dumps({**asdict(self), "masked": MASKED_UNITS, "user": SANDBOX_USER},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.flavor}-{self.recipe_hash}"


RECIPES: dict[str, HostImageRecipe] = {
    "debian12": HostImageRecipe("debian12", "bookworm"),
    "debian13": HostImageRecipe("debian13", "trixie"),
}


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
