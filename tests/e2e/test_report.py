"""``--html``: the report of a real fleet run with mixed results (changed, ok, failed on a real host,
three hosts that do not answer) loaded from its file in a real browser (Debian's headless Chromium,
in a network namespace of its own: the page needs nothing from any network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hostsetup.sandbox.engine import ensure_tools
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror
from tests.e2e.conftest import run_hostsetup

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "fleet-report.png"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network at all (``unshare -n``: only a loopback that is down)."""
    ensure_tools(tools={"chromium": "chromium"}, purpose="the HTML report's browser test")
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to keep the browser off the network")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostsetup-chromium-{os.getpid()}"
    home.mkdir(exist_ok=True)
    cmd = ["unshare", "-n", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={home}", "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_mixed_fleet_report_renders_in_a_browser(sandbox: Sandbox, mirror: SandboxMirror,
                                                   trio: list[SandboxHost], tmp_path: Path) -> None:
    first, modern, second = trio  # debian12, debian13, debian12
    code, out = run_hostsetup(sandbox, mirror, [modern.hostname], "configure", "--set", "log-format=json")
    assert code == 0, out  # so that the fleet run finds it done
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(json.dumps({"hosts": {
        first.hostname: {"daemon": {"settings": {"debug": True}}},            # changed
        modern.hostname: {"daemon": {"settings": {"log-format": "json"}}},    # ok: already so
        second.hostname: {"daemon": {"settings": {"log-format": "json"}}},    # failed: engine 20.10 has no log-format
        **{f"down-{n}": {"host": "127.0.0.1", "port": port, "user": "root"}   # failed: nothing listens there
           for n, port in ((1, 1), (2, 9), (3, 7))},
    }}))
    page, report = tmp_path / "report.html", tmp_path / "report.json"
    proc = subprocess.run(
        [*run_args(sandbox), "--inventory", str(inventory), "configure", "--html", str(page), "--json", str(report)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HOSTSETUP_INSTALL_KEY_FINGERPRINT": mirror.build.key_fingerprint})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    statuses = {h["host"]: h["status"] for h in json.loads(report.read_text())["hosts"]}
    assert statuses == {first.hostname: "changed", modern.hostname: "ok", second.hostname: "failed",
                        "down-1": "failed", "down-2": "failed", "down-3": "failed"}, statuses
    assert oct(page.stat().st_mode & 0o777) == "0o600"

    rendered = chromium("--dump-dom", page.as_uri())
    dom = rendered.stdout
    assert 'data-ready="1"' in dom, rendered.stderr[-2000:]
    assert "6 of 6 hosts shown" in dom
    rows = re.findall(r'<tr class="host" data-kind="(\w+)"[^>]*><td>([^<]+)</td>', dom)
    assert sorted(rows) == sorted([("changed", first.hostname), ("ok", modern.hostname), ("failed", second.hostname),
                                   ("failed", "down-1"), ("failed", "down-2"), ("failed", "down-3")])
    assert "log-format" in dom and "25.0" in dom   # the failure, expanded, with its reason
    assert "cannot connect" in dom
    assert dom.count('class="details open"') >= 4  # each failed host's error shown without a click
    assert re.search(r">debian13-\d+</td><td>Debian GNU/Linux 13 \(trixie\)</td><td>26\.", dom)
    assert re.search(rf">{second.hostname}</td><td>Debian GNU/Linux 12 \(bookworm\)</td><td>20\.10", dom)

    filtered = chromium("--dump-dom", page.as_uri() + "#failed").stdout
    assert "4 of 6 hosts shown" in filtered

    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1280,760", "--hide-scrollbars", page.as_uri())
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", taken.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("UPDATE_REPORT_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def run_args(sandbox: Sandbox) -> list[str]:
    import sys

    return [sys.executable, "-m", "hostsetup", "-S", str(sandbox.ssh_config_path)]


def test_verify_and_doctor_write_the_page_too(sandbox: Sandbox, mirror: SandboxMirror, trio: list[SandboxHost],
                                               tmp_path: Path) -> None:
    names = [h.hostname for h in trio]
    checked, diagnosed = tmp_path / "verify.html", tmp_path / "doctor.html"
    code, out = run_hostsetup(sandbox, mirror, names, "verify", "--html", str(checked))
    assert code in (0, 1) and checked.exists(), out
    code, out = run_hostsetup(sandbox, mirror, names, "doctor", "--html", str(diagnosed))
    assert code == 0 and diagnosed.exists(), out  # healthy hosts
    for page, kinds in ((checked, {"ok", "failed"}), (diagnosed, {"ok"})):
        dom = chromium("--dump-dom", page.as_uri()).stdout
        assert "3 of 3 hosts shown" in dom
        rows = re.findall(r'<tr class="host" data-kind="(\w+)"[^>]*><td>([^<]+)</td>', dom)
        assert sorted(name for _, name in rows) == sorted(names) and {k for k, _ in rows} <= kinds, rows
    assert "test_service_running_and_enabled" in checked.read_text()
