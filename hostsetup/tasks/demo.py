"""``hostsetup demo``: the whole job against a sandbox host, no server needed."""

from __future__ import annotations

from invoke import Context, Exit, task

from hostsetup.sandbox.hosts import Sandbox
from hostsetup.sandbox.images import RECIPES, SANDBOX_USER
from hostsetup.settings import install_settings
from hostsetup.targets import Target
from hostsetup.tasks.install import run_install
from hostsetup.tasks.sandbox import describe

DEMO_SANDBOX = "demo"


@task(help={
    "down": "remove the demo host and mirror instead",
    "flavor": f"host system ({', '.join(RECIPES)})",
    "name": f"sandbox name (default {DEMO_SANDBOX})",
})
def demo(c: Context, down: bool = False, flavor: str = "debian12", name: str = DEMO_SANDBOX) -> None:
    """Start a sandbox host and local docker-ce mirror, install Docker on it, show the result."""
    box = Sandbox(name)
    if down:
        removed = box.down()
        print(f"removed {', '.join(removed)}" if removed else "the demo was not running")
        return
    host = next((h for h in box.hosts() if h.flavor == flavor), None)
    if host is None:
        print(f"starting a {flavor} sandbox host (first run builds images: a few minutes)")
        host = box.start_hosts([flavor])[0]
    mirror = box.start_mirror()
    settings = install_settings({
        "mirror": mirror.url, "insecure_mirror": True,
        "key_fingerprint": mirror.build.key_fingerprint, "users": [SANDBOX_USER],
    })
    c.config.set_runtime_ssh_path(str(box.ssh_config_path))
    c.config.load_ssh_config()
    print(f"installing Docker Engine on {host.hostname} from the sandbox mirror {mirror.url}")
    reports = run_install(c, settings, dry_run=False, json_path=None, targets=[Target(host.hostname, host.hostname)])
    print("\nLook around:\n" + describe(box, host))
    print(f"  on the host: curl -fsS {mirror.url}/{mirror.build.tiny_image} | docker load && "
          f"docker run --rm {mirror.build.tiny_image_ref}")
    print("Remove it all with: hostsetup demo --down" + (f" --name {name}" if name != DEMO_SANDBOX else ""))
    if any(r.status == "failed" for r in reports):
        raise Exit(code=1)
