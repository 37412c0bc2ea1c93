"""Install settings and mirror presets: validated before any host is touched."""

from __future__ import annotations

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
    assert install_settings({"version": "5:20.10.24-1~debian.12~bookworm"}).version.startswith("5:")
