"""Registries for real (the sandbox's docker-registry containers): a pull through the registry
mirror, a private registry's CA installed in certs.d, `hostsetup login` with wrong and right
credentials and `--logout`, and a fleet of three set up at once with the password nowhere to be
found. On Debian 12 (engine 20.10) and Debian 13 (engine 26)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from hostsetup.sandbox.registries import SandboxRegistries
from tests.e2e.conftest import run_hostsetup, ssh

USER = "hostsetup"
OTHER_KEYS = '{\n  "detachKeys": "ctrl-e,e",\n  "auths": {"other.example.com": {"auth": "eDp5"}}\n}\n'


RUNS: list[str] = []   # every output of every hostsetup run in this module, for the password search


def hostsetup(sandbox: Sandbox, mirror: SandboxMirror, hosts: list[SandboxHost], *args: str,
              env: dict[str, str] | None = None, debug: bool = False) -> tuple[int, str]:
    code, out = run_hostsetup(sandbox, mirror, [h.hostname for h in hosts], *args, env=env, debug=debug)
    RUNS.append(out)
    return code, out


def as_user(sandbox: Sandbox, host: SandboxHost, command: str, user: str = USER) -> tuple[int, str]:
    with ssh(sandbox, host, user) as c:
        result = c.run(command, hide=True, warn=True, timeout=180)
    return result.exited, result.stdout + result.stderr


def as_root(sandbox: Sandbox, host: SandboxHost, command: str) -> str:
    with ssh(sandbox, host, "root") as c:
        return str(c.run(command, hide=True, timeout=120).stdout)


def checks(report: Path) -> list[dict[str, str]]:
    """name -> status of each host's checks in a verify --json report."""
    return [{c["name"]: c["status"] for c in h["checks"]} for h in json.loads(report.read_text())["hosts"]]


def test_a_pull_goes_through_the_registry_mirror(sandbox: Sandbox, mirror: SandboxMirror,
                                                  registries: SandboxRegistries, trio: list[SandboxHost],
                                                  tmp_path: Path) -> None:
    pair = trio[:2]
    for host in pair:  # (the hosts are shared: no daemon.json of an earlier test)
        as_root(sandbox, host, "rm -f /etc/docker/daemon.json && systemctl restart docker")
    for host in pair:  # no mirror: Docker Hub is out of reach, as on a server that cannot reach it
        code, out = as_user(sandbox, host, "docker pull tiny")
        assert code != 0 and "registry-1.docker.io" in out, (host.flavor, out)
    report = tmp_path / "offline.json"  # no mirror: verify --smoke loads the bundled image instead
    code, out = hostsetup(sandbox, mirror, pair, "verify", "--smoke", "--json", str(report))
    assert code == 0, out
    for host_checks in checks(report):
        assert host_checks["test_smoke_container_runs"] == "passed", host_checks
        assert host_checks["test_registry_mirrors_serve_pulls"] == "skipped"
    code, out = hostsetup(sandbox, mirror, pair, "configure", "--registry-mirrors", registries.mirror.url)
    assert code == 0, out
    for host in pair:
        code, out = as_user(sandbox, host, "docker pull tiny && docker run --rm tiny")
        assert code == 0, (host.flavor, out)
        assert mirror.build.tiny_image_output in out
    served = "\n".join(registries.mirror.requests())
    assert "/v2/library/tiny/manifests/latest" in served
    for host in pair:  # each host's own request is in the mirror's log
        assert f"{host.address} " in served and "docker/" in served, (host.address, served[-2000:])
    report = tmp_path / "verify.json"
    code, out = hostsetup(sandbox, mirror, pair, "verify", "--smoke", "--json", str(report))
    assert code == 0, out
    for host_checks in checks(report):
        assert host_checks["test_registry_mirrors_serve_pulls"] == "passed", host_checks
        assert host_checks["test_smoke_container_runs"] == "skipped"  # the pull through the mirror replaced it
    # A "mirror" that does not serve pulls (the private registry: its CA is not trusted yet): verify says so.
    code, out = hostsetup(sandbox, mirror, pair[:1], "configure", "--registry-mirrors",
                          f"https://{registries.private.address}")
    assert code == 0, out
    code, out = hostsetup(sandbox, mirror, pair[:1], "verify", "--smoke")
    assert code == 1 and f"expected the registry mirror https://{registries.private.address}/ to serve" in out, out
    assert "SSL certificate problem" in out, out
    code, out = hostsetup(sandbox, mirror, pair[:1], "configure", "--registry-mirrors", registries.mirror.url)
    assert code == 0, out


def test_private_registry_ca_then_login_then_logout(sandbox: Sandbox, mirror: SandboxMirror,
                                                    registries: SandboxRegistries, trio: list[SandboxHost],
                                                    tmp_path: Path) -> None:
    pair = trio[:2]
    image = registries.private_image
    registry = registries.private.address
    for host in pair:  # the registry's CA is not one the hosts trust
        code, out = as_user(sandbox, host, f"docker pull {image}")
        assert code != 0 and "certificate signed by unknown authority" in out, (host.flavor, out)
        as_user(sandbox, host, f"mkdir -p ~/.docker && printf '%s' '{OTHER_KEYS}' > ~/.docker/config.json")
    code, out = hostsetup(sandbox, mirror, pair, "configure", "--registry-ca", f"{registry}={registries.private_ca}")
    assert code == 0 and "registry-ca" in out, out
    code, out = hostsetup(sandbox, mirror, pair, "configure", "--registry-ca", f"{registry}={registries.private_ca}")
    assert code == 0 and "2 ok" in out, out  # converged: nothing to do
    for host in pair:  # trusted now (no daemon restart): the registry asks for a login
        code, out = as_user(sandbox, host, f"docker pull {image}")
        assert code != 0 and "no basic auth credentials" in out, (host.flavor, out)

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    code, out = hostsetup(sandbox, mirror, pair, "login", registry, "--username", registries.username,
                          "--password-file", str(wrong))
    assert code == 1, out
    assert f"{registry} refused the login of {registries.username}" in out and "401" in out, out
    assert "nothing was written" in out
    for host in pair:
        assert as_user(sandbox, host, "cat ~/.docker/config.json")[1] == OTHER_KEYS  # untouched

    report = tmp_path / "login.json"
    code, out = hostsetup(sandbox, mirror, pair, "login", registry, "--username", registries.username,
                          "--password-file", str(registries.password_file), "--json", str(report))
    assert code == 0 and "2 changed" in out, out
    for host in pair:
        stat = as_user(sandbox, host, "stat -c '%a %U' ~/.docker/config.json")[1].strip()
        assert stat == f"600 {USER}", stat
        saved = json.loads(as_user(sandbox, host, "cat ~/.docker/config.json")[1])
        assert saved["detachKeys"] == "ctrl-e,e" and set(saved["auths"]) == {"other.example.com", registry}
    code, out = hostsetup(sandbox, mirror, pair, "login", registry, "--username", registries.username,
                          "--password-file", str(registries.password_file))
    assert code == 0 and "2 ok" in out, out  # same credentials: no change
    verified = tmp_path / "verify.json"
    code, out = hostsetup(sandbox, mirror, pair, "verify", "--pull", image, "--json", str(verified))
    assert code == 0, out
    assert all(c["test_users_pull_images"] == "passed" for c in checks(verified))

    # The password from the environment, for root this time.
    password = registries.password_file.read_text().strip()
    code, out = hostsetup(sandbox, mirror, pair[:1], "login", registry, "--username", registries.username,
                          "--users", "root", env={"HOSTSETUP_LOGIN_PASSWORD": password})
    assert code == 0 and "changed" in out, out
    assert registry in as_root(sandbox, pair[0], "cat /root/.docker/config.json")

    # A home the login must not be led out of: alice's config.json is a link to root's (which now holds a
    # login); bob's home is spelled with a trailing slash in passwd.
    as_root(sandbox, pair[0], "useradd -m alice; install -d -o alice -g alice /home/alice/.docker; "
            "ln -s /root/.docker/config.json /home/alice/.docker/config.json; useradd -m -d /home/bob/ bob; "
            f"install -d -o bob -g bob /home/bob/.docker; printf '%s' '{OTHER_KEYS}' > /home/bob/.docker/config.json; "
            "chown bob: /home/bob/.docker/config.json")
    code, out = hostsetup(sandbox, mirror, pair[:1], "login", registry, "--username", registries.username,
                          "--users", "alice", "--password-file", str(registries.password_file))
    assert code == 1 and "/home/alice/.docker/config.json cannot be read" in out, out
    assert as_root(sandbox, pair[0], "readlink /home/alice/.docker/config.json").strip() == "/root/.docker/config.json"
    code, out = hostsetup(sandbox, mirror, pair[:1], "login", registry, "--username", registries.username,
                          "--users", "bob", "--password-file", str(registries.password_file))
    assert code == 0 and "changed" in out, out
    saved = json.loads(as_root(sandbox, pair[0], "cat /home/bob/.docker/config.json"))
    assert set(saved["auths"]) == {"other.example.com", registry} and saved["detachKeys"] == "ctrl-e,e"

    code, out = hostsetup(sandbox, mirror, pair, "login", registry, "--logout")
    assert code == 0 and "2 changed" in out, out
    for host in pair:
        saved = json.loads(as_user(sandbox, host, "cat ~/.docker/config.json")[1])
        assert set(saved["auths"]) == {"other.example.com"} and saved["detachKeys"] == "ctrl-e,e"
    code, out = hostsetup(sandbox, mirror, pair, "verify", "--pull", image)
    assert code == 1 and "no basic auth credentials" in out, out


def test_a_fleet_of_three_gets_mirror_ca_and_login_and_the_password_shows_nowhere(
        sandbox: Sandbox, mirror: SandboxMirror, registries: SandboxRegistries, trio: list[SandboxHost],
        tmp_path: Path) -> None:
    registry = registries.private.address
    password = registries.password_file.read_text().strip()
    for host in trio:  # from scratch: no mirror, no CA, no login
        as_root(sandbox, host, "rm -rf /etc/docker/certs.d /etc/docker/daemon.json /home/hostsetup/.docker "
                "/root/.docker && systemctl restart docker")
    settings = tmp_path / "hostsetup.yaml"
    settings.write_text(json.dumps({"daemon": {"settings": {"registry-mirrors": [registries.mirror.url]},
                                               "registry_cas": {registry: str(registries.private_ca)}}}))
    # install (the hosts have Docker: only the CA and daemon.json change), then its own checks
    code, out = hostsetup(sandbox, mirror, trio, "-f", str(settings), "install", "--users", USER)
    assert code == 0 and "3 changed" in out and "verifying 3 changed host(s)" in out, out

    # Every process on the hosts is sampled while the fleet logs in (with -d debug logging on).
    stop = threading.Event()
    seen: list[str] = []

    def sample(host: SandboxHost) -> None:
        with ssh(sandbox, host, "root") as c:
            while not stop.is_set():
                seen.append(c.run("ps -eww -o args=", hide=True).stdout)
    samplers = [threading.Thread(target=sample, args=(h,)) for h in trio]
    for thread in samplers:
        thread.start()
    report = tmp_path / "login.json"
    try:
        code, out = hostsetup(sandbox, mirror, trio, "login", registry, "--username", registries.username,
                              "--json", str(report), env={"HOSTSETUP_LOGIN_PASSWORD": password}, debug=True)
    finally:
        stop.set()
        for thread in samplers:
            thread.join()
    assert code == 0 and "3 changed" in out, out

    verified = tmp_path / "verify.json"
    code, out = hostsetup(sandbox, mirror, trio, "-f", str(settings), "verify", "--smoke",
                          "--pull", registries.private_image, "--json", str(verified))
    assert code == 0, out
    for host_checks in checks(verified):
        for check in ("test_registry_cas", "test_registry_mirrors_serve_pulls", "test_users_pull_images"):
            assert host_checks[check] == "passed", host_checks

    # The password: in no output (stdout, stderr, -d debug log) of any run of this module, no report,
    # no process list sampled on the hosts, no journal, no backup or temporary file on a host.
    auth = base64.b64encode(f"{registries.username}:{password}".encode()).decode()
    assert password not in "\n".join(RUNS) and auth not in "\n".join(RUNS)
    for file in (report, verified, *tmp_path.glob("*.json")):
        assert password not in file.read_text()
    assert seen and password not in "\n".join(seen)
    for host in trio:
        leftovers = as_root(sandbox, host, f"journalctl --no-pager -o cat | grep -c -F -- {password!r} || true; "
                            f"grep -rlF -- {password!r} /var/backups /tmp /var/tmp /etc 2>/dev/null || true")
        assert leftovers.split() == ["0"], (host.hostname, leftovers)
