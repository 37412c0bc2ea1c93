"""``hostsetup cloud-init``: a cloud-config that makes a new server converge itself at first boot.

The user-data (``#cloud-config``) writes hostsetup's settings (``/etc/hostsetup/hostsetup.yaml``, 0600), the
registry CAs and a first-boot program, and runs that program from ``runcmd`` (cloud-init's final stage, after
the network and the users it creates). The program fetches the hostsetup artifact (``hostsetup.artifact``)
from the URL the user serves, refuses it unless its sha256 is the one written here, unpacks it to
``/opt/hostsetup/<sha256>`` and runs ``hostsetup -f /etc/hostsetup/hostsetup.yaml install --local``, which
converges and verifies as it does over SSH. Its output goes to cloud-init's output (the journal and
``/var/log/cloud-init-output.log``) and to ``/var/log/hostsetup/install.log``, the JSON report to
``/var/log/hostsetup/install.json``; a failure fails ``runcmd``, so ``cloud-init status --long`` says
``error`` and names it.

Everything here is pure: settings in, text out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from hostsetup.errors import HostsetupError

# What most clouds accept as user-data (EC2: 16 KB before base64): the file must stay under it.
USER_DATA_LIMIT = 16384
SETTINGS_PATH = "/etc/hostsetup/hostsetup.yaml"
CA_DIR = "/etc/hostsetup/registry-cas"
FIRSTBOOT_PATH = "/usr/local/sbin/hostsetup-firstboot"
HOME = "/opt/hostsetup"
LOGS = "/var/log/hostsetup"
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Runs with the server's python3 (any 3.x cloud-init itself runs on), before hostsetup is there.
FIRSTBOOT = '''\
#!/usr/bin/python3
"""Written by `hostsetup cloud-init`: fetch the pinned hostsetup artifact, check its sha256, unpack it and
converge this server with `hostsetup install --local`. Safe to run again (the artifact is kept by sha256)."""
import hashlib, http.client, io, json, os, shutil, subprocess, sys, tarfile, time, urllib.request

URL = {url}
SHA256 = {sha256}
PYTHON = {python}
HOME, LOGS, SETTINGS = {home}, {logs}, {settings}


def say(message):
    print("hostsetup-firstboot: " + message, flush=True)


def fetch():
    data = None
    for attempt in range(1, 7):
        try:
            with urllib.request.urlopen(URL, timeout=60) as answer:
                data = answer.read()
            break
        except (OSError, http.client.HTTPException) as exc:   # (a cut-off body is an HTTPException)
            say("fetching the artifact, attempt %d of 6: %s" % (attempt, exc))
            time.sleep(min(2 ** attempt, 30))
    if data is None:
        sys.exit("hostsetup-firstboot: could not fetch " + URL)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit("hostsetup-firstboot: %s has sha256 %s, not the pinned %s: refusing it" % (URL, digest, SHA256))
    return data


def unpack(data, target):
    partial = target + ".part"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                sys.exit("hostsetup-firstboot: the artifact holds %r: refusing it" % member.name)
        tar.extractall(partial)
    os.rename(partial, target)


def interpreter(manifest):
    for name in ("python" + PYTHON, "python3"):
        path = shutil.which(name)
        if path and subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   stdout=subprocess.PIPE, universal_newlines=True).stdout.strip() == PYTHON:
            return path
    sys.exit("hostsetup-firstboot: the artifact is for Python %s (built with --python %s), which this server "
             "lacks: build it for this server's python3, or add python%s to the packages of this cloud-config"
             % (PYTHON, PYTHON, PYTHON))


def main():
    target = os.path.join(HOME, SHA256)
    if not os.path.isdir(target):
        say("fetching " + URL)
        unpack(fetch(), target)
    with open(os.path.join(target, "hostsetup-artifact.json")) as handle:
        manifest = json.load(handle)
    say("hostsetup %s for Python %s on %s" % (manifest["hostsetup"], manifest["python"], manifest["arch"]))
    os.makedirs(LOGS, mode=0o700, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.path.join(target, "site"), HOME="/root")
    command = [interpreter(manifest), "-m", "hostsetup", "-f", SETTINGS, "install", "--local",
               "--json", os.path.join(LOGS, "install.json")]
    with open(os.path.join(LOGS, "install.log"), "w") as log:
        run = subprocess.Popen(command, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
        for line in run.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = run.wait()
    say("hostsetup install --local exited with %d (report: %s/install.json)" % (code, LOGS))
    sys.exit(code)


main()
'''


class CloudInitError(HostsetupError):
    """The cloud-config cannot be written as asked."""


@dataclass(frozen=True)
class ArtifactRef:
    """Where the server fetches the artifact, and what it must be."""

    url: str
    sha256: str
    python: str


def check_sha256(value: str) -> str:
    text = value.strip().lower()
    if not _SHA256.fullmatch(text):
        raise CloudInitError(f"--artifact-sha256: {value!r} is not a sha256 (64 hex digits, as `hostsetup "
                             "cloud-init --build-artifact` prints it)")
    return text


def check_artifact_url(value: str) -> str:
    text = value.strip()
    if not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", text):
        raise CloudInitError(f"--artifact-url: {value!r} is not an http(s) URL without credentials (the server "
                             "fetches it at first boot; the sha256 written with it is what makes it safe)")
    return text


def ca_path(registry: str) -> str:
    """Where the server keeps the CA of ``registry`` (host[:port]) until hostsetup installs it."""
    return f"{CA_DIR}/{registry.replace(':', '_')}.crt"


class _Literal(str):
    """A multi-line text YAML writes as a literal block (readable, no escapes)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def host_settings(install: Mapping[str, Any], daemon: Mapping[str, Any], registry_cas: Mapping[str, str]
                  ) -> dict[str, Any]:
    """The settings file the server's hostsetup reads: install's settings as given, daemon.json already
    rendered here (profiles and templates need nothing on the server), CAs by their path on the server."""
    settings: dict[str, Any] = {"install": {k: v for k, v in install.items() if v not in (None, "")}}
    if daemon or registry_cas:
        settings["daemon"] = {**daemon, **({"registry_cas": {name: ca_path(name) for name in registry_cas}}
                                           if registry_cas else {})}
    return settings


def firstboot_program(artifact: ArtifactRef, home: str = HOME, logs: str = LOGS, settings: str = SETTINGS_PATH
                      ) -> str:
    """The first-boot program for ``artifact`` (the paths change only for tests)."""
    values = {"url": artifact.url, "sha256": artifact.sha256, "python": artifact.python, "home": home,
              "logs": logs, "settings": settings}
    return FIRSTBOOT.format(**{k: json.dumps(v) for k, v in values.items()})


def cloud_config(artifact: ArtifactRef, settings: Mapping[str, Any], registry_cas: Mapping[str, str],
                 trusted_cas: Sequence[str] = ()) -> str:
    """The ``#cloud-config`` user-data: settings and CAs written, the first-boot program run by runcmd;
    ``trusted_cas`` (PEM) join the system's trust store first (cloud-init's ``ca_certs``: a mirror or
    artifact server under a company CA)."""
    files: list[dict[str, Any]] = [
        {"path": SETTINGS_PATH, "owner": "root:root", "permissions": "0600",
         "content": _Literal(yaml.safe_dump(dict(settings), sort_keys=True, default_flow_style=False))},
        *({"path": ca_path(name), "owner": "root:root", "permissions": "0644", "content": _Literal(pem)}
          for name, pem in sorted(registry_cas.items())),
        {"path": FIRSTBOOT_PATH, "owner": "root:root", "permissions": "0700",
         "content": _Literal(firstboot_program(artifact))},
    ]
    document: dict[str, Any] = {"write_files": files, "runcmd": [[FIRSTBOOT_PATH]]}
    if trusted_cas:
        document = {"ca_certs": {"trusted": [_Literal(pem) for pem in trusted_cas]}, **document}
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    text = f"#cloud-config\n# hostsetup: converge this server at first boot (artifact sha256 {artifact.sha256})\n{body}"
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise CloudInitError(f"the cloud-config is {size} bytes, over the {USER_DATA_LIMIT} bytes most clouds accept "
                             "as user-data: fewer registry CAs or daemon.json keys, or bake an image instead")
    return text
