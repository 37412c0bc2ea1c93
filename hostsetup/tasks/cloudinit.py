"""``hostsetup cloud-init``: user-data that makes a new server install and configure Docker itself at first
boot (``hostsetup.cloudinit``), and the artifact it fetches (``hostsetup.artifact``)."""

from __future__ import annotations

import json as jsonlib
import sys
import tarfile
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup import secrets
from hostsetup.artifact import MANIFEST, Artifact, ArtifactError, check_python
from hostsetup.artifact import build_artifact as make_artifact
from hostsetup.cloudinit import ArtifactRef, check_artifact_url, check_sha256, cloud_config, host_settings
from hostsetup.daemon.settings import DAEMON_DEFAULTS, DaemonSettings
from hostsetup.errors import HostsetupError
from hostsetup.inputs.files import read_text
from hostsetup.registries import check_ca
from hostsetup.repoindex import sha256_file
from hostsetup.run.report import write_private
from hostsetup.run.settings import daemon_from, settings_from
from hostsetup.run.status import EXIT_BAD_INPUT
from hostsetup.settings import settings_as_config
from hostsetup.tasks.configure import DAEMON_FLAG_HELP, daemon_flags
from hostsetup.tasks.install import INSTALL_FLAG_HELP, install_flags


def artifact_python(path: str) -> tuple[str, str]:
    """``(sha256, python)`` of an artifact file, read from its manifest."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile(MANIFEST)
            manifest = jsonlib.loads(member.read()) if member else None
    except OSError as exc:
        raise ArtifactError(f"--artifact {path}: {exc.strerror or exc}") from None
    except tarfile.TarError:
        raise ArtifactError(f"--artifact {path}: not a tar.gz archive (build one with --build-artifact)") from None
    except (KeyError, ValueError):
        raise ArtifactError(f"--artifact {path}: holds no readable {MANIFEST}: not a hostsetup artifact") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("python"), str):
        raise ArtifactError(f"--artifact {path}: its {MANIFEST} names no Python version")
    return sha256_file(Path(path)), manifest["python"]


def daemon_section(daemon: DaemonSettings) -> dict[str, Any]:
    """The rendered daemon settings as the server's settings file holds them (only what differs from the
    defaults; profiles and templates were rendered here)."""
    section: dict[str, Any] = {"settings": daemon.config} if daemon.config else {}
    for key, value in (("replace", daemon.replace), ("allow_insecure_tcp", daemon.allow_insecure_tcp),
                       ("allow_insecure_registries", daemon.allow_insecure_registries)):
        if value != DAEMON_DEFAULTS[key]:
            section[key] = value
    return section


def _check_artifact_flags(build_artifact: str | None, python: str | None, artifact: str | None,
                          artifact_url: str | None, artifact_sha256: str | None, output: str | None) -> str | None:
    """Which artifact, and where (its URL, checked): one way of naming it, refused (exit 2) before anything
    is built."""
    if not build_artifact and not artifact_url:
        raise Exit("hostsetup: cloud-init needs --artifact-url (and the artifact's sha256 through "
                   "--build-artifact, --artifact or --artifact-sha256), or --build-artifact FILE alone",
                   code=EXIT_BAD_INPUT)
    sources = [name for name, given in (("--build-artifact", build_artifact), ("--artifact", artifact),
                                        ("--artifact-sha256", artifact_sha256)) if given]
    if len(sources) > 1:
        raise Exit(f"hostsetup: {' and '.join(sources)} both name the artifact: give one", code=EXIT_BAD_INPUT)
    if artifact_url and not sources:
        raise Exit("hostsetup: --artifact-url needs the artifact's sha256: give --artifact FILE, "
                   "--artifact-sha256 HEX or --build-artifact FILE", code=EXIT_BAD_INPUT)
    if python is not None and not (build_artifact or artifact_sha256):
        raise Exit("hostsetup: --python goes with --build-artifact or --artifact-sha256 (an --artifact names its "
                   "own)", code=EXIT_BAD_INPUT)
    url = check_artifact_url(artifact_url) if artifact_url else None
    for flag, path in (("--output", output), ("--build-artifact", build_artifact)):
        if path and not Path(path).resolve().parent.is_dir():
            raise Exit(f"hostsetup: {flag} {path}: no such directory", code=EXIT_BAD_INPUT)
    return url


def _refuse_credentials(mirror_url: str, daemon: object) -> None:
    """User-data is readable on the server and through its metadata service: no credentials in it."""
    for where, value in (("the mirror URL", mirror_url), ("the daemon settings", daemon)):
        if value and secrets.holds_credentials(jsonlib.dumps(value)):
            raise Exit(f"hostsetup: {where} would put credentials into the user-data, which is readable on the "
                       "server (and by anything that reaches its metadata service): leave them out, or bake an "
                       "image instead", code=EXIT_BAD_INPUT)


@task(name="cloud-init", auto_shortflags=False, iterable=["set", "registry_ca", "insecure_registry", "trust_ca"], help={
    "build-artifact": "build the hostsetup artifact (hostsetup and its packages for one Python, a tar.gz) to this "
                      "file and print its sha256",
    "python": "the servers' Python version for --build-artifact: 3.11 (Debian 12, EL 9's python3.11), 3.12 "
              "(Ubuntu 24.04) or 3.13 (Debian 13); default 3.11",
    "arch": "the servers' machine type for --build-artifact: x86_64 (default) or aarch64",
    "artifact": "an artifact built before: its sha256 and Python version are read from it",
    "artifact-url": "where the servers fetch the artifact at first boot (http or https; you serve it)",
    "artifact-sha256": "the artifact's sha256, when neither --build-artifact nor --artifact is given",
    "output": "write the cloud-config here (default: print it)",
    "trust-ca": "a CA certificate (PEM file) the servers trust from first boot on (a mirror or artifact server "
                "under a company CA); repeatable",
    **INSTALL_FLAG_HELP,
    **DAEMON_FLAG_HELP,
})
def cloud_init(c: Context, build_artifact: str | None = None, python: str | None = None, arch: str = "x86_64",
               artifact: str | None = None, artifact_url: str | None = None, artifact_sha256: str | None = None,
               output: str | None = None, mirror: str | None = None, insecure_mirror: bool = False,
               key_fingerprint: str | None = None, version: str | None = None, hold: bool = False,
               allow_downgrade: bool = False, no_plugins: bool = False, users: str | None = None,
               profile: str | None = None, template: str | None = None, set: list[str] | None = None,
               registry_mirrors: str | None = None, registry_ca: list[str] | None = None,
               insecure_registry: list[str] | None = None, replace: bool = False,
               allow_insecure_tcp: bool = False, trust_ca: list[str] | None = None) -> None:
    """Write user-data (#cloud-config) with which a new server installs Docker itself at first boot.

    The install and daemon settings come from the flags and hostsetup.yaml as for install; the server fetches
    the hostsetup artifact (--build-artifact builds it) and runs `hostsetup install --local`, no SSH."""
    url = _check_artifact_flags(build_artifact, python, artifact, artifact_url, artifact_sha256, output)
    # Everything the cloud-config needs is checked before anything is built.
    install = settings_from(c.config, None, **install_flags(mirror, insecure_mirror, key_fingerprint, version, hold,
                                                    allow_downgrade, no_plugins, users))
    daemon = daemon_from(c.config, None, **daemon_flags(profile, template, set, registry_mirrors, registry_ca,
                                                 insecure_registry, replace, allow_insecure_tcp))
    trusted = [check_ca(read_text(path, "--trust-ca", limit=256 * 1024), path) for path in trust_ca or []]
    settings = host_settings(settings_as_config(install), daemon_section(daemon), daemon.registry_cas)
    _refuse_credentials(install.mirror_url, settings.get("daemon"))
    if build_artifact:
        built = _build(build_artifact, python or "3.11", arch)
        sha256, for_python = built.sha256, built.python
    elif artifact:
        sha256, for_python = artifact_python(artifact)
    else:
        sha256, for_python = check_sha256(artifact_sha256 or ""), check_python(python or "3.11")
    if url is None:
        return
    text = cloud_config(ArtifactRef(url, sha256, for_python), settings, daemon.registry_cas, trusted)
    if output:
        _write(Path(output), text)
        print(f"wrote {output} ({len(text.encode())} bytes, limit 16384): the servers fetch {url} "
              f"(sha256 {sha256}) and run `hostsetup install --local` at first boot", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _build(path: str, python: str, arch: str) -> Artifact:
    built = make_artifact(Path(path), python, arch, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"built {built.path} ({built.size / 1e6:.1f} MB, hostsetup and {len(built.packages)} packages for "
          f"Python {built.python} on {built.arch})\nsha256 {built.sha256}", file=sys.stderr)
    return built


def _write(path: Path, text: str) -> None:
    try:
        partial = path.with_name(path.name + ".part")
        write_private(partial, text)  # 0600 from the start: the settings may name a private mirror
        partial.replace(path)
    except OSError as exc:
        raise HostsetupError(f"--output {path}: {exc.strerror or exc}") from None
