"""Record facts output from real sandbox hosts in known states, for the unit tests.

Run from the repository root: ``python3 -m tests.tools.record_facts``. Writes
``tests/unit/data/facts/<flavor>-<state>.txt`` (the raw output of the facts
script run as the sandbox's sudo user, exactly as hostsetup receives it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fabric import Config

from hostsetup.connection import connect
from hostsetup.facts import facts_script
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror

OUT = Path(__file__).resolve().parents[1] / "unit" / "data" / "facts"
CODENAMES = {"debian12": "bookworm", "debian13": "trixie"}


def run_as(box: Sandbox, host: SandboxHost, command: str, user: str = "root") -> str:
    config = Config(overrides={"known_hosts": [str(box.known_hosts_path)], "run": {"in_stream": False}})
    with connect(host.target(user), config, connect_kwargs={"key_filename": [str(box.key_path)]}) as c:
        return c.run(command, hide=True, timeout=600).stdout


def install(box: Sandbox, mirror: SandboxMirror, host: SandboxHost, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "hostsetup", "-S", str(box.ssh_config_path), "-H", host.hostname,
                    "install", "--mirror", mirror.url, "--insecure-mirror", "--key-fingerprint",
                    mirror.build.key_fingerprint, "--users", "hostsetup", *extra], check=True)


def add_docker_io(box: Sandbox, mirror: SandboxMirror, host: SandboxHost) -> None:
    run_as(box, host, f"curl -fsS {mirror.url}/linux/debian/gpg -o /etc/apt/keyrings/fixtures.asc && "
           f"printf 'Types: deb\\nURIs: {mirror.url}/debian-fixtures\\nSuites: bookworm\\nComponents: main\\n"
           "Signed-By: /etc/apt/keyrings/fixtures.asc\\n' > /etc/apt/sources.list.d/fixtures.sources && "
           "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io")


def main() -> None:
    box = Sandbox("record")
    try:
        box.prepare()
        mirror = box.start_mirror()
        states = {
            ("debian12", "bare"): lambda h: None,
            ("debian13", "bare"): lambda h: None,
            ("debian12", "docker-io"): lambda h: add_docker_io(box, mirror, h),
            ("debian12", "converged"): lambda h: install(box, mirror, h),
            ("debian13", "converged"): lambda h: install(box, mirror, h),
            ("debian12", "pinned-held"): lambda h: install(box, mirror, h, "--version", "20.10.5", "--hold"),
        }
        hosts = box.start_hosts([flavor for flavor, _ in states])
        OUT.mkdir(parents=True, exist_ok=True)
        for (flavor, state), host in zip(states, hosts, strict=True):
            states[(flavor, state)](host)
            text = run_as(box, host, facts_script(("hostsetup", "nobody2")), user="hostsetup")
            (OUT / f"{flavor}-{state}.txt").write_text(text)
            print(f"recorded {flavor}-{state}")
    finally:
        box.down()


if __name__ == "__main__":
    main()
