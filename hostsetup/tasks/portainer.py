"""``hostsetup -H HOSTS portainer``: Portainer CE (or its agent) on each host, the same way every time."""

from __future__ import annotations

import ipaddress
import re
from functools import partial

from invoke.context import Context
from invoke.tasks import task

from hostsetup import secrets
from hostsetup.errors import HostsetupError
from hostsetup.facts import Wanted
from hostsetup.inputs.files import prompt_secret, read_secret
from hostsetup.portainer import (
    DATA_VOLUME,
    DEFAULT_VERSION,
    LEGACY_IMAGE,
    PASSWORD_FILE,
    PortainerSettings,
    plan_portainer,
)
from hostsetup.registries import image_reference
from hostsetup.run.converge import run_converge
from hostsetup.run.fleet import Planner
from hostsetup.run.settings import target_hosts
from hostsetup.run.status import exit_code

VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,2}(-[a-z0-9.]+)?$|^(latest|lts|sts)$")


def admin_password(path: str | None, prompt: bool) -> str | None:
    if path:
        password = read_secret(path, "admin password file")
    elif prompt:
        password = prompt_secret("Portainer admin password: ",
                                 "--prompt-for-admin-password needs a terminal; give --admin-password-file instead")
    else:
        return None
    if len(password) < 12:
        raise HostsetupError("the Portainer admin password must have at least 12 characters (Portainer's own rule)")
    secrets.register(password)
    return password


@task(help={
    "version": f"the Portainer version to run (default {DEFAULT_VERSION})",
    "image": f"another image name (default portainer/portainer-ce; the legacy {LEGACY_IMAGE} is Portainer 1.x, "
             "end of life since 2022)",
    "bind": "the address the ports are published on (default 0.0.0.0: every address, with a warning)",
    "edge": "also publish 8000 (the tunnel for edge agents)",
    "http": "also publish 9000 (legacy plain HTTP)",
    "admin-password-file": "set the initial admin password from this file (first start only; never shown)",
    "prompt-for-admin-password": "ask for the initial admin password on the terminal",
    "agent": "run portainer/agent (port 9001) instead, for a fleet managed from one Portainer",
    "remove": "remove the container (the volume stays unless --purge-data)",
    "purge-data": f"with --remove: also remove the volume {DATA_VOLUME} (Portainer's own data)",
    "dry-run": "print every command; change nothing",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the run to this file",
})
def portainer(c: Context, version: str = DEFAULT_VERSION, image: str = "", bind: str = "0.0.0.0", edge: bool = False,
              http: bool = False, admin_password_file: str | None = None, prompt_for_admin_password: bool = False,
              agent: bool = False, remove: bool = False, purge_data: bool = False, dry_run: bool = False,
              json: str | None = None, html: str | None = None) -> None:
    """Run Portainer CE (or its agent) from a pinned image, pulled through the host's registry mirror."""
    if not VERSION.fullmatch(version):
        raise HostsetupError(f"--version {version!r} is not a Portainer version (2.21.4, lts)")
    if image:
        image = image_reference(image, "--image")
        if ":" in image.rsplit("/", 1)[-1] or "@" in image:
            raise HostsetupError("--image takes a name without a tag: the tag is --version")
    try:  # docker run -p takes an address (no name, no IPv6 zone)
        if "%" in bind:
            raise ValueError(bind)
        bind = str(ipaddress.ip_address(bind.strip().strip("[]")))
    except ValueError:
        raise HostsetupError(f"--bind {bind!r} is not an IP address of the host (10.0.0.5, 0.0.0.0, ::1)") from None
    if purge_data and not remove:
        raise HostsetupError("--purge-data only goes with --remove")
    if remove and (admin_password_file or prompt_for_admin_password or edge or http):
        raise HostsetupError("--remove takes no deployment options (--edge, --http, an admin password)")
    if agent and (edge or http or admin_password_file or prompt_for_admin_password or purge_data):
        raise HostsetupError("--edge, --http, the admin password and --purge-data are Portainer's own options, "
                             "not the agent's")
    settings = PortainerSettings(agent, version, image, bind, edge, http,
                                 None if remove else admin_password(admin_password_file, prompt_for_admin_password),
                                 remove, purge_data)
    targets = target_hosts(c.config)
    planners: dict[str, Planner] = {t.name: partial(plan_portainer, settings=settings) for t in targets}
    wanted: dict[str, tuple[str, ...] | Wanted] = {
        t.name: Wanted(files=(PASSWORD_FILE,) if not agent else (),
                       containers=(settings.name, f"{settings.name}.hostsetup-previous", DATA_VOLUME)) for t in targets}
    exit_code(run_converge(c.config, planners, wanted, dry_run, json, targets, html, "portainer"))
