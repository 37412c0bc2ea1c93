"""Install settings and mirror presets: validated before any host is touched."""

from __future__ import annotations

import json

import pytest

from hostsetup.mirrors import PRESETS, MirrorError, resolve_mirror
from hostsetup.settings import SettingsError, install_settings


def test_defaults_use_the_official_repository() -> None:
    s = install_settings({})
    assert (s.mirror_name, s.mirror_url) == ("official", "https://download.docker.com")
    assert s.version is None and s.key_fingerprint is None and s.plugins and not s.hold


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_https(name: str) -> None:
    assert resolve_mirror(name)[1].startswith("https://")


def test_custom_url_and_plain_http_needs_insecure() -> None:
    assert resolve_mirror("https://mirror.example/docker-ce/") == ("custom", "https://mirror.example/docker-ce")
    with pytest.raises(MirrorError, match="insecure"):
        resolve_mirror("http://mirror.example/docker-ce")
    assert resolve_mirror("http://mirror.example", insecure=True)[1] == "http://mirror.example"
    with pytest.raises(MirrorError, match="neither a preset"):
        resolve_mirror("aliyunn")


def test_users_from_comma_string_and_fingerprint_normalized() -> None:
    s = install_settings({"users": "alice, bob",
                          "key_fingerprint": "9DC8 5822 9FC7 DD38 854A  E2D8 8D81 803C 0EBF CD88"})
    assert s.users == ("alice", "bob")
    assert s.key_fingerprint == "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"


@pytest.mark.parametrize(("raw", "message"), [
    ({"version": "latest"}, "neither a short version"),
    ({"users": ["Bad User"]}, "not a valid user name"),
    ({"key_fingerprint": "0EBFCD88"}, "not an OpenPGP fingerprint"),
    ({"mirorr": "tuna"}, "unknown install setting"),
])
def test_bad_settings_are_refused(raw, message) -> None:
    with pytest.raises(SettingsError, match=message):
        install_settings(raw)


def test_exact_and_short_versions_accepted() -> None:
    assert install_settings({"version": "25.0"}).version == "25.0"
    exact = install_settings({"version": "5:20.10.24-1~debian.12~bookworm"}).version
    assert exact is not None and exact.startswith("5:")


# --- verify expects exactly what install did ------------------------------------------------

PLATFORMS = {
    "debian12": {"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"},
    "ubuntu24": {"ID": "ubuntu", "VERSION_ID": "24.04", "VERSION_CODENAME": "noble"},
    "rocky9": {"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4"},
    "centos7": {"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "7"},
}
MIRRORS = [*sorted(PRESETS), "https://mirror.internal/docker-ce", "http://mirror.sandbox.internal"]


@pytest.mark.parametrize("system", sorted(PLATFORMS))
@pytest.mark.parametrize("mirror", MIRRORS)
def test_verify_expects_exactly_what_install_planned(system: str, mirror: str) -> None:
    """The checks read back (through JSON, as the pytest process does) the very settings
    install used: the same repository file, header naming the preset, the same key."""
    from hostsetup.checks.test_docker_host import settings as checks_settings
    from hostsetup.distros import resolve_platform
    from hostsetup.plan import key_fingerprints, repo_file_content
    from hostsetup.run.verify import expected_state

    installed = install_settings({"mirror": mirror, "insecure_mirror": mirror.startswith("http://"),
                                  "key_fingerprint": "9DC858229FC7DD38854AE2D88D81803C0EBFCD88" if "internal" in mirror
                                  else "", "version": "25.0", "hold": True, "users": "deploy,ops"})
    expected = json.loads(json.dumps(expected_state(installed, None, smoke=False)))
    verified = checks_settings(expected)
    assert verified == installed
    platform = resolve_platform(PLATFORMS[system])
    written = repo_file_content(platform, "amd64", installed)
    assert repo_file_content(platform, "amd64", verified) == written
    name = mirror if mirror in PRESETS else "custom"
    assert written.startswith(f"# Managed by hostsetup: Docker CE repository ({name}).")
    assert key_fingerprints(platform, verified) == key_fingerprints(platform, installed)


# --- nothing injectable, booleans parsed strictly ---------------------------------------------

@pytest.mark.parametrize("url", [
    "https://mirror.example/docker-ce\nTypes: deb\nURIs: https://evil.example\nTrusted: yes",
    "https://mirror.example/docker ce", "https://mirror.example/\tx", "https://mirror.example/\"x",
    "https://mirror.example/x\r", "https://mirror.example/\x00",
])
def test_mirror_urls_with_whitespace_or_control_characters_are_refused(url: str) -> None:
    with pytest.raises(MirrorError, match="never holds unencoded"):
        resolve_mirror(url)


@pytest.mark.parametrize(("raw", "message"), [
    ({"users": ["deploy\n"]}, "not a valid user name"),
    ({"users": "deploy\nroot"}, "not a valid user name"),
    ({"version": "25.0; rm -rf /"}, "neither a short version"),
])
def test_names_and_versions_are_matched_whole(raw, message) -> None:
    with pytest.raises(SettingsError, match=message):
        install_settings(raw)


@pytest.mark.parametrize(("value", "result"), [
    (True, True), (False, False), ("false", False), ("False", False), ("no", False), ("0", False), ("off", False),
    ("", False), ("true", True), ("YES", True), ("1", True), (1, True), (0, False),
])
def test_booleans_are_parsed_strictly(value, result) -> None:
    assert install_settings({"hold": value, "insecure_mirror": value, "mirror": "http://m.example"}
                            if result else {"hold": value}).hold is result


@pytest.mark.parametrize("value", ["maybe", "nope", "2", 2, [1], {"a": 1}])
def test_a_value_that_is_not_a_boolean_is_refused(value) -> None:
    with pytest.raises(SettingsError, match="is not a boolean"):
        install_settings({"hold": value})
