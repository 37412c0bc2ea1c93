"""``hostsetup cloud-init``: the cloud-config it writes, and the first-boot program run for real against a
local HTTP server (a stand-in artifact whose ``hostsetup`` only reports how it was called)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hostsetup.artifact import ArtifactError, check_arch, check_python, platform_tags, requirements
from hostsetup.cloudinit import (
    USER_DATA_LIMIT,
    ArtifactRef,
    CloudInitError,
    check_artifact_url,
    check_sha256,
    cloud_config,
    firstboot_program,
    host_settings,
)
from hostsetup.settings import install_settings, settings_as_config

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
SHA = "a" * 64


def parse(text: str) -> dict:
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def test_the_cloud_config_writes_the_settings_and_runs_the_first_boot_program() -> None:
    settings = host_settings({"mirror": "tuna", "users": "ops", "version": ""}, {"settings": {"log-level": "warn"}},
                             {"registry.example.com:5000": "PEM"})
    text = cloud_config(ArtifactRef("https://files.example.com/hs.tar.gz", SHA, "3.11"), settings,
                        {"registry.example.com:5000": "-----BEGIN CERTIFICATE-----\nx\n"})
    data = parse(text)
    files = {f["path"]: f for f in data["write_files"]}
    written = yaml.safe_load(files["/etc/hostsetup/hostsetup.yaml"]["content"])
    assert written == {"install": {"mirror": "tuna", "users": "ops"},
                       "daemon": {"settings": {"log-level": "warn"},
                                  "registry_cas": {"registry.example.com:5000":
                                                   "/etc/hostsetup/registry-cas/registry.example.com_5000.crt"}}}
    assert files["/etc/hostsetup/hostsetup.yaml"]["permissions"] == "0600"
    assert files["/etc/hostsetup/registry-cas/registry.example.com_5000.crt"]["content"].startswith("-----BEGIN")
    program = files["/usr/local/sbin/hostsetup-firstboot"]["content"]
    assert f'SHA256 = "{SHA}"' in program and 'URL = "https://files.example.com/hs.tar.gz"' in program
    compile(program, "hostsetup-firstboot", "exec")
    assert data["runcmd"] == [["/usr/local/sbin/hostsetup-firstboot"]]
    assert "ca_certs" not in data


def test_trusted_cas_go_to_cloud_inits_ca_certs_and_the_size_limit_is_enforced() -> None:
    ref = ArtifactRef("http://files/hs.tar.gz", SHA, "3.11")
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert parse(cloud_config(ref, {"install": {}}, {}, [pem]))["ca_certs"] == {"trusted": [pem]}
    with pytest.raises(CloudInitError, match="over the 16384 bytes"):
        cloud_config(ref, {"install": {}}, {}, [pem + "x" * USER_DATA_LIMIT])


@pytest.mark.parametrize("raw", [
    {}, {"mirror": "aliyun", "version": "25.0", "hold": True, "users": "a,b"},
    {"mirror": "http://mirror.internal/docker", "insecure_mirror": True, "key_fingerprint": "9DC8 5822 9FC7 DD38 "
     "854A  E2D8 8D81 803C 0EBF CD88", "plugins": False, "lock_timeout": 30, "allow_downgrade": True},
])
def test_the_install_section_reads_back_into_the_same_settings(raw: dict) -> None:
    settings = install_settings(raw)
    assert install_settings(settings_as_config(settings)) == settings


@pytest.mark.parametrize("value", ["", "abc", "A" * 63, "g" * 64, SHA + "0"])
def test_a_malformed_sha256_is_refused(value: str) -> None:
    with pytest.raises(CloudInitError, match="not a sha256"):
        check_sha256(value)


@pytest.mark.parametrize("value", ["files/hs.tar.gz", "ftp://x/hs", "https://user:pw@x/hs", "http://x y/", ""])
def test_an_artifact_url_must_be_plain_http_or_https(value: str) -> None:
    with pytest.raises(CloudInitError, match="--artifact-url"):
        check_artifact_url(value)


def test_artifact_targets() -> None:
    assert check_arch("amd64") == "x86_64" and check_python(" 3.13 ") == "3.13"
    for bad, check in (("3.9", check_python), ("sparc", check_arch)):
        with pytest.raises(ArtifactError):
            check(bad)
    tags = platform_tags("x86_64")
    assert tags[0] == "manylinux_2_34_x86_64" and "manylinux_2_17_x86_64" in tags
    pins = requirements()
    assert any(p.startswith("fabric==") for p in pins) and all("==" in p for p in pins)


# --- the first-boot program, run here -------------------------------------------------------------

FAKE_HOSTSETUP = '''import json, os, sys
print("fake hostsetup", json.dumps(sys.argv[1:]))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
'''


def fake_artifact(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


GOOD = {"hostsetup-artifact.json": json.dumps({"hostsetup": "0.1.0", "python": PYTHON, "arch": "x86_64"}).encode(),
        "site/hostsetup/__init__.py": b"", "site/hostsetup/__main__.py": FAKE_HOSTSETUP.encode()}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A directory served over HTTP on 127.0.0.1 (the user's artifact server)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root.joinpath(".port").write_text(str(server.server_address[1]))
    yield root
    server.shutdown()


def run_firstboot(tmp_path: Path, served: Path, data: bytes, sha256: str | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (served / "hs.tar.gz").write_bytes(data)
    url = f"http://127.0.0.1:{(served / '.port').read_text()}/hs.tar.gz"
    ref = ArtifactRef(url, sha256 or hashlib.sha256(data).hexdigest(), PYTHON)
    program = tmp_path / "firstboot"
    program.write_text(firstboot_program(ref, home=str(tmp_path / "opt"), logs=str(tmp_path / "log"),
                                         settings="/etc/hostsetup/hostsetup.yaml"))
    return subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **(env or {})})


def test_first_boot_fetches_checks_unpacks_and_runs_install_local(tmp_path: Path, served: Path) -> None:
    data = fake_artifact(GOOD)
    run = run_firstboot(tmp_path, served, data, env={"FAKE_EXIT": "3"})
    assert run.returncode == 3, run.stdout + run.stderr
    assert ('fake hostsetup ["-f", "/etc/hostsetup/hostsetup.yaml", "install", "--local", "--json", '
            f'"{tmp_path}/log/install.json"]') in run.stdout
    assert "exited with 3" in run.stdout
    assert "fake hostsetup" in (tmp_path / "log" / "install.log").read_text()
    assert (tmp_path / "opt" / hashlib.sha256(data).hexdigest() / "site" / "hostsetup").is_dir()
    again = run_firstboot(tmp_path, served, data)   # kept by sha256: not fetched again
    assert again.returncode == 0 and "fetching" not in again.stdout, again.stdout + again.stderr


def test_first_boot_refuses_an_artifact_that_is_not_the_pinned_one(tmp_path: Path, served: Path) -> None:
    run = run_firstboot(tmp_path, served, fake_artifact(GOOD), sha256="b" * 64)
    assert run.returncode == 1 and "refusing it" in run.stderr and "fake hostsetup" not in run.stdout
    assert not (tmp_path / "opt" / ("b" * 64)).exists()


def test_first_boot_refuses_an_artifact_that_escapes_its_directory(tmp_path: Path, served: Path) -> None:
    run = run_firstboot(tmp_path, served, fake_artifact({**GOOD, "../evil": b"x"}))
    assert run.returncode == 1 and "'../evil': refusing it" in run.stderr
    assert not (tmp_path / "evil").exists()


# --- the command, fed malformed input: exit 2, one line, nothing written --------------------------------

SHA_X = hashlib.sha256(b"x").hexdigest()
URL = ("--artifact-url", "http://files.example.internal/hs.tar.gz")


@pytest.mark.parametrize(("args", "message"), [
    ((), "cloud-init needs --artifact-url"),
    (URL, "--artifact-url needs the artifact's sha256"),
    (("--artifact-url", "ftp://x/a", "--artifact-sha256", SHA_X), "is not an http(s) URL"),
    (("--artifact-url", "https://u:p@x/a", "--artifact-sha256", SHA_X), "is not an http(s) URL"),
    ((*URL, "--artifact-sha256", "abc"), "is not a sha256"),
    ((*URL, "--artifact", "/etc/hostname"), "not a tar.gz archive"),
    ((*URL, "--artifact", "/nonexistent"), "No such file"),
    ((*URL, "--artifact-sha256", SHA_X, "--python", "3.9"), "choose one of 3.11"),
    ((*URL, "--artifact-sha256", SHA_X, "--build-artifact", "/tmp/x.tgz"), "both name the artifact"),
    (("--build-artifact", "/nonexistent/x.tgz"), "no such directory"),
    (("--build-artifact", "/tmp/x.tgz", "--arch", "sparc"), "choose x86_64"),
    ((*URL, "--artifact-sha256", SHA_X, "--mirror", "https://u:secretpw@m.example/docker"), "credentials into"),
    ((*URL, "--artifact-sha256", SHA_X, "--set", 'proxies={"http-proxy": "http://u:secretpw@proxy:3128"}'),
     "credentials into"),
    ((*URL, "--artifact-sha256", SHA_X, "--trust-ca", "/etc/hostname"), "holds no PEM certificate"),
    ((*URL, "--artifact-sha256", SHA_X, "--set", "log-level=loud"), "must be one of"),
    ((*URL, "--artifact-sha256", SHA_X, "--users", "bad user"), "not a valid user name"),
    ((*URL, "--artifact-sha256", SHA_X, "--output", "/nonexistent/dir/u.yaml"), "no such directory"),
])
def test_malformed_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hostsetup", "cloud-init", *args], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "secretpw" not in run.stderr and not list(tmp_path.iterdir()) and run.stdout == ""


def test_the_command_prints_a_cloud_config_with_the_settings_of_hostsetup_yaml(tmp_path: Path) -> None:
    (tmp_path / "hostsetup.yaml").write_text("install:\n  mirror: ustc\n  users: deploy\n"
                                             "daemon:\n  profiles: log-rotation\n")
    run = subprocess.run([sys.executable, "-m", "hostsetup", "cloud-init", *URL, "--artifact-sha256", SHA_X,
                          "--version", "25.0"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    files = {f["path"]: f for f in parse(run.stdout)["write_files"]}
    written = yaml.safe_load(files["/etc/hostsetup/hostsetup.yaml"]["content"])
    assert written["install"]["mirror"] == "ustc" and written["install"]["users"] == "deploy"
    assert written["install"]["version"] == "25.0"
    assert written["daemon"]["settings"]["log-driver"] == "json-file"   # the profile, rendered here
