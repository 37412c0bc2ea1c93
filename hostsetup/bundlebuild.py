"""Building an offline bundle on a machine that reaches a docker-ce repository (Docker's, a preset or a URL).

For each target: the repository key is downloaded and its fingerprint checked (Docker's published one,
or ``--key-fingerprint``); apt's ``InRelease`` is checked against it with ``gpgv`` (dnf's
``repomd.xml.asc`` too, where the repository signs it), every index file against the sha256 the signed
file gives, every package against its index's sha256, and RPMs against the key with ``rpmkeys``. The
packages taken are the ones the install asks for (docker-ce and -cli at the version, the rest newest)
and whatever they depend on or recommend from the same repository, since the package manager on the
host reads Docker's own index and would ask for them; what they need from the distribution is listed
in the manifest (``needs``).
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import json
import lzma
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from hostsetup.bundle import ARCHES, FORMAT, MANIFEST, BundleError, platform_key, target_platform
from hostsetup.distros import APT, Platform, install_packages
from hostsetup.host.packages import PINNED_PACKAGES, rpm_pin
from hostsetup.host.versions import newest_key, upstream_version, version_key
from hostsetup.mirrors import OFFICIAL_FINGERPRINTS
from hostsetup.openpgp import dearmor, key_file_problem
from hostsetup.plan import PlanError, resolve_version
from hostsetup.repoindex import SignatureError, parse_deb822, release_sha256, verify_clearsigned, verify_detached
from hostsetup.secrets import mask
from hostsetup.settings import InstallSettings

T = TypeVar("T")
RPM_NS = {"c": "http://linux.duke.edu/metadata/common", "rpm": "http://linux.duke.edu/metadata/rpm",
          "r": "http://linux.duke.edu/metadata/repo"}


@dataclass
class Candidate:
    """One package of a repository index."""

    name: str
    version: str
    file: str          # path under the repository base
    sha256: str
    size: int
    relations: list[str] = field(default_factory=list)  # Depends, Pre-Depends, Recommends (apt); requires (rpm)
    provides: list[str] = field(default_factory=list)


@dataclass
class Fetched:
    """What one target puts in the bundle: files (bundle path -> bytes or a local file), packages, needs."""

    files: dict[str, bytes | Path] = field(default_factory=dict)
    packages: list[dict[str, object]] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but the mirror's credentials go only to the mirror (same scheme, host and port)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl)[:2] != urlsplit(req.full_url)[:2]:
            new.remove_header("Authorization")
        return new


class Downloader:
    """HTTP(S) GETs from the repository; a URL's user:password goes in a header (to that origin only),
    never in a message."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.headers = {}
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
            parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
        self.base = urlunsplit(parts).rstrip("/")
        self.opener = urllib.request.build_opener(_SameOriginAuth)

    def get(self, path: str, missing_ok: bool = False) -> bytes | None:
        url = f"{self.base}/{path.lstrip('/')}"
        request = urllib.request.Request(url, headers=self.headers)
        for attempt in range(3):
            try:
                with self.opener.open(request, timeout=120) as response:
                    data: bytes = response.read()
                    return data
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and missing_ok:
                    return None
                if exc.code < 500 or attempt == 2:
                    raise BundleError(f"downloading {mask(url)} failed: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                if attempt == 2:
                    reason = getattr(exc, "reason", exc)
                    raise BundleError(f"downloading {mask(url)} failed: {reason}") from None
            time.sleep(1 + attempt)
        raise BundleError(f"downloading {mask(url)} failed")

    def must(self, path: str) -> bytes:
        data = self.get(path)
        assert data is not None
        return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sha(data: bytes, expected: str, what: str) -> None:
    if _sha256(data) != expected:
        raise BundleError(f"{what}: its sha256 is not the one its signed index gives; refusing it")


def _verified(check: Callable[[], T]) -> T:
    try:
        return check()
    except SignatureError as exc:
        raise BundleError(f"{exc}: refusing the repository") from None


def relation_names(field_text: str) -> list[str]:
    """``a (>= 1) | b, c`` -> a, b, c (every alternative: the bundle may carry any of them)."""
    names = []
    for part in re.split(r"[,|]", field_text):
        name = part.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0].strip()
        if name:
            names.append(name)
    return names


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    return data


def select(candidates: list[Candidate], wanted: Iterable[str], version: str,
           capabilities: Callable[[str], list[str]]) -> tuple[list[Candidate], list[str]]:
    """The packages to bundle (docker-ce/-cli at ``version``, the rest newest, and everything the repository
    provides that they need or recommend) and the relations the repository does not provide.
    ``capabilities``: the names a relation can be met by (apt: each alternative; rpm: the capability)."""
    by_name: dict[str, list[Candidate]] = {}
    providers: dict[str, set[str]] = {}
    for cand in candidates:
        by_name.setdefault(cand.name, []).append(cand)
        for cap in (cand.name, *cand.provides):
            providers.setdefault(cap, set()).add(cand.name)
    chosen: dict[str, Candidate] = {}
    needs: list[str] = []
    todo = list(wanted)
    while todo:
        name = todo.pop(0)
        if name in chosen:
            continue
        if name not in by_name:
            raise BundleError(f"the repository has no {name}")
        versions = by_name[name]
        if name in PINNED_PACKAGES:  # docker-ce-cli's epoch differs from docker-ce's on rpm: compare without it
            same = [c for c in versions if rpm_pin(c.version) == rpm_pin(version)]
            if not same:
                raise BundleError(f"the repository has no {name} {version}")
            chosen[name] = same[0]
        else:
            chosen[name] = max(versions, key=lambda c: newest_key(c.version))
        for relation in chosen[name].relations:
            names = sorted({n for cap in capabilities(relation) for n in providers.get(cap, ())})
            if names:
                todo.extend(n for n in names if n not in chosen)
            elif relation not in needs:
                needs.append(relation)
    return list(chosen.values()), needs


def _apt_target(dl: Downloader, platform: Platform, arch: str, pin: str | None, keyring: Path,
                work: Path) -> tuple[Fetched, list[Candidate], str]:
    repo = f"linux/{platform.distro.repo_path}"
    dist = f"dists/{platform.codename}"
    inrelease = dl.must(f"{repo}/{dist}/InRelease")
    signed = work / f"{platform.codename}-InRelease"
    signed.write_bytes(inrelease)
    listed = release_sha256(_verified(lambda: verify_clearsigned(signed, keyring)))
    fetched = Fetched({f"{repo}/{dist}/InRelease": inrelease})
    packages_text = None
    for path, (sha, _size) in sorted(listed.items()):
        if not (path.startswith((f"stable/binary-{arch}/", "stable/binary-all/", "stable/i18n/"))):
            continue
        data = dl.get(f"{repo}/{dist}/{path}", missing_ok=True)
        if data is None:
            continue   # listed but not served (compressions a mirror leaves out): apt tries the next one
        _check_sha(data, sha, f"{dist}/{path}")
        fetched.files[f"{repo}/{dist}/{path}"] = data
        if path.startswith(f"stable/binary-{arch}/Packages") and packages_text is None:
            packages_text = _decompress(path, data).decode("utf-8", errors="replace")
    if packages_text is None:
        raise BundleError(f"{platform.name}: the repository lists no package index for {arch}")
    candidates = []
    for stanza in parse_deb822(packages_text):
        relations = [r.strip() for key in ("Pre-Depends", "Depends", "Recommends")
                     for r in stanza.get(key, "").split(",") if r.strip()]
        candidates.append(Candidate(stanza["Package"], stanza["Version"], stanza["Filename"], stanza["SHA256"],
                                    int(stanza.get("Size", "0")), relations,
                                    relation_names(stanza.get("Provides", ""))))
    version = _version_for(platform, candidates, pin)
    return fetched, candidates, version


def _rpm_target(dl: Downloader, platform: Platform, arch: str, pin: str | None, keyring: Path,
                work: Path) -> tuple[Fetched, list[Candidate], str, str]:
    base = f"linux/{platform.distro.repo_path}/{platform.version}/{arch}/stable"
    repomd = dl.must(f"{base}/repodata/repomd.xml")
    fetched = Fetched({f"{base}/repodata/repomd.xml": repomd})
    signature = dl.get(f"{base}/repodata/repomd.xml.asc", missing_ok=True)
    if signature is not None:
        (work / "repomd.xml").write_bytes(repomd)
        (work / "repomd.xml.asc").write_bytes(signature)
        _verified(lambda: verify_detached(work / "repomd.xml.asc", work / "repomd.xml", keyring))
        fetched.files[f"{base}/repodata/repomd.xml.asc"] = signature
    primary = None
    for data in ET.fromstring(repomd).findall("r:data", RPM_NS):
        location = data.find("r:location", RPM_NS)
        checksum = data.find("r:checksum", RPM_NS)
        if location is None or checksum is None:
            continue
        href = location.get("href", "")
        content = dl.must(f"{base}/{href}")
        if checksum.get("type") == "sha256":
            _check_sha(content, (checksum.text or "").strip(), href)
        fetched.files[f"{base}/{href}"] = content
        if data.get("type") == "primary":
            primary = _decompress(href, content)
    if primary is None:
        raise BundleError(f"{platform.name}: the repository's repomd.xml names no primary metadata")
    candidates = []
    for pkg in ET.fromstring(primary).findall("c:package", RPM_NS):
        if pkg.findtext("c:arch", "", RPM_NS) not in (arch, "noarch"):
            continue
        ver = pkg.find("c:version", RPM_NS)
        checksum = pkg.find("c:checksum", RPM_NS)
        location = pkg.find("c:location", RPM_NS)
        if ver is None or checksum is None or location is None or checksum.get("type") != "sha256":
            continue
        epoch = ver.get("epoch", "0")
        evr = f"{epoch + ':' if epoch != '0' else ''}{ver.get('ver')}-{ver.get('rel')}"
        fmt = pkg.find("c:format", RPM_NS)
        relations = [e.get("name", "") for kind in ("rpm:requires", "rpm:recommends")
                     for e in (fmt.findall(f"{kind}/rpm:entry", RPM_NS) if fmt is not None else [])
                     if not e.get("name", "").startswith("rpmlib(")]
        provides = [e.get("name", "") for e in (fmt.findall("rpm:provides/rpm:entry", RPM_NS) if fmt is not None
                                               else [])]
        size = pkg.find("c:size", RPM_NS)
        candidates.append(Candidate(pkg.findtext("c:name", "", RPM_NS), evr, location.get("href", ""),
                                    (checksum.text or "").strip(), int(size.get("package", "0") if size is not None
                                                                       else 0), relations, provides))
    return fetched, candidates, _version_for(platform, candidates, pin), base


def _version_for(platform: Platform, candidates: list[Candidate], pin: str | None) -> str:
    available = tuple(c.version for c in candidates if c.name == "docker-ce")
    if not available:
        raise BundleError(f"{platform.name}: the repository has no docker-ce")
    if pin is None:
        return max(available, key=newest_key)
    try:
        return resolve_version(pin, available)
    except PlanError as exc:
        raise BundleError(f"{platform.name}: {exc}") from None


def _rpm_signatures_ok(key: bytes, rpms: list[Path], work: Path) -> None:
    rpmkeys = shutil.which("rpmkeys")
    if rpmkeys is None:
        raise BundleError("checking RPM signatures needs rpmkeys on this machine (Debian/Ubuntu: the rpm package)")
    db = work / "rpmdb"
    db.mkdir(exist_ok=True)
    (work / "key.asc").write_bytes(key)
    run = subprocess.run([rpmkeys, "--dbpath", str(db), "--import", str(work / "key.asc")], capture_output=True,
                         text=True, timeout=60)
    if run.returncode != 0:
        raise BundleError(f"rpmkeys could not import the repository key: {run.stderr.strip()}")
    for rpm in rpms:
        check = subprocess.run([rpmkeys, "--dbpath", str(db), "--checksig", str(rpm)], capture_output=True,
                               text=True, timeout=60)
        if check.returncode != 0 or "signatures OK" not in check.stdout:
            raise BundleError(f"{rpm.name}: not signed by the pinned key ({check.stdout.strip() or check.stderr})")


@dataclass(frozen=True)
class Extra:
    """A distribution package a reference host resolved and downloaded (checked there by its package manager)."""

    name: str
    version: str
    path: Path         # on this machine


# (target name, its platform, the bundle's architecture for it, what its packages need, a work directory)
# -> the distribution packages to add: ``hostsetup bundle --from HOST``.
Reference = Callable[[str, Platform, str, list[str], Path], list[Extra]]


def build_bundle(names: list[str], settings: InstallSettings, output: Path, arch: str = "amd64",
                 progress: Callable[[str], None] = print, reference: Reference | None = None) -> dict[str, object]:
    """Download, check and write the bundle for the systems ``names`` (debian12, rocky9, ...); the manifest.
    ``reference``: where given, the distribution packages the targets' packages need are added too."""
    if arch not in ARCHES:
        raise BundleError(f"--arch {arch!r}: one of {', '.join(ARCHES)}")
    platforms = {name: target_platform(name) for name in dict.fromkeys(names)}
    wanted = install_packages(settings.plugins)
    dl = Downloader(settings.mirror_url)
    manifest_targets: dict[str, object] = {}
    files: dict[str, bytes | Path] = {}
    fingerprints: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hostsetup-bundle-") as tmp:
        work = Path(tmp)
        keys: dict[str, bytes] = {}
        resolved: dict[str, tuple[Platform, str, Fetched, list[Candidate], str, str]] = {}
        for name, platform in platforms.items():
            family = platform.family.name
            repo = f"linux/{platform.distro.repo_path}"
            if repo not in keys:
                key = dl.must(f"{repo}/gpg")
                expected = settings.key_fingerprint or OFFICIAL_FINGERPRINTS[family]
                problem = key_file_problem(key, (expected,))
                if problem is not None:
                    raise BundleError(f"{mask(dl.base)}/{repo}/gpg: {problem}; refusing it (--key-fingerprint for a "
                                      "private mirror's own key)")
                keys[repo], fingerprints[family] = key, expected
                files[f"{repo}/gpg"] = key
            keyring = work / f"{repo.replace('/', '_')}.gpg"
            keyring.write_bytes(dearmor(keys[repo]))
            host_arch = ARCHES[arch][family]
            progress(f"{name}: reading the repository index ({platform_key(platform, host_arch)})")
            if platform.family is APT:
                fetched, candidates, version = _apt_target(dl, platform, host_arch, settings.version, keyring,
                                                           work)
                base = repo
            else:
                fetched, candidates, version, base = _rpm_target(dl, platform, host_arch, settings.version,
                                                                 keyring, work)
            resolved[name] = (platform, host_arch, fetched, candidates, version, base)
        common = _common_release(resolved, settings.version)
        for name, (platform, host_arch, fetched, candidates, version, base) in resolved.items():
            exact = version if upstream_version(version) == common else max(
                (c.version for c in candidates if c.name == "docker-ce" and upstream_version(c.version) == common),
                key=newest_key)
            chosen, needs = select(candidates, wanted, exact,
                                   relation_names if platform.family is APT else lambda r: [r])
            rpms = []
            for cand in chosen:
                progress(f"{name}: {cand.name} {cand.version}")
                data = dl.must(f"{base}/{cand.file}")
                _check_sha(data, cand.sha256, cand.file)
                path = work / "pkgs" / _sha256(data)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(data)
                if platform.family is not APT:
                    rpms.append(path)
                fetched.files[f"{base}/{cand.file}"] = path
                fetched.packages.append({"name": cand.name, "version": cand.version, "file": f"{base}/{cand.file}",
                                         "sha256": cand.sha256, "size": len(data)})
            if rpms:
                _rpm_signatures_ok(keys[f"linux/{platform.distro.repo_path}"], rpms, work)
            extras = []
            if reference is not None:
                for extra in reference(name, platform, host_arch, needs, work):
                    data = extra.path.read_bytes()
                    inside = f"extras/{name}/{extra.path.name}"
                    fetched.files[inside] = extra.path
                    extras.append({"name": extra.name, "version": extra.version, "file": inside,
                                   "sha256": _sha256(data), "size": len(data)})
                    progress(f"{name}: {extra.name} {extra.version} (from the reference host)")
            files.update(fetched.files)
            manifest_targets[name] = {"key": platform_key(platform, host_arch), "family": platform.family.name,
                                      "system": platform.name, "packages": fetched.packages, "needs": needs,
                                      "extras": extras}
        manifest = {"format": FORMAT, "version": common, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": mask(settings.mirror_url), "key_fingerprints": fingerprints, "targets": manifest_targets}
        _write_tar(output, manifest, files)
    return manifest


def _common_release(resolved: dict[str, tuple[Platform, str, Fetched, list[Candidate], str, str]],
                    pin: str | None) -> str:
    """The docker-ce release every target gets: the pinned one, else the newest all of them have."""
    if pin is not None:
        releases = {upstream_version(r[4]) for r in resolved.values()}
        if len(releases) > 1:
            raise BundleError(f"--version {pin} means {', '.join(sorted(releases))} on different targets: "
                              "give the full version (e.g. 20.10.24)")
        return releases.pop()
    sets = [{upstream_version(c.version) for c in r[3] if c.name == "docker-ce"} for r in resolved.values()]
    common = set.intersection(*sets) if sets else set()
    if not common:
        raise BundleError("no docker-ce release is in the repository for every target; pass --version")
    return max(common, key=version_key)


def _write_tar(output: Path, manifest: dict[str, object], files: dict[str, bytes | Path]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with tarfile.open(partial, "w") as tar:
            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
            add(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
            for name in sorted(files):
                content = files[name]
                add(name, content.read_bytes() if isinstance(content, Path) else content)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
