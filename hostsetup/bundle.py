"""Offline bundles: Docker's packages for servers that reach no repository.

A bundle is one tar archive laid out exactly like a docker-ce repository (``linux/debian/...``,
``linux/centos/...``) with only the packages an install needs, plus ``manifest.json``. The
repository indexes are Docker's own, byte for byte, so that the package manager on the host checks
Docker's packages against Docker's key as it would online: apt reads the bundle as a ``file:`` source
with ``Signed-By``, dnf as a ``file://`` repository with ``gpgcheck``. The distribution packages a
reference host added (``extras``, ``bundle --from``) were checked there by its package manager; on the
offline host they are as trustworthy as the archive itself, which ``--bundle-sha256`` pins.
``install --bundle`` uploads it (once: a host that has it is not sent it again), checks that the
bundle and the host's own repositories satisfy every dependency before anything changes, and
installs from it with the ordinary steps, the bundle's directory standing in for the mirror URL.

Building one (``hostsetup bundle``) is in ``hostsetup.bundlebuild``; this module is what install needs.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostsetup.distros import APT, DISTROS, RPM, Platform, UnsupportedSystem, resolve_platform
from hostsetup.errors import HostsetupError
from hostsetup.facts import HostFacts
from hostsetup.host.command import Quoted, Raw, command, join
from hostsetup.host.packages import PINNED_PACKAGES
from hostsetup.operations import UploadBundle
from hostsetup.repoindex import sha256_file

BUNDLE_ROOT = "/var/lib/hostsetup/bundles"
MANIFEST = "manifest.json"
FORMAT = 1
# A target as the user names it: distribution id and version, e.g. debian12, rocky9, ubuntu24.04.
_TARGET = re.compile(r"([a-z]+)(\d+(?:\.\d+)?)")
# The bundle's architecture names, per packaging family.
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+~%:/@-]+")   # package file names carry ~, + and (url-quoted) epochs
ARCHES = {"amd64": {"apt": "amd64", "rpm": "x86_64"}, "arm64": {"apt": "arm64", "rpm": "aarch64"}}


class BundleError(HostsetupError):
    """A bundle cannot be built or read as asked."""


def target_platform(name: str) -> Platform:
    """``debian12`` -> the platform a Debian 12 host resolves to (``ubuntu2404`` and ``ubuntu24.04`` alike)."""
    match = _TARGET.fullmatch(name.strip().lower())
    if not match or match.group(1) not in DISTROS:
        raise BundleError(f"--os: {name!r} is not a system like debian12, ubuntu24.04, rocky9 or centos7 "
                          f"(known: {', '.join(sorted(DISTROS))})")
    distro_id, version = match.groups()
    if distro_id == "ubuntu" and "." not in version and len(version) == 4:
        version = f"{version[:2]}.{version[2:]}"
    distro = DISTROS[distro_id]
    os_release = {"ID": distro_id, "VERSION_ID": version, "PRETTY_NAME": f"{distro_id} {version}"}
    if distro.codenames is not None:
        codename = distro.codenames.get(version, "")
        os_release.update(VERSION_CODENAME=codename, UBUNTU_CODENAME=codename)
    try:
        return resolve_platform(os_release)
    except UnsupportedSystem as exc:
        raise BundleError(f"--os {name}: {exc}") from None


def platform_key(platform: Platform, arch: str) -> str:
    """What a bundle's target is for: repository path, release and architecture, e.g. ``centos/9/x86_64``
    (Rocky 9 and AlmaLinux 9 read the same repository)."""
    return f"{platform.distro.repo_path}/{platform.codename or platform.version}/{arch}"


def host_arch(platform: Platform, facts: HostFacts) -> str:
    return (facts.dpkg_arch or "amd64") if platform.family is APT else (facts.arch or "x86_64")


@dataclass(frozen=True)
class BundlePackage:
    name: str
    version: str       # the package manager's exact version
    file: str          # path inside the bundle
    sha256: str
    size: int


@dataclass(frozen=True)
class BundleTarget:
    name: str                          # as given to --os
    key: str                           # platform_key
    family: str                        # apt or rpm
    packages: tuple[BundlePackage, ...]
    needs: tuple[str, ...]             # what the packages need from the distribution's own repositories
    extras: tuple[BundlePackage, ...] = ()   # distribution packages a reference host added (--from)

    def exact(self, name: str) -> str:
        return next(p.version for p in self.packages if p.name == name)

    def missing_extras(self, facts: HostFacts, remote_dir: str) -> tuple[str, ...]:
        """The added distribution packages this host does not have, as files in the unpacked bundle."""
        return tuple(f"{remote_dir}/{p.file}" for p in self.extras if p.name not in facts.packages)


@dataclass(frozen=True)
class Bundle:
    path: str          # the archive on this machine
    sha256: str
    size: int
    version: str       # the docker-ce release every target carries (upstream form: 20.10.24)
    targets: dict[str, BundleTarget]

    @property
    def remote_dir(self) -> str:
        """Where the bundle is unpacked on a host (named by its content)."""
        return f"{BUNDLE_ROOT}/{self.sha256[:16]}"

    @property
    def url(self) -> str:
        """The bundle on the host as a repository base URL (in place of a mirror's)."""
        return f"file://{self.remote_dir}"

    @property
    def marker(self) -> str:
        """Written last when the bundle is unpacked: its sha256 (the facts read it)."""
        return f"{self.remote_dir}/.sha256"

    def present_on(self, facts: HostFacts) -> bool:
        return (facts.files.get(self.marker) or "").strip() == self.sha256

    @property
    def extra_names(self) -> tuple[str, ...]:
        """The added distribution packages of every target (the facts ask whether a host has them)."""
        return tuple(dict.fromkeys(p.name for t in self.targets.values() for p in t.extras))

    def target_for(self, platform: Platform, facts: HostFacts) -> BundleTarget:
        key = platform_key(platform, host_arch(platform, facts))
        found = next((t for t in self.targets.values() if t.key == key), None)
        if found is None:
            have = ", ".join(f"{t.name} ({t.key})" for t in self.targets.values())
            raise BundleError(f"the bundle has no packages for this host's {platform.name} ({key}); it has: {have}")
        return found


def _package(data: dict[str, Any]) -> BundlePackage:
    return BundlePackage(str(data["name"]), str(data["version"]), str(data["file"]), str(data["sha256"]),
                         int(data["size"]))


def read_bundle(path: str) -> Bundle:
    """The bundle at ``path`` (this machine), its manifest checked; ``BundleError`` naming what is wrong."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BundleError(f"--bundle {path}: no such file")
    try:
        with tarfile.open(file, "r:") as tar:
            unsafe = [m.name for m in tar.getmembers() if not m.isfile() or m.name.startswith("/")
                      or ".." in m.name.split("/") or not _SAFE_NAME.fullmatch(m.name)]
            if unsafe:   # what `hostsetup bundle` writes: regular files under plain relative names, nothing else
                raise ValueError(f"it holds {unsafe[0]!r}, which hostsetup does not write")
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = json.loads(member.read())
            names = set(tar.getnames())
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise BundleError(f"--bundle {path}: not a hostsetup bundle ({type(exc).__name__}: {exc}); "
                          "make one with `hostsetup bundle`") from None
    try:
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, this hostsetup reads {FORMAT}")
        targets = {name: BundleTarget(name, str(t["key"]), str(t["family"]),
                                      tuple(_package(p) for p in t["packages"]), tuple(t.get("needs", ())),
                                      tuple(_package(p) for p in t.get("extras", ())))
                   for name, t in manifest["targets"].items()}
        version = str(manifest["version"])
        if not re.fullmatch(r"\d+(\.\d+){1,2}", version):
            raise ValueError(f"version {version!r} is not a docker-ce release like 25.0.3")
        absent = [p.file for t in targets.values() for p in (*t.packages, *t.extras) if p.file not in names]
        if absent:
            raise ValueError(f"it names {absent[0]}, which the archive does not hold")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"--bundle {path}: its manifest is not one hostsetup wrote ({exc})") from None
    return Bundle(str(file), sha256_file(file), file.stat().st_size, version, targets)


def unpack_script(op: UploadBundle, uploaded: str) -> str:
    """As root: check the uploaded archive's sha256, unpack it beside its place, then rename it into place
    with its marker; the upload goes however the script ends."""
    return "\n".join((
        "set -e",
        command("f=@UPLOADED@; d=@DIR@; n=@NEW@", UPLOADED=uploaded, DIR=op.remote_dir,
                NEW=op.remote_dir + ".new").text,
        """trap 'rm -f "$f"; rm -rf "$n"' EXIT""",
        f'echo "{op.sha256}  $f" | sha256sum -c --quiet - >/dev/null 2>&1 || '
        '{ echo "hostsetup: the uploaded bundle does not have the sha256 it had here (cut off in transit?); '
        'nothing was unpacked" >&2; exit 1; }',
        'rm -rf "$n"; install -d -m 0755 "$(dirname "$d")" "$n"',
        'tar -xf "$f" -C "$n" --no-same-owner',
        'chmod -R u=rwX,go=rX "$n"',   # apt's _apt reads it
        command('echo @SHA@ > "$n/.sha256"', SHA=op.sha256).text,
        'rm -rf "$d"; mv "$n" "$d"',
        # Older bundles go, except one a repository file still names (until the run rewrites it).
        f'for o in {BUNDLE_ROOT}/*/; do o=${{o%/}}; [ "$o" = "$d" ] && continue',
        f'  grep -qsF "$o/" {APT.repo_file} {RPM.repo_file} || rm -rf "$o"; done',
    ))


_APT_CHECK = r"""t=$(mktemp -d); trap 'rm -rf "$t"' EXIT; chmod 755 "$t"
mkdir -p "$t/lists/partial" "$t/only" "$t/all"
cp -a /var/lib/apt/lists/. "$t/lists/" 2>/dev/null || true
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] && [ "$f" != @REPO_FILE@ ] && cp "$f" "$t/all/"
done
cp @KEY@ "$t/bundle-key.asc"
printf '%s\n' 'Types: deb' 'URIs: @URL@' 'Suites: @CODENAME@' 'Components: stable' 'Architectures: @ARCH@' \
  "Signed-By: $t/bundle-key.asc" > "$t/only/hostsetup-bundle.sources"
cp "$t/only/hostsetup-bundle.sources" "$t/all/"
o="-o Dir::State::Lists=$t/lists -o Debug::NoLocking=1"
if ! apt-get update -q $o -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$t/only" \
    -o APT::Get::List-Cleanup=0 > "$t/out" 2>&1 || grep -q '^E: ' "$t/out"; then
  echo "hostsetup: the bundle's repository does not read as Docker's signed repository:" \
    "$(grep '^E: ' "$t/out" | head -n 3 | tr '\n' ' ')nothing was changed" >&2; exit 1
fi
if ! apt-get install -s -q $o -o Dir::Etc::SourceParts="$t/all" --allow-downgrades --allow-change-held-packages \
    @PACKAGES@ > "$t/out" 2>&1; then
  missing=$(awk '/Depends:|PreDepends:/ { sub(/^ +/, ""); printf "%s%s", s, $0; s = "; " }' "$t/out")
  echo "hostsetup: neither the bundle nor this host's own repositories provide what Docker needs:" \
    "${missing:-$(tail -n 2 "$t/out" | tr '\n' ' ')}; nothing was installed or configured" >&2; exit 1
fi"""

_RPM_CHECK = r"""t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
mkdir -p "$t/repos" "$t/cache"
for f in /etc/yum.repos.d/*.repo; do [ -e "$f" ] && [ "$f" != @REPO_FILE@ ] && cp "$f" "$t/repos/"; done
cp -a /var/cache/dnf/. "$t/cache/" 2>/dev/null || true
printf '%s\n' '[hostsetup-bundle]' 'name=hostsetup bundle' 'baseurl=@URL@/@RELEASEVER@/$basearch/stable' \
  'gpgcheck=1' 'gpgkey=file://@KEY@' > "$t/repos/hostsetup-bundle.repo"
@MANAGER@ -q --setopt=reposdir="$t/repos" --setopt=cachedir="$t/cache" --setopt=skip_if_unavailable=True \
  --releasever=@RELEASEVER@ install --assumeno @TRANSACTION_FLAGS@ @PACKAGES@ > "$t/out" 2>&1 || true
if grep -Eq 'nothing provides|Problem|No match for argument|Error:' "$t/out"; then
  missing=$(grep -E 'nothing provides|No match for argument|conflicts with' "$t/out" | sed 's/^ *- *//' | head -n 5 \
    | awk '{ printf "%s%s", s, $0; s = "; " }')
  echo "hostsetup: neither the bundle nor this host's own repositories provide what Docker needs:" \
    "${missing:-$(grep -m 1 Error: "$t/out")}; nothing was installed or configured" >&2; exit 1
fi"""


def dependency_check_script(bundle: Bundle, target: BundleTarget, platform: Platform, arch: str,
                            wanted: tuple[str, ...], extras: tuple[str, ...] = ()) -> str:
    """As root, before anything changes: would the package manager install the bundle's packages with the
    bundle and the host's own repositories (read from a copy of their indexes; nothing on the host changes)?"""
    repo = f"{bundle.remote_dir}/linux/{platform.distro.repo_path}"
    manager = platform.manager
    packages = join([*(manager.pin(p.name, p.version) if p.name in PINNED_PACKAGES else Quoted(p.name)
                       for p in target.packages if p.name in wanted), *(Quoted(e) for e in extras)], " ")
    if platform.family is APT:
        return command(_APT_CHECK, REPO_FILE=APT.repo_file, KEY=f"{repo}/gpg", URL=Raw(f"file://{repo}"),
                       CODENAME=Raw(platform.codename), ARCH=Raw(arch), PACKAGES=packages).text
    return command(_RPM_CHECK, REPO_FILE=platform.family.repo_file, KEY=Raw(f"{repo}/gpg"),
                   URL=Raw(f"file://{repo}"), RELEASEVER=Raw(platform.version), MANAGER=Raw(manager.name),
                   # as the transaction will run: conflicting packages replaced, a versionlock not in the way
                   TRANSACTION_FLAGS=Raw(manager.forced_flags()), PACKAGES=packages).text

