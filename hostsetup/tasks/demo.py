"""``hostsetup demo``: the whole job against a sandbox host, no server needed.

Install Docker Engine (from Docker's repository name by default, answered inside the
sandbox by its mirror), write daemon.json with a registry mirror and log rotation,
run the shipped checks (the mirror must serve a pull), then as the host's user pull the
tiny image through the registry mirror and run it.
"""

from __future__ import annotations

import time

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.daemon.plan import check_settings
from hostsetup.daemon.settings import DaemonSettings, daemon_settings
from hostsetup.mirrors import PRESETS, resolve_mirror
from hostsetup.run.converge import run_install
from hostsetup.run.status import EXIT_BAD_INPUT, EXIT_FAILED
from hostsetup.run.verify import expected_state, run_verify
from hostsetup.sandbox.hosts import MIRROR_ALIAS, Sandbox, SandboxHost, SandboxMirror
from hostsetup.sandbox.images import RECIPES, SANDBOX_USER
from hostsetup.sandbox.registries import REGISTRY_MIRROR
from hostsetup.settings import InstallSettings, install_settings
from hostsetup.targets import Target
from hostsetup.tasks.sandbox import describe, engine_missing

DEMO_SANDBOX = "demo"
# What the demo's daemon.json names as the Docker Hub mirror: the sandbox's pull-through cache
# of its Docker Hub stand-in (hostsetup.sandbox.registries).
DEMO_REGISTRY_MIRROR = f"https://{REGISTRY_MIRROR}"
TINY = "tiny"   # library/tiny on the sandbox's Docker Hub stand-in


def demo_settings(mirror: str, sandbox_mirror: SandboxMirror) -> InstallSettings:
    """Install settings for the demo: the preset (or URL) asked for, the sandbox's signing key."""
    return install_settings({"mirror": mirror, "insecure_mirror": mirror.startswith("http://"),
                             "key_fingerprint": sandbox_mirror.build.key_fingerprint, "users": [SANDBOX_USER]})


def demo_daemon() -> DaemonSettings:
    settings = daemon_settings({"profiles": ["log-rotation", "registry-mirrors"],
                                "vars": {"registry_mirrors": [DEMO_REGISTRY_MIRROR]}})
    check_settings(settings)
    return settings


def run_tiny_image(box: Sandbox, host: SandboxHost, sandbox_mirror: SandboxMirror) -> tuple[bool, str]:
    """As the sandbox user, in a new SSH session: ``docker pull tiny`` (through the registry mirror:
    the sandbox cannot reach Docker Hub) and ``docker run``."""
    build = sandbox_mirror.build
    command = f"docker pull -q {TINY} >/dev/null && docker run --rm {TINY}"
    with box.connection(host) as conn:
        result = conn.run(command, hide=True, warn=True, timeout=120, in_stream=False)
    out = result.stdout.strip()
    return result.ok and out == build.tiny_image_output, out or result.stderr.strip()


@task(help={
    "down": "remove the demo host and mirror instead",
    "flavor": f"host system ({', '.join(RECIPES)})",
    "name": f"sandbox name (default {DEMO_SANDBOX})",
    "mirror": f"repository to install from: a preset ({', '.join(PRESETS)}; default official) "
              f"or a URL such as http://{MIRROR_ALIAS}",
})
def demo(c: Context, down: bool = False, flavor: str = "debian12", name: str = DEMO_SANDBOX,
         mirror: str = "official") -> None:
    """Start a sandbox host and mirror; install Docker, configure daemon.json, verify, run a container."""
    if flavor not in RECIPES:
        raise Exit(f"hostsetup: unknown flavor {flavor!r}; choose one of {', '.join(RECIPES)}", EXIT_BAD_INPUT)
    resolve_mirror(mirror, insecure=True)  # bad input is refused before anything starts
    box = Sandbox(name)
    if down:
        if not box.engine_running():
            print(engine_missing(name))
            return
        removed = box.down()
        print(f"removed {', '.join(removed)}" if removed else "the demo was not running")
        return
    started = time.monotonic()
    box.prepare()  # a Docker engine first: on a fresh machine none runs yet
    sandbox_mirror = box.start_mirror()  # first: the hosts use its name server
    box.start_registries()
    host = next((h for h in box.hosts() if h.flavor == flavor), None)
    if host is None:
        print(f"starting a {flavor} sandbox host (the first run builds its image: about a minute)")
        host = box.start_hosts([flavor])[0]
    settings = demo_settings(mirror, sandbox_mirror)
    daemon = demo_daemon()
    c.config.set_runtime_ssh_path(str(box.ssh_config_path))
    c.config.load_ssh_config()
    where = (f"{settings.mirror_url} ({settings.mirror_name}; inside the sandbox its mirror answers for that name)"
             if settings.mirror_name != "custom" else f"the URL mirror {settings.mirror_url}")
    print(f"1. install Docker Engine on {host.hostname} from {where}, and daemon.json "
          f"(log rotation, registry mirror {DEMO_REGISTRY_MIRROR})")
    target = Target(host.hostname, host.hostname)
    reports = run_install(c.config, settings, dry_run=False, json_path=None, targets=[target], daemon=daemon)
    failed = any(r.status == "failed" for r in reports)
    if not failed:
        print("\n2. verify: the shipped testinfra checks")
        verified = run_verify(c.config, [target], {target.name: expected_state(settings, daemon, smoke=True)})
        failed = any(v.status == "failed" for v in verified)
    if not failed:
        print(f"\n3. as {SANDBOX_USER} on {host.hostname}: docker pull {TINY} (through the registry mirror) "
              f"and docker run {TINY}")
        ok, output = run_tiny_image(box, host, sandbox_mirror)
        print(f"   {'ok' if ok else 'FAILED'}: {output}")
        failed = not ok
    print(f"\n{'demo FAILED' if failed else 'demo done'} in {time.monotonic() - started:.1f} s. "
          "Look around:\n" + describe(box, host))
    print(f"  on the host: docker info | grep -A1 'Registry Mirrors'; cat /etc/docker/daemon.json; "
          f"docker run --rm {TINY}")
    # The sandbox's packages are signed with its own key: hostsetup refuses it unless told its fingerprint.
    print(f"  again, a no-op in one SSH session: HOSTSETUP_INSTALL_KEY_FINGERPRINT={settings.key_fingerprint} "
          f"hostsetup -S {box.ssh_config_path} -H {host.hostname} install")
    print("Remove it all with: hostsetup demo --down" + (f" --name {name}" if name != DEMO_SANDBOX else ""))
    if failed:
        raise Exit(code=EXIT_FAILED)
