"""Security on real hosts: a proxy password never shows in the host's process list, never lands in
a world-readable file or a stray copy, never in hostsetup's output or report; a repository key file
that holds Docker's key plus another is refused by verify and replaced by install."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time

import pytest

from tests.e2e.conftest import ssh, steps_with

SECRET = "Pr0xy-S3cret-e2e"
PROXY_FILE = {"debian12": "/etc/systemd/system/docker.service.d/http-proxy.conf",  # 20.10: a drop-in
              "debian13": "/etc/docker/daemon.json"}                                # 26.1: daemon.json


def shows_secret(text: str) -> bool:
    """The secret in plain text, or inside any base64 blob (how file contents used to travel)."""
    if SECRET in text:
        return True
    for blob in re.findall(r"[A-Za-z0-9+/]{24,}={0,2}", text):
        for start in range(4):
            chunk = blob[start:]
            try:
                if SECRET.encode() in base64.b64decode(chunk[: len(chunk) // 4 * 4]):
                    return True
            except (binascii.Error, ValueError):
                continue
    return False


@pytest.mark.parametrize("flavor", sorted(PROXY_FILE))
def test_proxy_password_stays_secret_and_key_file_must_hold_only_the_key(sandbox, mirror, cli, fresh_hosts,
                                                                         flavor, tmp_path) -> None:
    host = fresh_hosts(flavor)[0]
    code, _, out = cli(host, "--users", "hostsetup")
    assert code == 0, out

    samples: list[str] = []
    stop = threading.Event()

    def watch_process_list() -> None:  # what any user of the host sees with ps, all through the run
        with ssh(sandbox, host) as c:
            while not stop.is_set():
                samples.append(c.run("ps -eo args", hide=True).stdout)
                time.sleep(0.02)

    watcher = threading.Thread(target=watch_process_list)
    watcher.start()
    try:
        code, report, out = cli(host, "--set", f'proxies={{"https-proxy": "http://user:{SECRET}@proxy.example:3128"}}',
                                task="configure")
    finally:
        stop.set()
        watcher.join()
    assert code == 0, out
    assert len(samples) >= 5 and any("sh -s" in s for s in samples), len(samples)  # sampled while it ran
    assert not any(shows_secret(s) for s in samples)
    assert not shows_secret(out) and not shows_secret(json.dumps(report))
    path = PROXY_FILE[flavor]
    with ssh(sandbox, host, "root") as c:
        assert c.run(f"stat -c %a {path}", hide=True).stdout.strip() == "600"
        assert SECRET in c.run(f"cat {path}", hide=True).stdout  # there, for root only
        found = c.run(f"grep -rl {SECRET} /tmp /var/tmp /etc /root /home 2>/dev/null || true", hide=True).stdout
        assert found.split() == [path]  # no stray copy anywhere (backups under /var/backups are 0700)

    # Docker's key plus an attacker's in the key file: apt would trust both.
    from tests.unit.test_openpgp import make_key

    evil, _ = make_key(tmp_path / "evil", "ed25519", "Attacker <x@example.invalid>")
    with ssh(sandbox, host, "root") as c:
        c.run(f"printf '%s' '{evil.decode()}' >> /etc/apt/keyrings/docker.asc", hide=True)
    code, report, out = cli(host, task="verify")
    assert code == 1, out
    failed = [ch for ch in report["hosts"][0]["checks"] if ch["status"] == "failed"]
    assert [ch["name"] for ch in failed] == ["test_repository_key_fingerprint"], out
    assert "other keys besides the expected one" in failed[0]["message"]
    code, report, out = cli(host, "--users", "hostsetup")
    assert code == 0 and steps_with(report, "changed")[:1] == ["key"], out
    assert cli(host, task="verify")[0] == 0
