"""``hostsetup bundle``: Docker's packages for servers that reach no repository, in one checked archive."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit, task

from hostsetup.bundle import ARCHES, BundleError, target_platform
from hostsetup.bundlebuild import build_bundle
from hostsetup.tasks.install import settings_from


@task(help={
    "output": "the archive to write (e.g. bundle.tar)",
    "os": "comma-separated systems it is for: debian11/12/13, ubuntu20.04/22.04/24.04, centos7..10, rhel8..10, "
          "rocky8..10, almalinux8..10, ol8..10, fedora40..44",
    "version": "docker-ce release: 25.0, 25.0.3 (default: the newest every system has)",
    "mirror": "the repository to download from: official, a preset or a URL",
    "insecure-mirror": "allow a plain http:// mirror (everything is still checked against the key)",
    "key-fingerprint": "expected fingerprint of the repository key (private mirrors)",
    "arch": f"architecture: {', '.join(ARCHES)}",
    "no-plugins": "leave out docker-buildx-plugin and docker-compose-plugin",
})
def bundle(c: Context, output: str = "", os: str = "", version: str | None = None, mirror: str | None = None,
           insecure_mirror: bool = False, key_fingerprint: str | None = None, arch: str = "amd64",
           no_plugins: bool = False) -> None:
    """Download Docker's packages for offline servers into one archive (then: install --bundle FILE)."""
    names = [n.strip() for n in os.split(",") if n.strip()]
    if not names:
        raise Exit("hostsetup: bundle needs --os, e.g. --os debian12,rocky9", code=2)
    if not output:
        raise Exit("hostsetup: bundle needs -o/--output FILE, e.g. -o bundle.tar", code=2)
    if arch not in ARCHES:
        raise Exit(f"hostsetup: --arch {arch!r}: one of {', '.join(ARCHES)}", code=2)
    for name in names:
        target_platform(name)  # an unknown system is refused before any download
    settings = settings_from(c, None, mirror=mirror, insecure_mirror=insecure_mirror or None,
                             key_fingerprint=key_fingerprint, version=version, plugins=False if no_plugins else None)
    try:
        manifest = build_bundle(names, settings, Path(output), arch, progress=lambda line: print(line, flush=True))
    except BundleError as exc:
        raise Exit(f"hostsetup: {exc}; no bundle written", code=1) from None
    targets = manifest["targets"]
    assert isinstance(targets, dict)
    print(f"wrote {output} ({Path(output).stat().st_size} bytes): docker-ce {manifest['version']} for "
          f"{', '.join(targets)}")
    for name, target in targets.items():
        needs = ", ".join(target["needs"]) or "nothing"
        print(f"  {name}: {len(target['packages'])} packages; needs from the system's own repositories: {needs}")
    print(f"install it with: hostsetup -H HOSTS install --bundle {output}")
