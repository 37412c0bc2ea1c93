"""``hostsetup bundle``: Docker's packages for servers that reach no repository, in one checked archive."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from hostsetup.bundle import ARCHES, BundleError, platform_key, target_platform
from hostsetup.bundlebuild import Extra, build_bundle
from hostsetup.distros import DISTROS, Platform
from hostsetup.inputs.values import host_string
from hostsetup.reference import connect_references, reference_for
from hostsetup.repoindex import sha256_file
from hostsetup.run.settings import settings_from
from hostsetup.run.status import EXIT_BAD_INPUT, EXIT_FAILED


def _checked_targets(os: str, output: str, arch: str) -> list[str]:
    """The --os systems, refused (exit 2) before any download when a flag is missing or wrong."""
    names = [n.strip() for n in os.split(",") if n.strip()]
    if not names:
        raise Exit("hostsetup: bundle needs --os, e.g. --os debian12,rocky9", code=EXIT_BAD_INPUT)
    if not output:
        raise Exit("hostsetup: bundle needs -o/--output FILE, e.g. -o bundle.tar", code=EXIT_BAD_INPUT)
    if arch not in ARCHES:
        raise Exit(f"hostsetup: --arch {arch!r}: one of {', '.join(ARCHES)}", code=EXIT_BAD_INPUT)
    for name in names:
        target_platform(name)  # an unknown system is refused before any download
    return names


def _print_summary(output: str, manifest: dict[str, object]) -> None:
    targets = manifest["targets"]
    assert isinstance(targets, dict)
    print(f"wrote {output} ({Path(output).stat().st_size} bytes): docker-ce {manifest['version']} for "
          f"{', '.join(targets)}")
    for name, target in targets.items():
        needs = ", ".join(target["needs"]) or "nothing"
        extras = f"; {len(target['extras'])} of the system's packages added (--from)" if target["extras"] else ""
        print(f"  {name}: {len(target['packages'])} packages{extras}; needs from the system: {needs}")


@task(help={
    "output": "the archive to write (e.g. bundle.tar)",
    "os": "comma-separated systems it is for: " + ", ".join(f"{d.id}{'/'.join(d.versions)}" for d in DISTROS.values()),
    "version": "docker-ce release: 25.0, 25.0.3 (default: the newest every system has)",
    "mirror": "the repository to download from: official, a preset or a URL",
    "insecure-mirror": "allow a plain http:// mirror (everything is still checked against the key)",
    "key-fingerprint": "expected fingerprint of the repository key (private mirrors)",
    "arch": f"architecture: {', '.join(ARCHES)}",
    "no-plugins": "leave out docker-buildx-plugin and docker-compose-plugin",
    "from": "reference host(s) of the same system(s), as bare as the targets: their package manager resolves and "
            "downloads the distribution packages Docker needs, which join the bundle",
})
def bundle(c: Context, output: str = "", os: str = "", version: str | None = None, mirror: str | None = None,
           insecure_mirror: bool = False, key_fingerprint: str | None = None, arch: str = "amd64",
           no_plugins: bool = False, from_: str = "") -> None:
    """Download Docker's packages for offline servers into one archive (then: install --bundle FILE)."""
    names = _checked_targets(os, output, arch)
    settings = settings_from(c.config, None, mirror=mirror, insecure_mirror=insecure_mirror or None,
                             key_fingerprint=key_fingerprint, version=version, plugins=False if no_plugins else None)
    specs = [h.strip() for h in from_.split(",") if h.strip()]
    for spec in specs:
        host_string(spec, "--from")
    wanted = {platform_key(p, ARCHES[arch][p.family.name]): n for n, p in ((n, target_platform(n)) for n in names)}
    references = []
    try:
        references = connect_references(specs, c.config)
        for ref in references:
            if ref.key not in wanted:
                raise BundleError(f"--from {ref.target.name} runs {ref.platform.name} ({ref.key}), which is none of "
                                  f"the --os systems ({', '.join(wanted)})")

        def resolve(name: str, platform: Platform, host_arch: str, needs: list[str], work: Path) -> list[Extra]:
            ref = reference_for(references, name, platform, host_arch)
            if ref is None:
                return []
            print(f"{name}: {ref.target.name} resolves and downloads what Docker needs from the system", flush=True)
            return ref.download(needs, work / "extras" / name)

        manifest = build_bundle(names, settings, Path(output), arch, progress=lambda line: print(line, flush=True),
                                reference=resolve if references else None)
    except BundleError as exc:
        raise Exit(f"hostsetup: {exc}; no bundle written", code=EXIT_FAILED) from None
    finally:
        for ref in references:
            ref.remote.conn.close()
    _print_summary(output, manifest)
    digest = sha256_file(Path(output))
    print(f"sha256 {digest}")
    print(f"install it with: hostsetup -H HOSTS install --bundle {output} --bundle-sha256 {digest}")
