"""The lifecycle on a real host: pin an older engine with a hold, upgrade it under a running container
(live-restore keeps it), refuse what was not asked (moving a hold, a downgrade), uninstall (data kept,
then purged) and install again. ``lifecycle`` also runs on the EL rehearsal host (test_el_rehearsal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hostsetup.host.versions import upstream_version
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from tests.e2e.conftest import only_host, ssh, steps_with

Cli = Callable[..., tuple[int, dict[str, Any], str]]


def root(sandbox: Sandbox, host: SandboxHost, command: str) -> str:
    with ssh(sandbox, host, "root") as c:
        return str(c.run(command, hide=True, timeout=300, warn=True).stdout)


def container(sandbox: Sandbox, host: SandboxHost) -> str:
    """The ``keep`` container's pid and running state, as the engine sees it."""
    return root(sandbox, host, "docker inspect keep --format '{{.State.Pid}} {{.State.Running}}'").strip()


def lifecycle(sandbox: Sandbox, mirror: SandboxMirror, cli: Cli, host: SandboxHost, newest: str, older: str) -> None:
    new, old = upstream_version(newest), upstream_version(older)
    code, report, out = cli(host, "--users", "hostsetup", "--version", old, "--hold")
    assert code == 0, out
    code, _, out = cli(host, "--set", "live-restore=true", task="configure")
    assert code == 0, out
    root(sandbox, host, f"curl -fsS {mirror.url}/{mirror.build.tiny_image} | docker load && "
                        f"docker run -d --name keep {mirror.build.tiny_image_ref} /bin/busybox sleep 3600")
    before = container(sandbox, host)
    assert before.endswith(" true"), before

    # A held version moves only when asked (--hold); nothing changes until then.
    code, report, out = cli(host, "--users", "hostsetup", "--version", new)
    assert code == 1 and only_host(report)["status"] == "failed", out
    assert f"held at {old}" in out and f"add --hold to move the hold to {new}" in out
    code, report, out = cli(host, "--users", "hostsetup", "--version", new, "--hold", "--dry-run")
    assert code == 0, out
    assert f"change docker-ce {old} -> {new}, docker-ce-cli {old} -> {new}" in out
    assert "1 running container(s) (keep): live-restore is on, they keep running" in out

    code, report, out = cli(host, "--users", "hostsetup", "--version", new, "--hold", verify=True)
    assert code == 0, out
    assert "packages" in steps_with(report, "changed") and f"{host.hostname}  passed" in out
    assert new in root(sandbox, host, "docker version --format '{{.Server.Version}}'")
    assert container(sandbox, host) == before  # the same process: it ran through the engine's restart

    code, report, out = cli(host, "--users", "hostsetup", "--version", old, "--hold")
    assert code == 1 and f"{old} is older: downgrading is refused unless you pass --allow-downgrade" in out

    # Uninstall: --purge-data needs --yes; its dry run lists what it would delete, with sizes.
    code, _, out = cli(host, "--purge-data", task="uninstall")
    assert code == 2 and "add --yes" in out and "Traceback" not in out
    code, report, out = cli(host, "--purge-data", "--dry-run", task="uninstall")
    assert code == 0 and only_host(report)["status"] == "planned", out
    assert "delete /var/lib/docker (" in out and "MiB)" in out
    assert "keep" in root(sandbox, host, "docker ps --format '{{.Names}}'")  # the dry run changed nothing

    code, report, out = cli(host, task="uninstall")
    assert code == 0, out
    assert steps_with(report, "changed") == ["service", "packages", "repository"]
    assert "stop 1 running container(s) (keep)" in out
    assert f"{host.hostname}  passed" in out  # the "nothing left" checks, no container left running among them
    assert root(sandbox, host, "ls /var/lib/docker/image /etc/docker/daemon.json").strip()  # data kept
    code, report, out = cli(host, task="uninstall")
    assert code == 0 and only_host(report)["status"] == "ok" and only_host(report)["ssh_sessions"] == 1, out

    code, report, out = cli(host, "--purge-data", "--yes", task="uninstall")
    assert code == 0 and steps_with(report, "changed") == ["data"], out
    assert root(sandbox, host, "ls -A /var/lib/docker /var/lib/containerd /etc/docker 2>/dev/null").split() == \
        ["/var/lib/docker:"]  # the host's own volume: emptied, not removable

    code, report, out = cli(host, "--users", "hostsetup", verify=True)
    assert code == 0 and only_host(report)["status"] == "changed" and f"{host.hostname}  passed" in out, out


def test_debian12_upgrade_under_live_restore_uninstall_and_reinstall(sandbox, mirror, cli, fresh_hosts) -> None:
    newest, older = mirror.build.versions["bookworm"][:2]
    lifecycle(sandbox, mirror, cli, fresh_hosts("debian12")[0], newest, older)
