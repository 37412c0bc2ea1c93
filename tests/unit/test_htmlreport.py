"""The --html page: self-contained, every host a row, failures expanded with the error and the fix,
findings with evidence, secrets masked, text escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hostsetup import secrets
from hostsetup.apply import StepResult
from hostsetup.run.fleet import HostReport
from hostsetup.run.htmlreport import kind_of, render_html

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _hosts() -> list[dict]:
    ok = HostReport("web1", "Debian GNU/Linux 12 (bookworm)", engine="20.10.24", status="ok", seconds=0.4,
                    steps=[StepResult("key", "ok", "in place"), StepResult("daemon", "ok", "up to date")])
    changed = HostReport("web2", "Debian GNU/Linux 13 (trixie)", engine="26.1.5", status="changed", seconds=3.2,
                         steps=[StepResult("daemon", "changed", "set log-format; restart docker", 1.25)])
    failed = HostReport("db<1>", "Rocky Linux 9", status="failed", seconds=2.0,
                        error="daemon: log-format needs engine 25.0; this host runs 20.10 (rerun with --replace?)",
                        steps=[StepResult("daemon", "failed", "set log-format", 0.5,
                                          "log-format needs engine 25.0 & <b>not</b> 20.10")],
                        warnings=["the docker group is root-equivalent"])
    unreachable = HostReport("root@127.0.0.1:1", status="failed", error="cannot connect: [Errno 111] refused")
    return [r.as_dict() for r in (ok, changed, failed, unreachable)]


def test_every_host_is_a_row_and_failures_are_expanded() -> None:
    page = render_html("configure", _hosts(), NOW)
    assert page.count('<tr class="host"') == 4
    assert re.search(r'<tr class="details open" data-for="2">.*log-format needs engine 25.0', page, re.S)
    assert "&lt;b&gt;not&lt;/b&gt;" in page and "<b>not</b>" not in page  # escaped, never markup
    assert "db&lt;1&gt;" in page and "20.10.24" in page and "26.1.5" in page
    assert "set log-format; restart docker" in page and "1.2s" in page
    assert 'class="ok" style="width:25.00%">1<' in page and 'class="failed" style="width:50.00%">2<' in page
    assert "warning: the docker group is root-equivalent" in page


def test_the_page_is_self_contained() -> None:
    page = render_html("install", _hosts(), NOW)
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)
    assert "<script>" in page and "<style>" in page and "@import" not in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_doctor_findings_show_evidence_and_fix_and_verify_checks_their_message() -> None:
    doctor = {"host": "h1", "system": "Debian 12", "engine": "20.10", "status": "unhealthy", "error": "",
              "seconds": 0.8, "findings": [{"code": "CONFIG_INVALID_VALUE", "summary": "bip is invalid",
                                            "evidence": ["invalid CIDR address: 300.0.0.1/24 (logged 3 times)"],
                                            "fix": "hostsetup doctor --fix", "command": ""}],
              "fixes": {"steps": [], "manual": [], "notes": []}}
    verify = {"host": "h2", "status": "failed", "seconds": 2.5, "error": "",
              "checks": [{"name": "test_daemon_json", "status": "failed", "message": "expected x, found y"},
                         {"name": "test_socket", "status": "passed", "message": ""}]}
    page = render_html("doctor", [doctor, verify], NOW)
    assert "CONFIG_INVALID_VALUE" in page and "invalid CIDR address: 300.0.0.1/24" in page
    assert "fix: <code>hostsetup doctor --fix</code>" in page
    assert "test_daemon_json: expected x, found y" in page or "expected x, found y" in page
    assert kind_of("unhealthy") == "failed" and kind_of("healthy") == "ok" and kind_of("not started") == "other"


def test_secrets_are_masked() -> None:
    secrets.register("hunter2-registry")
    host = {"host": "h", "status": "failed", "error": "login failed for deploy:hunter2-registry@reg",
            "seconds": 1, "steps": []}
    assert "hunter2-registry" not in render_html("login", [host], NOW)
