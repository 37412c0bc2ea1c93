"""Registries on hosts: names, CA certificates, logins in config.json (pure parts), the login plan,
and the sandbox registries' storage."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from hostsetup import secrets
from hostsetup.daemon.apply import mismatches
from hostsetup.daemon.plan import plan_registry_cas, registry_ca_files
from hostsetup.daemon.settings import DaemonSettingsError, daemon_settings
from hostsetup.facts import Account, HostFacts, parse_facts
from hostsetup.host.files import write_as_user
from hostsetup.login import LoginSettings, check_login_script, plan_login
from hostsetup.operations import CheckLogin, WriteFile, WriteUserFile
from hostsetup.plan import PlanError
from hostsetup.registries import (
    HUB_AUTH_KEY,
    Credentials,
    RegistryError,
    auth_key,
    ca_path,
    check_ca,
    helper_for,
    image_reference,
    logged_in_as,
    registry_name,
    with_login,
    without_login,
)
from hostsetup.run.fleet import describe_plan
from hostsetup.sandbox.registries import ImageParts, parts_from_archive, registry_config, write_repository
from hostsetup.smoke import smoke_image
from hostsetup.tasks.configure import parse_registry_cas

DATA = Path(__file__).parent / "data" / "facts"
REGISTRY = "registry.example.com:5000"


@pytest.mark.parametrize(("given", "name"), [
    ("registry.example.com:5000", "registry.example.com:5000"),
    ("https://Registry.Example.com/", "registry.example.com"),
    ("10.0.0.5:443", "10.0.0.5:443"), ("[::1]:5000", "[::1]:5000"), ("[fe80::1]", "[fe80::1]"),
    ("docker.io", "docker.io"), ("localhost:5000", "localhost:5000"),
])
def test_registry_names(given: str, name: str) -> None:
    assert registry_name(given) == name


@pytest.mark.parametrize("given", [
    "", " ", "a/b", "registry.example.com/team", "u:p@registry.example.com", "x:0", "x:65536", "x:", "x:port",
    "[::1", "[::1]x", "[zz]:5", "a..b", "-a.example.com", "a_b.example.com", "host;rm -rf", "$(id)", "a:1:2",
    "https://", "ftp://x", "x" * 64 + ".com",
])
def test_malformed_registry_names_are_refused_in_one_line(given: str) -> None:
    with pytest.raises(RegistryError) as err:
        registry_name(given, "--registry-ca")
    assert "\n" not in str(err.value) and "--registry-ca" in str(err.value)


def test_hub_logins_use_the_clients_own_key() -> None:
    assert auth_key("docker.io") == HUB_AUTH_KEY == auth_key("index.docker.io")
    assert auth_key(REGISTRY) == REGISTRY


@pytest.mark.parametrize("image", ["tiny", "library/tiny:latest", "registry.example.com:5000/team/tiny:1",
                                   "[::1]:5000/a/b", "a/b@sha256:" + "0" * 64])
def test_image_references(image: str) -> None:
    assert image_reference(image) == image


@pytest.mark.parametrize("image", ["", "Tiny", "a//b", "a b", "a;id", "-x", "a:b:c:d/e", "x:" + "t" * 129])
def test_malformed_image_references(image: str) -> None:
    with pytest.raises(RegistryError):
        image_reference(image)


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    where = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA"],
                   cwd=where, check=True, capture_output=True)
    return (where / "ca.crt").read_text()


def test_a_ca_must_be_pem_certificates_only(ca_pem: str) -> None:
    assert check_ca(ca_pem, "ca.crt") == ca_pem
    assert check_ca(ca_pem.rstrip("\n"), "ca.crt") == ca_pem
    with pytest.raises(RegistryError, match="no PEM certificate"):
        check_ca("hello\n", "ca.crt")
    with pytest.raises(RegistryError, match="private key"):
        check_ca(ca_pem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ca.crt")
    broken = ca_pem.replace(ca_pem.splitlines()[2], "A" * 64)
    with pytest.raises(RegistryError, match="does not parse"):
        check_ca(broken, "ca.crt")


def test_registry_cas_setting_and_flag(ca_pem: str, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(ca_pem)
    settings = daemon_settings({"registry_cas": {"https://Registry.Example.com:5000/": str(tmp_path / "ca.crt")}})
    assert settings.registry_cas == {REGISTRY: ca_pem} and settings.configured and not settings.owns_daemon_json
    assert registry_ca_files(settings) == (f"/etc/docker/certs.d/{REGISTRY}/ca.crt",)
    with pytest.raises(DaemonSettingsError, match="does not exist"):
        daemon_settings({"registry_cas": {REGISTRY: str(tmp_path / "missing.crt")}})
    with pytest.raises(DaemonSettingsError, match="must map"):
        daemon_settings({"registry_cas": ["x"]})
    assert parse_registry_cas([f"{REGISTRY}=ca.crt"]) == {REGISTRY: "ca.crt"}
    for bad in ("ca.crt", "=ca.crt", f"{REGISTRY}=", "a/b=ca.crt"):
        with pytest.raises(RegistryError if "/" in bad.split("=")[0] else Exception):
            parse_registry_cas([bad])


def test_insecure_registries_only_when_asked_and_then_with_a_warning() -> None:
    with pytest.raises(DaemonSettingsError, match="--insecure-registry"):
        daemon_settings({"settings": {"insecure-registries": [REGISTRY]}})
    settings = daemon_settings({"settings": {"insecure-registries": [REGISTRY]}, "allow_insecure_registries": True})
    from hostsetup.daemon.plan import plan_daemon

    step = plan_daemon(parse_facts((DATA / "debian12-converged.txt").read_text()), settings)
    assert any("not verified" in w and REGISTRY in w for w in step.warnings)


def test_registry_ca_step_writes_only_what_differs(ca_pem: str, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(ca_pem)
    settings = daemon_settings({"registry_cas": {REGISTRY: str(tmp_path / "ca.crt")}})
    facts = parse_facts((DATA / "debian12-converged.txt").read_text())
    step = plan_registry_cas(facts, settings)
    (write,) = step.operations
    assert isinstance(write, WriteFile)
    assert write.path == ca_path(REGISTRY) and write.mode == "0644" and "no restart" in step.summary
    installed = dataclasses.replace(facts, files={**facts.files, ca_path(REGISTRY): ca_pem})
    assert not plan_registry_cas(installed, settings).changes


def test_an_empty_mirror_list_is_what_newer_engines_leave_out() -> None:
    assert mismatches({"RegistryConfig": {"Mirrors": None}}, {"RegistryConfig.Mirrors": []}) == []
    assert mismatches({"RegistryConfig": {"Mirrors": None}}, {"RegistryConfig.Mirrors": ["https://m/"]})


# --- logins ------------------------------------------------------------------------------------------

CREDS = Credentials("deploy", "s3cret pass:word")


def test_login_entries_keep_every_other_key() -> None:
    config = {"detachKeys": "ctrl-e,e", "auths": {"other": {"auth": "eDp5"}, REGISTRY: {"auth": "b2xkOnB3",
                                                                                          "email": "a@b"}}}
    new = with_login(config, REGISTRY, CREDS)
    assert new["detachKeys"] == "ctrl-e,e" and new["auths"]["other"] == {"auth": "eDp5"}
    assert new["auths"][REGISTRY] == {"auth": CREDS.auth, "email": "a@b"}
    assert base64.b64decode(CREDS.auth).decode() == "deploy:s3cret pass:word"
    assert logged_in_as(new, REGISTRY) == "deploy" and logged_in_as(config, REGISTRY) == "old"
    assert with_login(new, REGISTRY, CREDS) == new
    gone = without_login(new, REGISTRY)
    assert set(gone["auths"]) == {"other"} and gone["detachKeys"] == "ctrl-e,e"
    assert without_login(gone, REGISTRY) == gone
    assert helper_for({"credsStore": "pass"}, REGISTRY).startswith("docker-credential-pass")
    assert "credHelpers" in helper_for({"credHelpers": {REGISTRY: "ecr-login"}}, REGISTRY)
    assert helper_for({"credHelpers": {"elsewhere": "x"}}, REGISTRY) == ""


def facts_with(configs: dict[str, str | None]) -> HostFacts:
    facts = parse_facts((DATA / "debian12-converged.txt").read_text())
    homes = {"hostsetup": Account("hostsetup", 1000, 1000, "/home/hostsetup"), "root": Account("root", 0, 0, "/root")}
    files = {f"{homes[u].home}/.docker/config.json": text for u, text in configs.items()}
    return dataclasses.replace(facts, user="hostsetup", homes=homes, files={**facts.files, **files})


def test_login_plan_checks_first_then_writes_each_user_that_changes() -> None:
    facts = facts_with({"root": json.dumps({"auths": {REGISTRY: {"auth": CREDS.auth}}})})
    plan = plan_login(facts, LoginSettings(REGISTRY, CREDS, ("hostsetup", "root")))
    (step,) = plan.steps
    check, write = step.operations
    assert isinstance(check, CheckLogin) and check.username == "deploy"
    assert isinstance(write, WriteUserFile) and write.user == "hostsetup"
    assert write.path == "/home/hostsetup/.docker/config.json"
    assert json.loads(write.content) == {"auths": {REGISTRY: {"auth": CREDS.auth}}}
    assert "root" not in step.summary and "hostsetup" in step.summary
    # converged: the same credentials plan nothing, not even the check
    done = facts_with({u: write.content for u in ("hostsetup", "root")})
    assert not plan_login(done, LoginSettings(REGISTRY, CREDS, ("hostsetup", "root"))).steps[0].changes
    # the default user is the one hostsetup logs in as
    (only,) = plan_login(facts_with({}), LoginSettings(REGISTRY, CREDS)).steps[0].operations[1:]
    assert isinstance(only, WriteUserFile) and only.user == "hostsetup"


def test_logout_writes_no_check_and_nothing_when_there_is_no_login() -> None:
    facts = facts_with({"hostsetup": json.dumps({"auths": {REGISTRY: {"auth": CREDS.auth}, "x": {}}})})
    (step,) = plan_login(facts, LoginSettings(REGISTRY, None)).steps
    (write,) = step.operations
    assert isinstance(write, WriteUserFile) and json.loads(write.content) == {"auths": {"x": {}}}
    assert not plan_login(facts_with({}), LoginSettings(REGISTRY, None)).steps[0].changes


@pytest.mark.parametrize(("configs", "users", "words"), [
    ({}, ("nobody-here",), "no user nobody-here"),
    ({"hostsetup": "{not json"}, (), "not valid JSON"),
    ({"hostsetup": "[]"}, (), "not a JSON object"),
    ({"hostsetup": None}, (), "cannot be read"),
    ({"hostsetup": json.dumps({"credsStore": "pass"})}, (), "docker-credential-pass"),
])
def test_login_refusals_name_the_user_and_file(configs: dict[str, str | None], users: tuple[str, ...],
                                               words: str) -> None:
    with pytest.raises(PlanError, match=words):
        plan_login(facts_with(configs), LoginSettings(REGISTRY, CREDS, users))


def test_no_engine_no_login() -> None:
    facts = dataclasses.replace(facts_with({}), dockerd_version="")
    with pytest.raises(PlanError, match="not installed"):
        plan_login(facts, LoginSettings(REGISTRY, CREDS))


def test_the_password_is_in_no_plan_text_and_no_command_line() -> None:
    secrets.register(CREDS.password, CREDS.auth)
    plan = plan_login(facts_with({}), LoginSettings(REGISTRY, CREDS))
    text = "\n".join(describe_plan(plan))
    assert CREDS.password not in text and CREDS.auth not in text and "--password-stdin" in text
    assert "s3cret" not in repr(plan)
    check, write = plan.steps[0].operations
    assert isinstance(check, CheckLogin) and isinstance(write, WriteUserFile)
    script = check_login_script(check).text
    assert CREDS.password not in script  # base64 on the script's own stdin, fed by printf (a shell builtin)
    assert "printf %s " + base64.b64encode(CREDS.password.encode()).decode() + " | base64 -d" in script
    assert "--password-stdin" in script and "DOCKER_CONFIG=" in script
    user_script = write_as_user(write.user, write.path, write.content).text
    assert CREDS.auth not in user_script and "runuser -u hostsetup -- sh -c" in user_script
    subprocess.run(["sh", "-n", "-c", script], check=True)
    subprocess.run(["sh", "-n", "-c", user_script], check=True)


def test_user_file_script_writes_atomically_as_the_user(tmp_path: Path) -> None:
    import getpass
    import os

    if os.geteuid() != 0:
        pytest.skip("runuser needs root")
    target = tmp_path / "home" / ".docker" / "config.json"
    op = WriteUserFile(str(target), '{"auths": {}}\n', getpass.getuser(), "test")
    subprocess.run(["sh", "-c", write_as_user(op.user, op.path, op.content).text], check=True)
    assert target.read_text() == '{"auths": {}}\n' and oct(target.stat().st_mode & 0o777) == "0o600"
    assert oct(target.parent.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in target.parent.iterdir()] == ["config.json"]  # no temporary file left


# --- the sandbox registries' storage -------------------------------------------------------------------

def test_registry_storage_layout_is_what_distribution_reads(tmp_path: Path) -> None:
    image = parts_from_archive(smoke_image())
    assert isinstance(image, ImageParts) and len(image.layers) == 1
    digest = write_repository(tmp_path, "library/hello-world:latest", image)
    v2 = tmp_path / "docker" / "registry" / "v2"
    tag = v2 / "repositories" / "library" / "hello-world" / "_manifests" / "tags" / "latest"
    assert (tag / "current" / "link").read_text() == digest
    hexa = digest.split(":")[1]
    manifest = (v2 / "blobs" / "sha256" / hexa[:2] / hexa / "data").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    parsed = json.loads(manifest)
    for blob in (parsed["config"], *parsed["layers"]):
        h = blob["digest"].split(":")[1]
        data = (v2 / "blobs" / "sha256" / h[:2] / h / "data").read_bytes()
        assert len(data) == blob["size"] and hashlib.sha256(data).hexdigest() == h
        assert (v2 / "repositories" / "library" / "hello-world" / "_layers" / "sha256" / h / "link").exists()
    assert write_repository(tmp_path / "again", "library/hello-world:latest", image) == digest  # deterministic


def test_registry_config_is_json_yaml_with_tls_proxy_and_auth() -> None:
    config = json.loads(registry_config("/srv/tls", "/srv/registry/storage", 5000, "https://hub", "/srv/htpasswd"))
    assert config["http"]["addr"] == ":5000" and config["proxy"] == {"remoteurl": "https://hub"}
    assert config["auth"]["htpasswd"]["path"] == "/srv/htpasswd"
    assert "proxy" not in json.loads(registry_config("/t", "/s", 443))


# --- where the password comes from ------------------------------------------------------------------

class _Login:
    def __init__(self, password: str = "", password_file: str = "") -> None:
        self.password, self.password_file = password, password_file


class _Config:
    def __init__(self, **login: str) -> None:
        self.login = _Login(**login)


class _Context:
    def __init__(self, **login: str) -> None:
        self.config = _Config(**login)


def test_password_from_file_setting_variable_or_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass
    import importlib
    import sys

    from hostsetup.errors import HostsetupError

    task = importlib.import_module("hostsetup.tasks.login")  # (hostsetup.tasks.login is also the task's name)

    (tmp_path / "pw").write_text("from file\nsecond line ignored\n")
    assert task.read_password(_Context(), str(tmp_path / "pw"), "u", REGISTRY) == "from file"
    assert task.read_password(_Context(password="from env"), None, "u", REGISTRY) == "from env"
    assert task.read_password(_Context(password_file=str(tmp_path / "pw")), None, "u",
                              REGISTRY) == "from file"
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(HostsetupError, match="HOSTSETUP_LOGIN_PASSWORD"):
        task.read_password(_Context(), None, "u", REGISTRY)
    asked: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)

    def getpass_typed(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    monkeypatch.setattr(getpass, "getpass", getpass_typed)
    assert task.read_password(_Context(), None, "u", REGISTRY) == "typed"
    assert asked == [f"password for u at {REGISTRY}: "]


def test_install_puts_the_registry_ca_before_daemon_json(ca_pem: str, tmp_path: Path) -> None:
    from hostsetup.plan import plan_install
    from hostsetup.settings import install_settings

    (tmp_path / "ca.crt").write_text(ca_pem)
    daemon = daemon_settings({"registry_cas": {REGISTRY: str(tmp_path / "ca.crt")},
                              "settings": {"registry-mirrors": ["https://mirror.example.com"]}})
    plan = plan_install(parse_facts((DATA / "debian12-bare.txt").read_text()), install_settings({}), daemon)
    names = [s.name for s in plan.steps]
    assert names.index("registry-ca") == names.index("daemon") - 1


# --- what the review found ---------------------------------------------------------------------------

def test_a_newline_never_passes_as_part_of_a_name() -> None:
    for bad in ("x\n/tmp/evil", "ubuntu:latest\n@sha256:" + "0" * 64, "a\nb:1", "tiny:1\nid"):
        with pytest.raises(RegistryError):
            image_reference(bad)
    assert image_reference("tiny\n") == "tiny"  # surrounding space is dropped, never passed on
    for bad in ("reg.example.com\nx", "reg:²", "reg:١٢"):
        with pytest.raises(RegistryError):
            registry_name(bad)


def test_credentials_as_docker_login_reads_them() -> None:
    assert Credentials.checked("u", "pw123\n").password == "pw123"
    assert Credentials.checked("u", "pw123\r\n").password == "pw123"
    assert Credentials.checked("u", "p w\n\n").password == "p w\n"
    for user in ("a:b", "a\x01", "a\x7f", ""):
        with pytest.raises(RegistryError):
            Credentials.checked(user, "pw")
    with pytest.raises(RegistryError, match="empty"):
        Credentials.checked("u", "\n")
    assert "pw123" not in repr(Credentials.checked("u", "pw123"))


def test_logout_removes_every_form_docker_would_use_and_refuses_a_helper() -> None:
    assert logged_in_as({"auths": {f"https://{REGISTRY}": {"auth": CREDS.auth}}}, REGISTRY) == "deploy"
    config = {"auths": {f"https://{REGISTRY}": {"auth": CREDS.auth}, f"http://{REGISTRY}/": {"auth": "eDp5"},
                        "other": {}}}
    assert without_login(config, REGISTRY) == {"auths": {"other": {}}}
    hub = {"auths": {"https://index.docker.io/v1/": {"auth": CREDS.auth}, "docker.io": {}}}
    assert without_login(hub, auth_key("docker.io")) == {"auths": {}}
    facts = facts_with({"hostsetup": json.dumps({"credsStore": "pass", "auths": {}})})
    with pytest.raises(PlanError, match="docker logout"):
        plan_login(facts, LoginSettings(REGISTRY, None))


def test_docker_hub_is_logged_in_to_by_docker_logins_default() -> None:
    check = plan_login(facts_with({}), LoginSettings("docker.io", CREDS)).steps[0].operations[0]
    assert isinstance(check, CheckLogin) and check.registry == ""
    script = check_login_script(check).text
    assert "--password-stdin  2>&1" in script or "--password-stdin 2>&1" in script


def test_registry_ca_file_names_may_hold_an_equals_sign() -> None:
    assert parse_registry_cas([f"{REGISTRY}=/tmp/ca=x.crt"]) == {REGISTRY: "/tmp/ca=x.crt"}


class _Result:
    def __init__(self, stdout: str, stderr: str = "", rc: int = 0) -> None:
        self.stdout, self.stderr, self.rc = stdout, stderr, rc


class _Host:
    """Answers curl like a registry that wants an anonymous Bearer token (as Nexus or Artifactory do)."""

    def __init__(self, token_answers: bool = True) -> None:
        self.commands: list[str] = []
        self.token_answers = token_answers

    def run(self, command: str) -> _Result:
        self.commands.append(command)
        if "token?" in command:
            return _Result(json.dumps({"token": "abc"}) if self.token_answers else "{}")
        if "Authorization: Bearer abc" in command:
            return _Result("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n")
        return _Result('HTTP/2 401\r\nwww-authenticate: Bearer realm="https://m.example/token",'
                       'service="m.example",scope="repository:library/hello-world:pull"\r\n\r\n')


def test_a_mirror_that_hands_out_anonymous_tokens_serves() -> None:
    from hostsetup.checks.test_docker_host import mirror_serves

    host = _Host()
    assert mirror_serves(host, "https://m.example/", "https://m.example/v2/library/hello-world/manifests/latest") \
        == "200"
    assert "service=m.example&scope=repository%3Alibrary%2Fhello-world%3Apull" in host.commands[1]
    assert "--cacert" in host.commands[0] and "/etc/docker/certs.d/m.example/*.crt" in host.commands[0]
    refused = _Host(token_answers=False)
    assert mirror_serves(refused, "https://m.example/", "https://m.example/v2/x/manifests/latest") == "HTTP 401"
