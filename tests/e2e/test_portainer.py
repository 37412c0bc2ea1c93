"""``hostsetup portainer`` on a Debian host: pulled through the registry mirror, idempotent, upgraded
by recreating (the volume kept), removed (the volume kept unless --purge-data), the agent, and
verify's checks. The image is the sandbox's stand-in (not Portainer: see hostsetup/sandbox/registries.py)."""

from __future__ import annotations

import json
from pathlib import Path

from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from hostsetup.sandbox.registries import SandboxRegistries
from tests.e2e.conftest import run_hostsetup, ssh

PASSWORD = "an-admin-password-for-portainer-42"


def on_host(sandbox: Sandbox, host: SandboxHost, command: str) -> str:
    with ssh(sandbox, host, "root") as c:
        return str(c.run(command, hide=True, warn=True, timeout=120).stdout).strip()


def test_portainer_deploy_rerun_upgrade_remove_and_agent(sandbox: Sandbox, mirror: SandboxMirror,
                                                         registries: SandboxRegistries, trio: list[SandboxHost],
                                                         tmp_path: Path) -> None:
    host = trio[0]

    def run(*args: str) -> tuple[int, str]:
        return run_hostsetup(sandbox, mirror, [host.hostname], *args)

    def checks(*flags: str) -> dict[str, str]:
        report = tmp_path / "verify.json"
        run("verify", *flags, "--json", str(report))
        return {c["name"]: c["status"] for c in json.loads(report.read_text())["hosts"][0]["checks"]}

    code, out = run("configure", "--registry-mirrors", registries.mirror.url)
    assert code == 0, out
    password_file = tmp_path / "admin"
    password_file.write_text(PASSWORD + "\n")
    code, out = run("portainer", "--dry-run", "--admin-password-file", str(password_file))
    assert code == 0 and "docker run -d --name portainer --restart=always -p 0.0.0.0:9443:9443" in out, out
    assert "-v portainer_data:/data" in out and "listens on every address" in out  # the warning
    code, out = run("portainer", "--admin-password-file", str(password_file))
    assert code == 0 and "changed" in out, out
    assert PASSWORD not in out
    assert "/v2/portainer/portainer-ce/manifests/2.21.4" in "\n".join(registries.mirror.requests())
    assert on_host(sandbox, host, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:9443/") == "200"
    assert on_host(sandbox, host, "docker inspect -f '{{.HostConfig.RestartPolicy.Name}} {{.Config.Image}}' "
                                  "portainer") == "always portainer/portainer-ce:2.21.4"
    args = on_host(sandbox, host, "cat /var/lib/docker/volumes/portainer_data/_data/args")
    assert args == "--admin-password-file /run/secrets/portainer-admin-password"
    assert on_host(sandbox, host, "stat -c '%a %U' /var/lib/hostsetup/portainer/admin-password") == "600 root"
    data_id = on_host(sandbox, host, "sha256sum /var/lib/docker/volumes/portainer_data/_data/standin.crt")
    container = on_host(sandbox, host, "docker inspect -f '{{.Id}}' portainer")

    code, out = run("portainer", "--admin-password-file", str(password_file))
    assert code == 0 and "1 host: 1 ok" in out, out  # nothing changed: not recreated
    assert on_host(sandbox, host, "docker inspect -f '{{.Id}}' portainer") == container
    assert checks("--portainer")["test_portainer_runs_and_answers"] == "passed"

    code, out = run("portainer", "--version", "2.21.5", "--admin-password-file", str(password_file))
    assert code == 0 and "recreate portainer: portainer/portainer-ce:2.21.4 -> portainer/portainer-ce:2.21.5" in out
    assert on_host(sandbox, host, "docker inspect -f '{{.Config.Image}}' portainer") == "portainer/portainer-ce:2.21.5"
    assert on_host(sandbox, host, "docker inspect -f '{{.Id}}' portainer") != container
    assert on_host(sandbox, host, "sha256sum /var/lib/docker/volumes/portainer_data/_data/standin.crt") == data_id
    assert on_host(sandbox, host, "docker ps -a --format '{{.Names}}' | grep -c hostsetup-previous") == "0"

    code, out = run("portainer", "--remove")
    assert code == 0 and "the volume portainer_data is kept" in out, out
    assert on_host(sandbox, host, "docker ps -a --format '{{.Names}}' | grep -c '^portainer$'") == "0"
    assert on_host(sandbox, host, "docker volume ls -q") == "portainer_data"
    assert checks("--portainer")["test_portainer_runs_and_answers"] == "failed"
    code, out = run("portainer", "--remove", "--purge-data")
    assert code == 0 and "remove the volume portainer_data" in out, out
    assert on_host(sandbox, host, "docker volume ls -q") == ""

    code, out = run("portainer", "--agent")
    assert code == 0 and "changed" in out, out
    assert on_host(sandbox, host, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:9001/") == "200"
    assert checks("--portainer-agent")["test_portainer_runs_and_answers"] == "passed"
    code, out = run("portainer", "--agent", "--remove")
    assert code == 0 and on_host(sandbox, host, "docker ps -aq") == "", out
