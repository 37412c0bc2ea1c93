"""Every repository preset, for real: inside the sandbox each preset's host name resolves to the
sandbox mirror, which answers over HTTPS (a certificate from the sandbox CA, trusted by the hosts)
under that preset's own path layout and nowhere else. ``install`` with no ``--mirror`` (Docker's
repository, the default) and with every other preset converges a host and passes its own verify.

Only Docker's signing key cannot be had: the sandbox's packages are signed with the sandbox key,
so ``--key-fingerprint`` names it."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from hostsetup.mirrors import PRESETS
from tests.e2e.conftest import only_host, ssh, steps_with

CODENAMES = {"debian12": "bookworm", "debian13": "trixie"}
# The default first (no --mirror), then every other preset in turn on the same host.
ORDER = ["official", *sorted(p for p in PRESETS if p != "official")]


def served(requests: list[str], preset: str, path: str) -> bool:
    """Whether the mirror answered ``path`` (below the preset's prefix) over HTTPS under the preset's name."""
    url = urlparse(PRESETS[preset])
    return f"https {url.hostname} GET {url.path.rstrip('/')}{path} 200" in requests


def mirror_arg(preset: str) -> str:
    return "" if preset == "official" else preset  # "": no --mirror at all, as a new user types it


@pytest.mark.parametrize("flavor", sorted(CODENAMES))
def test_default_and_every_preset_install_and_verify(sandbox, mirror, cli, fresh_hosts, flavor) -> None:
    host = fresh_hosts(flavor)[0]
    codename = CODENAMES[flavor]
    for preset in ORDER:
        seen = len(mirror.requests())
        code, report, out = cli(host, "--users", "hostsetup", mirror_url=mirror_arg(preset), verify=True)
        assert code == 0, (preset, out)
        assert only_host(report)["status"] == "changed", (preset, out)
        assert "repository" in steps_with(report, "changed"), (preset, out)
        assert f"{host.hostname}  passed" in out, (preset, out)  # verify expected what install wrote
        with ssh(sandbox, host) as c:
            sources = c.run("cat /etc/apt/sources.list.d/docker.sources", hide=True).stdout
        assert sources.startswith(f"# Managed by hostsetup: Docker CE repository ({preset}).\n"), sources
        assert f"URIs: {PRESETS[preset]}/linux/debian\n" in sources, sources
        requests = mirror.requests()[seen:]
        assert served(requests, preset, f"/linux/debian/dists/{codename}/InRelease"), (preset, requests)
        if preset == "official":  # the fresh install: key and packages from download.docker.com itself
            assert served(requests, preset, "/linux/debian/gpg"), requests
            assert any(r.startswith("https download.docker.com GET /linux/debian/dists/") and
                       "/pool/stable/" in r and r.endswith(".deb 200") for r in requests), requests
    # Converged on the last preset: a second run changes nothing, in one SSH session.
    code, report, out = cli(host, "--users", "hostsetup", mirror_url=ORDER[-1])
    assert code == 0 and only_host(report)["status"] == "ok", out
    assert only_host(report)["ssh_sessions"] == 1
