"""The shipped checks. Each failure says what was expected and what was found."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from hostsetup.daemon.apply import mismatches
from hostsetup.daemon.plan import expectations
from hostsetup.distros import APT, Platform, install_packages
from hostsetup.host.command import Raw, command, join, words
from hostsetup.host.paths import DAEMON_JSON
from hostsetup.host.versions import upstream_version
from hostsetup.openpgp import key_file_problem
from hostsetup.plan import key_fingerprints, repo_file_content
from hostsetup.registries import CERTS_DIR, ca_path
from hostsetup.settings import InstallSettings, settings_from_dict
from hostsetup.smoke import SMOKE_ARCHES, SMOKE_OUTPUT, SMOKE_PULL_IMAGE, SMOKE_PULL_REPOSITORY, SMOKE_REF, smoke_image


def settings(expected: dict[str, Any]) -> InstallSettings:
    return settings_from_dict(expected["install"])


def docker_json(host: Any, command: str) -> Any:
    return json.loads(host.check_output(f"timeout 20 {command} --format '{{{{json .}}}}'"))


def require_running_daemon(host: Any) -> None:
    """Checks that need the daemon skip when it is down: the service check names that cause."""
    if not host.service("docker").is_running:
        pytest.skip("docker is not running (reported by test_service_running_and_enabled)")


def daemon_file(host: Any) -> dict[str, Any]:
    file = host.file(DAEMON_JSON)
    return dict(json.loads(file.content_string)) if file.exists else {}


def test_engine_packages_installed(host: Any, expected: dict[str, Any]) -> None:
    wanted = settings(expected)
    names = install_packages(wanted.plugins)
    missing = [name for name in names if not host.package(name).is_installed]
    assert not missing, f"expected {', '.join(names)} installed; missing: {', '.join(missing)}"
    if wanted.version:
        for name in ("docker-ce", "docker-ce-cli"):
            found = host.package(name).version
            assert wanted.version in (found, upstream_version(found)) or \
                upstream_version(found).startswith(wanted.version + "."), \
                f"expected {name} at version {wanted.version}, found {found}"


def test_repository_file(host: Any, expected: dict[str, Any], platform: Platform) -> None:
    arch = host.check_output("dpkg --print-architecture") if platform.family is APT else ""
    want = repo_file_content(platform, arch, settings(expected))
    found = host.file(platform.family.repo_file)
    assert found.exists, f"expected {platform.family.repo_file}, found no such file"
    assert found.content_string == want, (
        f"expected {platform.family.repo_file} to be hostsetup's rendering for {settings(expected).mirror_url}, "
        f"found:\n{found.content_string}")


def test_repository_key_fingerprint(host: Any, expected: dict[str, Any], platform: Platform) -> None:
    path = platform.family.key_file
    wanted = key_fingerprints(platform, settings(expected))
    key = host.file(path)
    assert key.exists, f"expected the repository key at {path}, found no such file"
    problem = key_file_problem(key.content, wanted)
    assert problem is None, f"expected only key {wanted[0]} in {path}, found that {problem}"


@pytest.mark.parametrize("unit", ["containerd", "docker"])
def test_service_running_and_enabled(host: Any, unit: str) -> None:
    service = host.service(unit)
    active = host.run(command("systemctl is-active @UNIT@", UNIT=unit).text).stdout.strip()
    assert service.is_running, f"expected {unit} running, found {active}"
    enabled = host.run(command("systemctl is-enabled @UNIT@", UNIT=unit).text).stdout.strip()
    assert service.is_enabled, f"expected {unit} enabled, found {enabled}"


def test_socket_belongs_to_docker_group(host: Any) -> None:
    sock = host.file("/var/run/docker.sock")
    assert sock.is_socket, "expected the socket /var/run/docker.sock, found none"
    assert sock.group == "docker", f"expected /var/run/docker.sock owned by group docker, found group {sock.group}"


def test_users_in_docker_group(host: Any, expected: dict[str, Any]) -> None:
    for user in settings(expected).users:
        groups = host.user(user).groups
        assert "docker" in groups, f"expected {user} in group docker, found groups {', '.join(groups)}"


def test_daemon_json(host: Any, expected: dict[str, Any]) -> None:
    daemon = expected.get("daemon")
    if not daemon:
        pytest.skip("no daemon.json settings configured")
    found = daemon_file(host)
    want = daemon["config"]
    if daemon.get("replace"):
        assert found == want, f"expected {DAEMON_JSON} to be exactly {want}, found {found}"
    wrong = {k: found.get(k, "<missing>") for k, v in want.items() if found.get(k) != v}
    assert not wrong, f"expected {DAEMON_JSON} to set {({k: want[k] for k in wrong})}, found {wrong}"


def test_registry_cas(host: Any, expected: dict[str, Any]) -> None:
    cas = (expected.get("daemon") or {}).get("registry_cas") or {}
    if not cas:
        pytest.skip("no registry CA configured")
    wrong = []
    for name, pem in sorted(cas.items()):
        file = host.file(ca_path(name))
        if not file.exists:
            wrong.append(f"{ca_path(name)} missing")
        elif file.content_string != pem:
            wrong.append(f"{ca_path(name)} holds another certificate")
    assert not wrong, f"expected the configured registry CAs installed; found {'; '.join(wrong)}"


def test_docker_info_shows_settings(host: Any, expected: dict[str, Any]) -> None:
    require_running_daemon(host)
    desired = (expected.get("daemon") or {}).get("config", {})
    on_disk = daemon_file(host) if desired else {}
    # Keys whose file value is already wrong are test_daemon_json's finding; here: is the file live?
    want = expectations({k: v for k, v in desired.items() if on_disk.get(k) == v})
    info = docker_json(host, "docker info")
    assert info.get("ServerVersion"), f"expected docker info from a running daemon, found {info.get('ServerErrors')}"
    wrong = mismatches(info, want)
    assert not wrong, f"expected docker info to show the configured settings; found {'; '.join(wrong)}"


def test_users_run_docker_without_sudo(host: Any, expected: dict[str, Any]) -> None:
    require_running_daemon(host)
    users = [u for u in settings(expected).users if "docker" in host.user(u).groups]
    if not users:
        pytest.skip("no configured user is in the docker group (reported by test_users_in_docker_group)")
    for user in users:
        # A new login session, so the group database is read afresh.
        result = host.run(command("runuser -l @USER@ -c \"timeout 20 docker version --format '{{.Server.Version}}'\"",
                                  USER=user).text)
        assert result.rc == 0, (f"expected {user} to run `docker version` without sudo in a new login session, "
                                f"found exit {result.rc}: {result.stderr.strip() or result.stdout.strip()}")


MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json",
                  "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json")


def first_line(result: Any) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[0] if lines else f"exit {result.rc}"


def last_line(result: Any) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit {result.rc}"


def configured_mirrors(host: Any) -> list[str]:
    mirrors = (docker_json(host, "docker info").get("RegistryConfig") or {}).get("Mirrors") or []
    return [str(m) for m in mirrors]


def _bearer_challenge(headers: str) -> dict[str, str]:
    """``realm``, ``service``, ``scope`` of a ``WWW-Authenticate: Bearer ...`` header ({} when none)."""
    for line in headers.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "www-authenticate" and value.strip().lower().startswith("bearer "):
            return dict(re.findall(r'(\w+)="([^"]*)"', value))
    return {}


def mirror_serves(host: Any, mirror: str, url: str) -> str:
    """``"200"`` when the mirror serves ``url`` as dockerd would fetch it: trusting the system's CAs plus
    the mirror's own in /etc/docker/certs.d, and with an anonymous token when it asks for one (Bearer);
    else what it answered ("HTTP 404", curl's error line)."""
    certs = f"{CERTS_DIR}/{urlsplit(mirror).netloc}"

    def fetch(target: str, *headers: str, body: bool = False) -> Any:
        extra = join((words("-H", h) for h in headers), " ")
        output = "" if body else "-D - -o /dev/null"
        return host.run(command(
            "b=$(mktemp); cat /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt "
            '@CERTS@/*.crt > "$b" 2>/dev/null; curl -sS @OUTPUT@ --max-time 30 --cacert "$b" '
            '@EXTRA@ @TARGET@; rc=$?; rm -f "$b"; exit $rc',
            CERTS=certs, OUTPUT=Raw(output), EXTRA=extra, TARGET=target).text)

    def status(answer: Any) -> str:
        codes = re.findall(r"^HTTP/\S+ (\d{3})", answer.stdout, re.MULTILINE)
        return codes[-1] if codes else ""

    answer = fetch(url, "Accept: " + ", ".join(MANIFEST_TYPES))
    code = status(answer)
    challenge = _bearer_challenge(answer.stdout) if code == "401" else {}
    if challenge.get("realm"):
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in challenge.items() if k in ("service", "scope"))
        token = fetch(f"{challenge['realm']}?{query}", body=True)
        try:
            data = json.loads(token.stdout)
            value = data.get("token") or data.get("access_token") or ""
        except (ValueError, AttributeError):
            value = ""
        if value:
            answer = fetch(url, "Accept: " + ", ".join(MANIFEST_TYPES), f"Authorization: Bearer {value}")
            code = status(answer)
    return code if code == "200" else (f"HTTP {code}" if code else first_line(answer))


def test_registry_mirrors_serve_pulls(host: Any, expected: dict[str, Any]) -> None:
    """With --smoke and a registry mirror configured: each mirror serves the smoke image's manifest
    itself (dockerd would quietly fall back to Docker Hub), and a pull through them runs."""
    if not expected.get("smoke"):
        pytest.skip("--smoke not asked for")
    require_running_daemon(host)
    mirrors = configured_mirrors(host)
    if not mirrors:
        pytest.skip("no registry mirror configured (the smoke check loads the bundled image)")
    for mirror in mirrors:
        code = mirror_serves(host, mirror, f"{mirror.rstrip('/')}/v2/{SMOKE_PULL_REPOSITORY}/manifests/latest")
        assert code == "200", f"expected the registry mirror {mirror} to serve {SMOKE_PULL_IMAGE}, found {code}"
    pull = host.run(command("timeout 120 docker pull @IMAGE@", IMAGE=SMOKE_PULL_IMAGE).text)
    assert pull.rc == 0, f"expected docker pull {SMOKE_PULL_IMAGE} through {', '.join(mirrors)} to work, " \
        f"found: {last_line(pull)}"
    run = host.run(command("timeout 60 docker run --rm --network none @IMAGE@", IMAGE=SMOKE_PULL_IMAGE).text)
    assert run.rc == 0, f"expected the pulled {SMOKE_PULL_IMAGE} to run, found exit {run.rc}: {run.stderr.strip()}"


def test_users_pull_images(host: Any, expected: dict[str, Any]) -> None:
    """verify --pull IMAGE: each configured user (else the SSH user) pulls it in a new login session,
    with that user's own registry login."""
    images = expected.get("pull") or []
    if not images:
        pytest.skip("no --pull image given")
    require_running_daemon(host)
    users = list(settings(expected).users) or [getattr(host, "login_user", None) or host.user().name]
    failed = []
    for user in users:
        for image in images:
            pull = command("timeout 120 docker pull -q @IMAGE@", IMAGE=image).text
            result = host.run(command("runuser -l @USER@ -c @PULL@", USER=user, PULL=pull).text)
            if result.rc != 0:
                failed.append(f"{user}: {image}: {last_line(result)}")
    assert not failed, f"expected each user to pull the images with their own login, found {'; '.join(failed)}"


def test_portainer_runs_and_answers(host: Any, expected: dict[str, Any]) -> None:
    wanted = expected.get("portainer")
    if not wanted:
        pytest.skip("--portainer not asked for")
    require_running_daemon(host)
    found = host.run(command("docker inspect --type container --format '{{json .}}' @NAME@", NAME=wanted["name"]).text)
    assert found.rc == 0, f"expected the container {wanted['name']}, found none"
    info = json.loads(found.stdout)
    policy = (info.get("HostConfig") or {}).get("RestartPolicy", {}).get("Name")
    assert info["State"]["Running"] and policy == "always", (
        f"expected {wanted['name']} running with --restart=always, found {info['State']['Status']}, restart {policy}")
    # Where it is published (portainer --bind), as docker run -p put it.
    bindings = ((info.get("HostConfig") or {}).get("PortBindings") or {}).get(f"{wanted['port']}/tcp") or [{}]
    address = bindings[0].get("HostIp") or "0.0.0.0"
    address = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    url = f"https://{f'[{address}]' if ':' in address else address}:{wanted['port']}/"
    answer = host.run(command("curl -sk -o /dev/null -w '%{http_code}' --max-time 10 @URL@", URL=url).text)
    assert answer.stdout.strip() not in ("", "000"), f"expected {url} to answer, found {first_line(answer)}"


def test_smoke_container_runs(host: Any, expected: dict[str, Any]) -> None:
    if not expected.get("smoke"):
        pytest.skip("--smoke not asked for")
    require_running_daemon(host)
    if configured_mirrors(host):
        pytest.skip("a registry mirror is configured: test_registry_mirrors_serve_pulls pulls and runs the image")
    arch = host.system_info.arch
    if arch not in SMOKE_ARCHES:
        pytest.skip(f"the bundled smoke image is x86-64 only; this host is {arch}")
    payload = base64.b64encode(smoke_image()).decode()
    load = host.run(f"echo {payload} | base64 -d | timeout 60 docker load")
    assert load.rc == 0, f"expected docker load of the smoke image to work, found: {load.stderr.strip()}"
    run = host.run(command("timeout 60 docker run --rm --network none @IMAGE@", IMAGE=SMOKE_REF).text)
    host.run(command("docker rmi @IMAGE@", IMAGE=SMOKE_REF).text)
    assert run.stdout.strip() == SMOKE_OUTPUT, (
        f"expected the smoke container to print {SMOKE_OUTPUT!r}, found {run.stdout.strip() or run.stderr.strip()!r}")
