"""``hostsetup bundle --from HOST``: a reference host of the same system resolves the distribution packages
that Docker's packages need and downloads them with its own package manager (which checks them against its
repositories' keys); they travel back over SFTP and join the bundle as ``extras``.

What it downloads is what installing those needs would add on the reference host, so a host as bare as
the offline targets gives the list they need. Nothing is installed there; the downloads go into a
temporary directory that is removed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from invoke.config import Config

from hostsetup.bundle import BundleError, host_arch, platform_key
from hostsetup.bundlebuild import Extra, relation_names
from hostsetup.distros import APT, Platform, UnsupportedSystem, resolve_platform
from hostsetup.facts import HostFacts
from hostsetup.host.command import Raw, command, words
from hostsetup.remote import Remote, RemoteError, tail
from hostsetup.run.fleet import gather_facts, open_connection
from hostsetup.targets import Target

_DOWNLOAD_APT = r"""set -e
t=$(mktemp -d /var/tmp/hostsetup-deps-XXXXXXXX); chmod 755 "$t"; mkdir "$t/partial"
echo "@@dir $t"
DEBIAN_FRONTEND=noninteractive apt-get install --download-only -y -q -o Dir::Cache::Archives="$t" \
  -o Debug::NoLocking=1 @NAMES@ >&2
for f in "$t"/*.deb; do
  [ -e "$f" ] || continue; chmod 644 "$f"
  printf '@@pkg %s\t%s\t%s\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" "$f"
done"""

_DOWNLOAD_RPM = r"""set -e
t=$(mktemp -d /var/tmp/hostsetup-deps-XXXXXXXX); chmod 755 "$t"
echo "@@dir $t"
@MANAGER@ install --downloadonly --downloaddir="$t" --releasever=@RELEASEVER@ -y -q @NAMES@ >&2
for f in "$t"/*.rpm; do
  [ -e "$f" ] || continue; chmod 644 "$f"
  printf '@@pkg %s\t%s\n' "$(rpm -qp --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}' "$f")" "$f"
done"""


def request_names(needs: list[str], family: str) -> list[str]:
    """What to ask the reference host's package manager for: apt, each relation's first alternative by name;
    rpm, each capability as it is (dnf resolves sonames and files to the packages providing them)."""
    if family == APT.name:
        return list(dict.fromkeys(relation_names(need.split("|", 1)[0])[0] for need in needs if need.strip()))
    return list(dict.fromkeys(need.strip() for need in needs if need.strip()))


def download_script(platform: Platform, names: list[str]) -> str:
    if platform.family is APT:
        return command(_DOWNLOAD_APT, NAMES=words(*names)).text
    return command(_DOWNLOAD_RPM, MANAGER=Raw(platform.package_manager), RELEASEVER=Raw(platform.version),
                   NAMES=words(*names)).text


def parse_download(output: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The temporary directory and (name, version, remote path) of each downloaded package."""
    directory, packages = "", []
    for line in output.splitlines():
        if line.startswith("@@dir "):
            directory = line[len("@@dir "):].strip()
        elif line.startswith("@@pkg "):
            fields = line[len("@@pkg "):].split("\t")
            if len(fields) == 3:
                packages.append((fields[0], fields[1], fields[2]))
    return directory, packages


@dataclass
class ReferenceHost:
    target: Target
    remote: Remote
    facts: HostFacts
    platform: Platform
    key: str           # bundle.platform_key

    def download(self, needs: list[str], dest: Path) -> list[Extra]:
        names = request_names(needs, self.platform.family.name)
        if not names:
            return []
        result = self.remote.root(download_script(self.platform, names), timeout=900)
        directory, packages = parse_download(result.stdout)
        try:
            if not result.ok:
                raise BundleError(f"--from {self.target.name}: the package manager could not download what Docker "
                                  f"needs ({', '.join(names)}): {tail(result)}")
            extras = []
            dest.mkdir(parents=True, exist_ok=True)
            for name, version, path in packages:
                local = dest / Path(path).name
                self.remote.sessions += 1
                self.remote.conn.get(path, str(local))
                extras.append(Extra(name, version, local))
            return extras
        finally:
            if directory.startswith("/var/tmp/hostsetup-deps-"):
                self.remote.root(command("rm -rf @DIR@", DIR=directory), timeout=60)


def connect_references(specs: list[str], config: Config) -> list[ReferenceHost]:
    """Connect to each reference host and read what system it runs."""
    hosts: list[ReferenceHost] = []
    for spec in specs:
        target = Target(spec, spec)
        remote: Remote | None = None
        try:
            remote = open_connection(target, config)
            facts = gather_facts(remote, ())
            platform = resolve_platform(facts.os_release)
        except (RemoteError, UnsupportedSystem, OSError) as exc:
            for opened in [*(h.remote for h in hosts), *([remote] if remote else [])]:
                opened.conn.close()
            raise BundleError(f"--from {spec}: {exc}") from None
        hosts.append(ReferenceHost(target, remote, facts, platform, platform_key(platform, host_arch(platform, facts))))
    return hosts


def reference_for(hosts: list[ReferenceHost], name: str, platform: Platform, arch: str) -> ReferenceHost | None:
    """The reference host of the same system as the target ``name`` (same repository, release and arch)."""
    key = platform_key(platform, arch)
    return next((h for h in hosts if h.key == key), None)
