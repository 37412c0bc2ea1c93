"""Unit tests for the EL rehearsal: RPM specs and repository layout, EL images, rpm commands and holds.

The EL rehearsal hosts are a Debian userland answering as EL (see hostsetup.sandbox.images);
these tests cover the pure parts that build them and the RHEL-family code they exercise.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from hostsetup.distros import parse_os_release, resolve_platform
from hostsetup.host.packages import VERSIONLOCK_LISTS, rpm_pin, versionlocked
from hostsetup.operations import InstallPackages
from hostsetup.plan import _held
from hostsetup.sandbox import debarchive, images
from hostsetup.sandbox import rpmrepo as r
from hostsetup.sandbox.buildtools import MirrorBuildError, recipe_hash
from hostsetup.sandbox.engine import SandboxError
from hostsetup.sandbox.layout import Mirror
from tests.unit.test_plan import synthetic

DEBS = {
    "docker-ce": ["5:20.10.24-1~debian.12~bookworm", "5:20.10.5-1~debian.12~bookworm"],
    "docker-ce-cli": ["5:20.10.24-1~debian.12~bookworm", "5:20.10.5-1~debian.12~bookworm"],
    "containerd.io": ["1.6.20-1"],
    "docker-buildx-plugin": ["0.13.1-1~debian.12~bookworm"],
    "docker-compose-plugin": ["2.26.1-1~debian.12~bookworm"],
}


def by_name(specs: list[r.RpmSpec], releasever: str) -> dict[str, list[r.RpmSpec]]:
    found: dict[str, list[r.RpmSpec]] = {}
    for spec in specs:
        if spec.releasever == releasever:
            found.setdefault(spec.name, []).append(spec)
    return found


# --- the plan --------------------------------------------------------------------------

def test_engine_rpms_have_dockers_names_epochs_and_versions() -> None:
    engine, cli = r.engine_rpms("5:20.10.24-1~debian.12~bookworm", "9")
    assert (engine.name, engine.evr) == ("docker-ce", "3:20.10.24-1.el9")
    assert (cli.name, cli.evr) == ("docker-ce-cli", "1:20.10.24-1.el9")
    assert engine.payload == "docker-ce_20.10.24-1~debian.12~bookworm"
    assert "docker" in engine.conflicts and "containerd.io >= 1.4.1" in engine.requires
    assert not engine.noarch and not cli.noarch
    assert r.containerd_rpm("1.6.20-1", "7").evr == "1.6.20-3.1.el7"
    assert r.plugin_rpm("docker-compose-plugin", "2.26.1-1~debian.12~bookworm", "9").evr == "2.26.1-1.el9"


def test_engine_rpm_does_not_start_the_service() -> None:
    engine, _ = r.engine_rpms("5:20.10.5-1~debian.12~bookworm", "7")
    scripts = dict(engine.scripts)
    assert "preset docker.service" in scripts["post"] and "groupadd --system docker" in scripts["post"]
    assert "start" not in scripts["post"] and "enable" not in scripts["post"]
    assert "disable --now" in scripts["preun"] and "try-restart docker.service" in scripts["postun"]


def test_containerd_io_replaces_runc_like_the_real_package() -> None:
    spec = r.containerd_rpm("1.6.20-1", "9")
    assert {"runc", "containerd"} <= set(spec.provides) & set(spec.obsoletes) & set(spec.conflicts)


def test_plan_has_every_package_for_7_and_9_and_the_fixtures() -> None:
    specs = r.plan_rpms(DEBS, "4.3.1-3")
    for releasever, plugin in (("7", "yum-plugin-versionlock"), ("9", "python3-dnf-plugin-versionlock")):
        names = by_name(specs, releasever)
        assert [s.evr for s in names["docker-ce"]] == [f"3:20.10.24-1.el{releasever}",
                                                       f"3:20.10.5-1.el{releasever}"]
        assert {"docker", "docker-common", "podman", "runc", plugin} <= set(names)
        assert all(s.repo == r.FIXTURES_PATH for n in ("docker", "runc", plugin) for s in names[n])
        assert all(s.repo == "stable" for s in names["docker-ce-cli"])


def test_plan_refuses_an_engine_without_its_cli() -> None:
    with pytest.raises(MirrorBuildError, match="no docker-ce-cli"):
        r.plan_rpms({**DEBS, "docker-ce-cli": DEBS["docker-ce-cli"][:1]}, "4.3.1-3")


def test_versionlock_plugin_lives_where_each_manager_reads_it() -> None:
    el7, el9 = r.versionlock_rpm("4.3.1-3", "7"), r.versionlock_rpm("4.3.1-3", "9")
    assert {f.dest for f in el7.files} >= {"/etc/yum/pluginconf.d/versionlock.conf", VERSIONLOCK_LISTS["yum"]}
    assert {f.dest for f in el9.files} >= {"/etc/dnf/plugins/versionlock.conf", VERSIONLOCK_LISTS["dnf"]}
    plugin = next(f for f in el9.files if f.dest.endswith("versionlock.py"))
    assert plugin.source == f"dnf-plugins-core_4.3.1-3/{r.PLUGIN_FILE}"


def test_versions_sort_by_upstream_numbers() -> None:
    assert r.newest_first(["3:20.10.5-1.el9", "3:20.10.24-1.el9", "3:20.10.5-1.el9"]) == [
        "3:20.10.24-1.el9", "3:20.10.5-1.el9"]


def test_recipe_changes_with_the_specs() -> None:
    mirror = Mirror(root=Path("/m/root"), key_fingerprint="A" * 40, versions={}, tiny_image=Path("t"),
                      tiny_image_ref="x", tiny_image_output="y", recipe_hash="abc", arch="amd64")
    plugins = debarchive.BinaryPackage("dnf-plugins-core", "4.3.1-3", "all", "f", "0" * 64, 1, {})
    specs = r.plan_rpms(DEBS, plugins.version)
    one = recipe_hash(r.make_recipe(mirror, specs, plugins))
    assert one == recipe_hash(r.make_recipe(mirror, specs, plugins))
    assert one != recipe_hash(r.make_recipe(mirror, specs[1:], plugins))
    assert one != recipe_hash(r.make_recipe(dataclasses.replace(mirror, recipe_hash="abd"), specs, plugins))


# --- spec files and payloads ------------------------------------------------------------------

def test_spec_text_declares_everything() -> None:
    engine, _ = r.engine_rpms("5:20.10.24-1~debian.12~bookworm", "9")
    spec = dataclasses.replace(engine, description="100% repacked", files=(
        r.RpmFile("/etc/docker/x.conf", text="a", config=True),))
    text = r.spec_text(spec, {"/usr/bin/dockerd": "/src/dockerd", "/etc/docker/x.conf": "/src/x"},
                       [r.RpmFile("/usr/bin/dockerd", 0o755, source="k/usr/bin/dockerd")])
    assert "Epoch: 3\nVersion: 20.10.24\nRelease: 1.el9\n" in text
    assert "Requires: containerd.io >= 1.4.1\n" in text and "Conflicts: docker\n" in text
    assert "100%% repacked" in text and "BuildArch" not in text and "AutoReqProv" not in text
    assert "install -D -m 0755 /src/dockerd %{buildroot}/usr/bin/dockerd\n" in text
    assert "%attr(0755,root,root) /usr/bin/dockerd\n" in text
    assert "%config(noreplace) %attr(0644,root,root) /etc/docker/x.conf\n" in text
    assert "\n%post\nif [ $1 -eq 1 ] ; then\n" in text and "%global __os_install_post %{nil}" in text


def test_payload_files_move_lib_to_usr_lib_and_mark_etc_as_config(tmp_path: Path) -> None:
    for member, mode in (("usr/bin/containerd", 0o755), ("lib/systemd/system/containerd.service", 0o644),
                         ("etc/containerd/config.toml", 0o644)):
        (tmp_path / member).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / member).write_text("x")
        (tmp_path / member).chmod(mode)
    files = {f.dest: f for f in r.payload_files(tmp_path, "key")}
    assert set(files) == {"/usr/bin/containerd", "/usr/lib/systemd/system/containerd.service",
                          "/etc/containerd/config.toml"}
    assert files["/usr/bin/containerd"].mode == 0o755 and files["/etc/containerd/config.toml"].config
    assert files["/usr/lib/systemd/system/containerd.service"].source == "key/lib/systemd/system/containerd.service"


def test_link_serves_the_tree_under_the_mirror_base_and_prune_keeps_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "linux" / "debian").mkdir(parents=True)
    for tree in ("rpm-aaaaaaaaaaaa", "rpm-bbbbbbbbbbbb", ".rpm-bbbbbbbbbbbb.tmp"):
        (root / tree).mkdir()
    (tmp_path / "rpm-aaaaaaaaaaaa.json").write_text("{}")
    r._link(root, "rpm-aaaaaaaaaaaa")
    r._link(root, "rpm-bbbbbbbbbbbb")
    assert os.readlink(root / "linux" / "centos") == "../rpm-bbbbbbbbbbbb/linux/centos"
    assert os.readlink(root / "el-fixtures") == "rpm-bbbbbbbbbbbb/el-fixtures"
    r._prune(root, "rpm-bbbbbbbbbbbb")
    assert sorted(p.name for p in root.iterdir()) == ["el-fixtures", "linux", "rpm-bbbbbbbbbbbb"]
    assert not (tmp_path / "rpm-aaaaaaaaaaaa.json").exists()
    other = tmp_path / "other"
    (other / "linux" / "rhel").mkdir(parents=True)
    with pytest.raises(MirrorBuildError, match="not the EL rehearsal"):
        r._link(other, "rpm-bbbbbbbbbbbb")


# --- EL images ---------------------------------------------------------------------------------

def test_el_recipes_answer_as_rocky_9_and_centos_7() -> None:
    for flavor, distro, version, manager in (("rocky9", "centos", "9", "dnf"), ("centos7", "centos", "7", "yum")):
        el = images.RECIPES[flavor].el
        assert el is not None and el.manager == manager
        platform = resolve_platform(parse_os_release(el.os_release))
        assert (platform.distro.repo_path, platform.version, platform.package_manager) == (distro, version, manager)
        assert "rehearsal" in platform.name.lower()
    assert images.RECIPES["debian12"].el is None
    assert len({recipe.tag for recipe in images.RECIPES.values()}) == len(images.RECIPES)


def test_base_rpm_declares_the_debian_userland_honestly() -> None:
    el = images.ROCKY9
    versions = {deb: "1.0" for _, deb, _ in el.capabilities} | {"libseccomp2": "2.5.4"}
    spec = images.base_rpm(el, versions, ["libc.so.6()(64bit)"])
    assert spec.name == "el-rehearsal-base" and not spec.auto_deps and not spec.files
    assert {"libseccomp = 2.5.4", "system-release(releasever) = 9", "/bin/sh", "libc.so.6()(64bit)"} <= set(
        spec.provides)
    assert "Debian libseccomp2 2.5.4" in spec.description
    with pytest.raises(SandboxError, match="not installed: libseccomp2"):
        images.base_rpm(el, {k: v for k, v in versions.items() if k != "libseccomp2"}, [])


# --- rpm commands and holds ----------------------------------------------------------------------

def test_rpm_pins_leave_the_epoch_out_because_the_cli_has_another() -> None:
    assert rpm_pin("3:20.10.24-1.el9") == "20.10.24-1.el9"
    op = InstallPackages("dnf", ("docker-ce", "docker-ce-cli", "containerd.io"), "/etc/yum.repos.d/docker-ce.repo",
                         "20.10", "3:20.10.24-1.el9")
    command = op.transaction_command(op.version)
    assert ("dnf install -y --setopt=exit_on_lock=True --allowerasing --disableplugin=versionlock "
            "docker-ce-20.10.24-1.el9 "
            "docker-ce-cli-20.10.24-1.el9 containerd.io") in command
    assert "dnf downgrade -y --setopt=exit_on_lock=True --disableplugin=versionlock docker-ce-20.10.24-1.el9" \
        in command
    assert "if dnf versionlock list" in command  # an existing lock follows the new version


def test_yum_hold_replaces_the_lock_after_a_version_change() -> None:
    op = InstallPackages("yum", ("docker-ce", "docker-ce-cli"), "/etc/yum.repos.d/docker-ce.repo", "20.10",
                         "3:20.10.5-1.el7", hold=True)
    command = op.transaction_command(op.version)
    assert command.startswith("(yum install -y --setopt=exit_on_lock=True --disableplugin=versionlock "
                              "docker-ce-20.10.5-1.el7 ")
    assert command.endswith("&& yum versionlock delete docker-ce docker-ce-cli >/dev/null && "
                            "yum versionlock add docker-ce docker-ce-cli")
    unpinned = dataclasses.replace(op, pin=None, version=None)
    assert unpinned.transaction_command(None) == ("yum install -y --setopt=exit_on_lock=True docker-ce docker-ce-cli"
                                                   " && yum versionlock add docker-ce docker-ce-cli")


def test_versionlocked_reads_dnf_and_yum_entries() -> None:
    dnf = "# Added lock\ndocker-ce-3:20.10.5-1.el9.*\n\ndocker-ce-cli-1:20.10.5-1.el9.*\n!podman-0:4.9-1.*\n"
    yum = "3:docker-ce-20.10.5-1.el7.*\n1:docker-ce-cli-20.10.5-1.el7.*\n"
    assert versionlocked(dnf) == versionlocked(yum) == {"docker-ce", "docker-ce-cli"}
    assert versionlocked("docker-ce-cli-1:20.10.5-1.el9.*\n") == {"docker-ce-cli"}


@pytest.mark.parametrize(("os_name", "manager"), [("rocky9", "dnf"), ("centos7", "yum")])
def test_held_needs_both_packages_in_the_managers_own_list(os_name: str, manager: str) -> None:
    facts = synthetic(os_name)
    platform = resolve_platform(facts.os_release)
    both = "docker-ce-3:20.10.5-1.el9.*\ndocker-ce-cli-1:20.10.5-1.el9.*\n"
    own, other = VERSIONLOCK_LISTS[manager], VERSIONLOCK_LISTS["yum" if manager == "dnf" else "dnf"]
    assert _held(platform, dataclasses.replace(facts, files={**facts.files, own: both}))
    assert not _held(platform, dataclasses.replace(facts, files={**facts.files, other: both}))
    cli_only = "docker-ce-cli-1:20.10.5-1.el9.*\n"
    assert not _held(platform, dataclasses.replace(facts, files={**facts.files, own: cli_only}))
