"""``hostsetup sandbox up|down|status``: real SSH hosts on the local Docker engine."""

from __future__ import annotations

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.run.status import EXIT_BAD_INPUT
from hostsetup.sandbox.hosts import Sandbox, SandboxHost
from hostsetup.sandbox.images import RECIPES, SANDBOX_USER
from hostsetup.sandbox.registries import HUB, PRIVATE, PRIVATE_IMAGE, PRIVATE_PORT, PRIVATE_USER, REGISTRY_MIRROR


def engine_missing(name: str) -> str:
    """One line for a machine where no Docker engine runs: so no sandbox runs either."""
    return (f"sandbox {name!r} is not running: no Docker engine runs on this machine "
            "(`hostsetup sandbox up` starts one, and the hosts)")


def describe(sandbox: Sandbox, host: SandboxHost) -> str:
    """How to reach one host: the -H string, the key and an ssh line."""
    return (
        f"{host.hostname} ({host.flavor})\n"
        f"  hostsetup -H {host.target()} -i {sandbox.key_path} ...\n"
        f"  hostsetup -S {sandbox.ssh_config_path} -H {host.hostname} ...\n"
        f"  ssh -i {sandbox.key_path} -o UserKnownHostsFile={sandbox.known_hosts_path} "
        f"-p {host.port} {SANDBOX_USER}@127.0.0.1"
    )


def describe_registries(box: Sandbox) -> str:
    """The registries, as the hosts reach them, and the lines that use them."""
    ca, password = box.private_tls.ca_cert, box.registry_password_file
    return "\n".join((
        "registries (docker-registry 2.8, on the sandbox network only):",
        f"  https://{HUB}  Docker Hub stand-in: library/tiny, library/hello-world (not reachable as Docker Hub)",
        f"  https://{REGISTRY_MIRROR}  pull-through mirror of it (sandbox CA, trusted by the hosts)",
        f"  {PRIVATE}:{PRIVATE_PORT}  private: htpasswd user {PRIVATE_USER}, password in {password}; "
        f"{PRIVATE_IMAGE}; its own CA {ca} (NOT trusted by the hosts)",
        f"  hostsetup ... configure --registry-mirrors https://{REGISTRY_MIRROR} "
        f"--registry-ca {PRIVATE}:{PRIVATE_PORT}={ca}",
        f"  hostsetup ... login {PRIVATE}:{PRIVATE_PORT} --username {PRIVATE_USER} --password-file {password}",
    ))


@task(
    positional=["action"],
    help={
        "action": "up, down or status",
        "hosts": "how many hosts `up` starts (default 1)",
        "flavor": f"comma-separated host flavors, taken in turn ({', '.join(RECIPES)})",
        "name": "sandbox name, to keep several apart (default: default)",
    },
)
def sandbox(c: Context, action: str, hosts: int = 1, flavor: str = "debian12",
            name: str = "default") -> None:
    """Start (up), list (status) or remove (down) sandbox SSH hosts on the local Docker engine."""
    if action not in ("up", "down", "status"):
        raise Exit(f"hostsetup: unknown sandbox action {action!r}; use up, down or status", EXIT_BAD_INPUT)
    box = Sandbox(name)
    if action != "up" and not box.engine_running():
        print(engine_missing(name))
        return
    if action == "up":
        mirror = box.start_mirror()  # first: the hosts use its name server
        box.start_registries()
        started = box.up(hosts, tuple(f.strip() for f in flavor.split(",") if f.strip()))
        for host in started:
            print(describe(box, host))
        print(f"docker-ce mirror for the hosts: every preset's name over HTTPS (sandbox CA {box.ca_path}) "
              f"and {mirror.url} (plain http); signing key {mirror.build.key_fingerprint}\n"
              f"  hostsetup ... install --key-fingerprint {mirror.build.key_fingerprint} [--mirror aliyun|tuna|...]\n"
              f"  hostsetup ... install --mirror {mirror.url} --insecure-mirror "
              f"--key-fingerprint {mirror.build.key_fingerprint}")
        print(describe_registries(box))
    elif action == "status":
        found = box.hosts()
        if not found:
            print(f"sandbox {name!r} has no running hosts")
        for host in found:
            print(describe(box, host))
        if box.registries_running():
            print(describe_registries(box))
    else:
        removed = box.down()
        print(f"removed {', '.join(removed)}" if removed else f"sandbox {name!r} was not running")
