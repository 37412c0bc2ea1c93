"""Unit tests for the pure parts of hostsetup.sandbox.mirror."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from hostsetup.host.versions import compare_versions, sort_newest_first, upstream_version
from hostsetup.sandbox import debarchive, debs, debversions, imagetar
from hostsetup.sandbox import mirror as m
from hostsetup.sandbox.buildtools import MirrorBuildError, recipe_hash
from hostsetup.sandbox.debarchive import BinaryPackage, SuiteIndex
from hostsetup.sandbox.layout import Mirror

# --- fake signed indexes ----------------------------------------------------------

VERSIONS = {
    "bullseye": {"docker.io": "20.10.5+dfsg1-1+deb11u2", "tini": "0.19.0-1",
                 "libc6": "2.31-13+deb11u11"},
    "bookworm": {"docker.io": "20.10.24+dfsg1-1+deb12u1+b6", "tini": "0.19.0-1+b3",
                 "containerd": "1.6.20~ds1-1+deb12u3", "runc": "1.1.5+ds1-1+deb12u1",
                 "libc6": "2.36-9+deb12u14", "busybox-static": "1:1.35.0-4+deb12u1+b1",
                 "libdevmapper1.02.1": "2:1.02.185-2"},
    "trixie": {"docker.io": "26.1.5+dfsg1-9+deb13u1+b1", "docker-cli": "26.1.5+dfsg1-9+deb13u1+b1",
               "tini": "0.19.0-3+b8", "containerd": "1.7.24~ds1-6+deb13u1",
               "runc": "1.1.15+ds1-2+b4", "libc6": "2.41-12+deb13u5",
               "docker-buildx": "0.13.1+ds1-3", "docker-compose": "2.26.1-4"},
}
DEPENDS = {
    ("bullseye", "docker.io"): "libc6 (>= 2.4), libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0, "
                               "adduser, containerd (>= 1.4~), iptables",
    ("bookworm", "docker.io"): "libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0, "
                               "adduser, containerd (>= 1.4~), iptables, lsb-base",
    ("trixie", "docker.io"): "libc6 (>= 2.34), libsystemd0, adduser, containerd (>= 1.4~)",
    ("trixie", "docker-cli"): "libc6 (>= 2.34)",
    ("bookworm", "containerd"): "runc (>= 0.1.0~), libc6 (>= 2.34)",
    ("bookworm", "runc"): "libc6 (>= 2.34), libseccomp2 (>= 2.5.0)",
    ("trixie", "containerd"): "runc (>= 0.1.0~), libc6 (>= 2.34)",
    ("trixie", "runc"): "libc6 (>= 2.38), libseccomp2 (>= 2.5.0)",
    ("trixie", "docker-buildx"): "libc6 (>= 2.34)",
    ("trixie", "docker-compose"): "libc6 (>= 2.34)",
}


def _pkg(suite: str, name: str, version: str, depends: str | None = None) -> BinaryPackage:
    dep = DEPENDS.get((suite, name), "") if depends is None else depends
    sha = hashlib.sha256(f"{suite}/{name}/{version}".encode()).hexdigest()
    return BinaryPackage(name=name, version=version, arch="amd64",
                         filename=f"pool/main/{name}_{version}_amd64.deb", sha256=sha, size=1,
                         fields={"Package": name, "Version": version, "Depends": dep})


def fake_indexes(overrides: dict[tuple[str, str], BinaryPackage] | None = None
                 ) -> dict[str, SuiteIndex]:
    indexes = {}
    for suite, pkgs in VERSIONS.items():
        packages = {n: _pkg(suite, n, v) for n, v in pkgs.items()}
        for (s, n), pkg in (overrides or {}).items():
            if s == suite:
                packages[n] = pkg
        indexes[suite] = SuiteIndex(suite=suite, arch="amd64", archive="file:///x",
                                    packages=packages)
    return indexes


def _specs(indexes: dict[str, SuiteIndex] | None = None) -> dict[tuple[str, str, str], debs.DebSpec]:
    return {(s.codename, s.name, s.version): s for s in m.plan_packages(indexes or fake_indexes())}


# --- versions ---------------------------------------------------------------------------

@pytest.mark.parametrize(("debian", "upstream"), [
    ("20.10.24+dfsg1-1+deb12u1+b6", "20.10.24"),
    ("1.6.20~ds1-1+deb12u3", "1.6.20"),
    ("0.13.1+ds1-3", "0.13.1"),
    ("2.26.1-4", "2.26.1"),
    ("1:1.35.0-4+deb12u1+b1", "1.35.0"),
    ("2.36-9+deb12u14", "2.36"),
])
def test_upstream_version(debian: str, upstream: str) -> None:
    assert upstream_version(debian) == upstream


def test_official_version_forms() -> None:
    assert debversions.docker_version("20.10.5+dfsg1-1+deb11u2", "bookworm") == \
        "5:20.10.5-1~debian.12~bookworm"
    assert debversions.docker_version("26.1.5+dfsg1-9+deb13u1+b1", "trixie") == \
        "5:26.1.5-1~debian.13~trixie"
    assert debversions.containerd_version("1.6.20~ds1-1+deb12u3") == "1.6.20-1"
    assert debversions.plugin_version("0.13.1+ds1-3", "bookworm") == "0.13.1-1~debian.12~bookworm"


PAIRS = [
    ("5:20.10.24-1~debian.12~bookworm", "5:20.10.5-1~debian.12~bookworm"),
    ("1.0", "1.0~rc1"), ("1.0-1", "1.0"), ("1:0.1", "9.9"), ("2.36", "2.4"),
    ("2.3.2", "2.3"), ("1.0a", "1.0"), ("1.0+b1", "1.0"), ("1.0.0", "1.0"),
    ("2:1.02.97", "2:1.02.185"), ("1.0+b1", "1.0a"), ("1.0.1", "1.0+1"),
    ("1.1.15+ds1-2+b4", "1.1.5+ds1-1+deb12u1"), ("1.0", "1.0"),
]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_compare_versions_agrees_with_dpkg(a: str, b: str) -> None:
    ours = compare_versions(a, b)
    if shutil.which("dpkg"):
        for op, expected in (("gt", ours > 0), ("lt", ours < 0), ("eq", ours == 0)):
            rc = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode
            assert (rc == 0) == expected, (a, op, b)
    theirs = compare_versions(b, a)
    assert (ours > 0, ours == 0, ours < 0) == (theirs < 0, theirs == 0, theirs > 0)


def test_sort_newest_first() -> None:
    assert sort_newest_first(["5:20.10.5-1~d", "5:26.1.5-1~d", "5:20.10.24-1~d"]) == \
        ["5:26.1.5-1~d", "5:20.10.24-1~d", "5:20.10.5-1~d"]


# --- relations ----------------------------------------------------------------------------

def test_parse_relations() -> None:
    assert debversions.parse_relations("a (>= 1), b | c, d:any (<< 2~), e") == \
        [("a", ">= 1"), ("b", ""), ("d", "<< 2~"), ("e", "")]


def test_shlib_depends_keeps_the_strongest_and_only_libs() -> None:
    deps = debversions.shlib_depends(["libc6 (>= 2.34), runc, libseccomp2", "libc6 (>= 2.38), "
                            "libseccomp2 (>= 2.5.0)"], ("libc6", "libseccomp2"))
    assert deps == ["libc6 (>= 2.38)", "libseccomp2 (>= 2.5.0)"]


def test_runs_on() -> None:
    buildx = _pkg("trixie", "docker-buildx", "0.13.1+ds1-3")
    assert debversions.runs_on(buildx, "2.36-9+deb12u14")
    assert not debversions.runs_on(buildx, "2.31-13+deb11u11")
    assert debversions.runs_on(_pkg("x", "static", "1", depends=""), "2.0-1")


# --- the plan --------------------------------------------------------------------------------

def test_plan_versions_and_sources() -> None:
    specs = _specs()
    bw = "5:20.10.24-1~debian.12~bookworm"
    old = "5:20.10.5-1~debian.12~bookworm"
    assert {("bookworm", "docker-ce", bw), ("bookworm", "docker-ce", old),
            ("bookworm", "docker-ce-cli", old), ("bookworm", "containerd.io", "1.6.20-1"),
            ("trixie", "docker-ce", "5:26.1.5-1~debian.13~trixie"),
            ("trixie", "containerd.io", "1.7.24-1"),
            ("bookworm", "docker-buildx-plugin", "0.13.1-1~debian.12~bookworm"),
            ("trixie", "docker-compose-plugin", "2.26.1-1~debian.13~trixie")} <= set(specs)
    assert specs[("bookworm", "docker-ce", old)].sources == {"bullseye/docker.io",
                                                             "bullseye/tini"}
    cli = specs[("trixie", "docker-ce-cli", "5:26.1.5-1~debian.13~trixie")]
    assert cli.sources == {"trixie/docker-cli"}
    assert specs[("bookworm", "docker-ce", bw)].filename == \
        "docker-ce_20.10.24-1~debian.12~bookworm"


def test_plan_depends_follow_the_binaries() -> None:
    specs = _specs()
    ce = dict(specs[("bookworm", "docker-ce", "5:20.10.5-1~debian.12~bookworm")].fields)
    assert ce["Depends"] == ("containerd.io (>= 1.4.1), docker-ce-cli, iptables, "
                             "libseccomp2 (>= 2.3.0), libc6 (>= 2.4), "
                             "libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0")
    assert "docker.io" in ce["Conflicts"] and "docker-engine" in ce["Replaces"]
    trixie = dict(specs[("trixie", "docker-ce", "5:26.1.5-1~debian.13~trixie")].fields)
    assert "libdevmapper" not in trixie["Depends"]
    ctd = dict(specs[("trixie", "containerd.io", "1.7.24-1")].fields)
    assert ctd["Depends"] == "libc6 (>= 2.38), libseccomp2 (>= 2.5.0)"
    assert ctd["Provides"] == ctd["Conflicts"] == ctd["Replaces"] == "containerd, runc"
    assert "Recommends" not in ce


def test_plan_omits_plugins_when_the_glibc_is_too_old() -> None:
    old_libc = {("bookworm", "libc6"): _pkg("bookworm", "libc6", "2.31-13")}
    specs = _specs(fake_indexes(old_libc))
    names = {(c, n) for c, n, _ in specs}
    assert ("bookworm", "docker-buildx-plugin") not in names
    assert ("trixie", "docker-buildx-plugin") in names
    cli = specs[("bookworm", "docker-ce-cli", "5:20.10.24-1~debian.12~bookworm")]
    assert dict(cli.fields)["Recommends"] == ""
    assert "Recommends" not in debs.control_text(cli, "amd64", 1)


def test_plan_rejects_mismatched_cli_and_engine() -> None:
    other = {("trixie", "docker-cli"): _pkg("trixie", "docker-cli", "27.0.1+dfsg1-1")}
    with pytest.raises(MirrorBuildError, match="different releases"):
        m.plan_packages(fake_indexes(other))


def test_control_text() -> None:
    spec = _specs()[("bookworm", "containerd.io", "1.6.20-1")]
    text = debs.control_text(spec, "amd64", 1234)
    lines = text.splitlines()
    assert lines[:3] == ["Package: containerd.io", "Version: 1.6.20-1", "Architecture: amd64"]
    assert "Installed-Size: 1234" in lines
    desc = lines.index("Description: An open and reliable container runtime")
    assert lines[desc + 2] == " ." and all(ln.startswith(" ") for ln in lines[desc + 1:])
    assert text.endswith("\n") and "\n\n" not in text
    assert spec.conffiles == ("/etc/containerd/config.toml",)
    config = next(f.text for f in spec.files if f.dest == "/etc/containerd/config.toml")
    assert 'disabled_plugins = ["cri"]' in (config or "")


def test_units_follow_upstream() -> None:
    spec = _specs()[("trixie", "docker-ce", "5:26.1.5-1~debian.13~trixie")]
    texts = {f.dest: f.text for f in spec.files if f.text}
    service = texts["/lib/systemd/system/docker.service"] or ""
    for line in ("ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/"
                 "containerd.sock", "Requires=docker.socket", "StartLimitBurst=3",
                 "StartLimitInterval=60s", "Restart=always",
                 "Wants=network-online.target containerd.service"):
        assert line in service.splitlines()
    socket = texts["/lib/systemd/system/docker.socket"] or ""
    assert "SocketGroup=docker" in socket and "ListenStream=/run/docker.sock" in socket
    assert {f.dest for f in spec.files} >= {"/usr/bin/dockerd", "/usr/bin/docker-proxy",
                                             "/usr/bin/docker-init"}


# --- recipe hash ---------------------------------------------------------------------------

def test_recipe_hash_is_stable_and_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    base = recipe_hash(m.make_recipe(fake_indexes(), "amd64"))
    assert base == recipe_hash(m.make_recipe(fake_indexes(), "amd64"))
    assert len(base) == 64
    assert base != recipe_hash(m.make_recipe(fake_indexes(), "arm64"))
    rebuilt = {("bookworm", "runc"): _pkg("bookworm", "runc", "1.1.5+ds1-1+deb12u2")}
    assert base != recipe_hash(m.make_recipe(fake_indexes(rebuilt), "amd64"))
    busybox = {("bookworm", "busybox-static"): _pkg("bookworm", "busybox-static", "1:1.35.0-5")}
    assert base != recipe_hash(m.make_recipe(fake_indexes(busybox), "amd64"))
    monkeypatch.setattr(m, "DOCKER_SERVICE", m.DOCKER_SERVICE.replace("Restart=always",
                                                                      "Restart=no"))
    assert base != recipe_hash(m.make_recipe(fake_indexes(), "amd64"))


def test_recipe_hash_covers_scripts_and_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    base = recipe_hash(m.make_recipe(fake_indexes(), "amd64"))
    monkeypatch.setattr(m, "DOCKER_GROUP_SNIPPET", "\t:\n")
    assert base != recipe_hash(m.make_recipe(fake_indexes(), "amd64"))
    monkeypatch.undo()
    monkeypatch.setattr(m, "TINY_IMAGE_OUTPUT", "something else")
    assert base != recipe_hash(m.make_recipe(fake_indexes(), "amd64"))


# --- ELF checks ---------------------------------------------------------------------------

READELF_D = """
Dynamic section at offset 0x4 contains 3 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libsystemd.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
"""
READELF_V = """
Version needs section '.gnu.version_r' contains 1 entry:
 Addr: 0x0  Offset: 0x0  Link: 6 (.dynstr)
  000000: Version: 1  File: libc.so.6  Cnt: 3
  0x0010:   Name: GLIBC_2.3.2  Flags: none  Version: 4
  0x0020:   Name: GLIBC_2.34  Flags: none  Version: 3
  0x0030:   Name: GLIBC_2.4  Flags: none  Version: 2
  0x0040:   Name: GLIBC_PRIVATE  Flags: none  Version: 5
"""


def test_readelf_parsing() -> None:
    assert debs.parse_needed(READELF_D) == ["libsystemd.so.0", "libc.so.6"]
    assert debs.max_glibc(READELF_V) == "2.34"
    assert debs.max_glibc("") == ""


@pytest.mark.skipif(not shutil.which("readelf"), reason="readelf is needed")
def test_check_binaries_uses_the_real_elf(tmp_path: Path) -> None:
    sh = Path(os.path.realpath("/bin/sh"))
    spec = debs.DebSpec(codename="bookworm", name="x", version="1", fields=(),
                     files=(debs.Payload("/usr/bin/x"), debs.Payload("/etc/x", 0o644, text="x")))
    (tmp_path / "usr/bin").mkdir(parents=True)
    shutil.copyfile(sh, tmp_path / "usr/bin/x")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/x").write_text("x")
    debs.check_binaries(spec, tmp_path, "libc6", "9.99")
    with pytest.raises(MirrorBuildError, match="does not cover"):
        debs.check_binaries(spec, tmp_path, "libsystemd0", "9.99")
    with pytest.raises(MirrorBuildError, match="needs GLIBC_"):
        debs.check_binaries(spec, tmp_path, "libc6", "2.0")


# --- scripts ------------------------------------------------------------------------------

def _run_script(text: str, tmp_path: Path, *args: str) -> list[str]:
    """Run a maintainer script with logging stubs for systemctl/getent/groupadd."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "log"
    for tool, rc in (("systemctl", 0), ("getent", 2), ("groupadd", 0)):
        stub = bindir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit {rc}\n')
        stub.chmod(0o755)
    script = tmp_path / "script"
    script.write_text(text)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    subprocess.run(["sh", str(script), *args], env=env, check=True)
    return log.read_text().splitlines() if log.exists() else []


def test_postinst_creates_group_and_enables_units(tmp_path: Path) -> None:
    spec = _specs()[("bookworm", "docker-ce", "5:20.10.24-1~debian.12~bookworm")]
    postinst = dict(spec.scripts)["postinst"]
    assert postinst.startswith("#!/bin/sh\nset -e\n")
    subprocess.run(["sh", "-n"], input=postinst, text=True, check=True)
    calls = _run_script(postinst, tmp_path, "configure", "")
    assert "getent group docker" in calls and "groupadd --system docker" in calls
    assert "systemctl enable docker.socket docker.service" in calls
    if not Path("/run/systemd/system").is_dir():
        assert not any("start" in c for c in calls)


def test_postinst_upgrade_does_not_recreate_group_or_reenable(tmp_path: Path) -> None:
    spec = _specs()[("bookworm", "docker-ce", "5:20.10.24-1~debian.12~bookworm")]
    calls = _run_script(dict(spec.scripts)["postinst"], tmp_path, "configure", "5:20.10.5-1")
    assert not any(c.startswith(("groupadd", "systemctl enable")) for c in calls)


def test_scripts_survive_without_systemctl(tmp_path: Path) -> None:
    spec = _specs()[("trixie", "containerd.io", "1.7.24-1")]
    scripts = dict(spec.scripts)
    env = {"PATH": str(tmp_path)}  # no systemctl, no getent
    sh = shutil.which("sh") or "/bin/sh"
    for name, args in (("postinst", ("configure", "")), ("prerm", ("remove",)),
                       ("postrm", ("remove",))):
        path = tmp_path / name
        path.write_text(scripts[name])
        subprocess.run([sh, str(path), *args], env=env, check=True)


# --- tiny image -----------------------------------------------------------------------------

def test_tiny_image_manifest_config_and_layer(tmp_path: Path) -> None:
    layer = imagetar.layer_tar(b"\x7fELF fake busybox")
    assert layer == imagetar.layer_tar(b"\x7fELF fake busybox")
    files = imagetar.image_files(layer, "hostsetup/tiny:1", "hello there", "amd64")
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["hostsetup/tiny:1"]
    config_bytes = files[manifest[0]["Config"]]
    assert manifest[0]["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    config = json.loads(config_bytes)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Cmd"] == ["/bin/echo", "hello there"]
    assert files[manifest[0]["Layers"][0]] == layer
    layer_id = manifest[0]["Layers"][0].split("/")[0]
    assert json.loads(files["repositories"]) == {"hostsetup/tiny": {"1": layer_id}}
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {t.name: t for t in tar.getmembers()}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/echo"].issym()
    assert members["bin/busybox"].mode == 0o755 and members["bin/busybox"].mtime == 0


def test_write_image_is_deterministic(tmp_path: Path) -> None:
    files = imagetar.image_files(imagetar.layer_tar(b"x"), "a/b:1", "hi", "amd64")
    imagetar.write_image(tmp_path / "one.tar", files)
    imagetar.write_image(tmp_path / "two.tar", files)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "repositories" in names


# --- build_mirror caching (the expensive build is stubbed) -----------------------------

def test_build_mirror_builds_once_per_recipe(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    built: list[Path] = []

    def fake_build(out: Path, recipe: dict[str, object], specs: list[debs.DebSpec],
                   *_: object) -> Mirror:
        built.append(out)
        out.mkdir()
        (out / "mirror.json").write_text(json.dumps({
            "root": "root", "key_fingerprint": "A" * 40, "versions": {},
            "tiny_image": m.TINY_IMAGE, "tiny_image_ref": m.TINY_IMAGE_REF,
            "tiny_image_output": m.TINY_IMAGE_OUTPUT, "recipe_hash": recipe_hash(recipe)}))
        return m._mirror_from_json(out)

    monkeypatch.setattr(debarchive, "dpkg_arch", lambda: "amd64")
    monkeypatch.setattr(m, "_load_indexes", lambda *_: fake_indexes())
    monkeypatch.setattr(m, "_build", fake_build)
    first = m.build_mirror(tmp_path, progress=lambda _: None)
    again = m.build_mirror(tmp_path, progress=lambda _: None)
    assert len(built) == 1 and first == again
    assert first.root == tmp_path / f"mirror-{first.recipe_hash[:12]}" / "root"
    assert first.tiny_image == Path("images/tiny.tar")
    monkeypatch.setattr(m, "CONTAINERD_CONFIG", m.CONTAINERD_CONFIG + "# changed\n")
    changed = m.build_mirror(tmp_path, progress=lambda _: None)
    assert len(built) == 2 and changed.recipe_hash != first.recipe_hash


def test_prune_keeps_only_the_new_mirror(tmp_path: Path) -> None:
    for name in ("mirror-aaaaaaaaaaaa", "mirror-bbbbbbbbbbbb", ".mirror-cccc.tmp", "debian"):
        (tmp_path / name).mkdir()
    (tmp_path / ".mirror.lock").write_text("")
    m._prune(tmp_path / "mirror-bbbbbbbbbbbb")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mirror.lock", "debian",
                                                          "mirror-bbbbbbbbbbbb"]
