"""Fresh install on one sandbox host: hostsetup vs a bare apt script, and a no-op run.

Run: ``python3 -m benchmarks.fresh_install [ROUNDS]``. Each round starts two fresh
debian12 hosts and installs Docker on one with a bare shell script (one SSH
session via OpenSSH: key, sources, apt-get update, install, enable, usermod) and on the
other with ``hostsetup install``; then times a no-op ``hostsetup install``.
Prints medians; numbers are wall-clock on this machine.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from datetime import date

from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror

BARE_SCRIPT = """set -e
sudo install -m 0755 -d /etc/apt/keyrings
sudo curl -fsSL {url}/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
printf 'Types: deb\\nURIs: {url}/linux/debian\\nSuites: bookworm\\nComponents: stable\\n\
Signed-By: /etc/apt/keyrings/docker.asc\\n' | sudo tee /etc/apt/sources.list.d/docker.sources >/dev/null
sudo apt-get update -q
sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-ce docker-ce-cli containerd.io \
  docker-buildx-plugin docker-compose-plugin
sudo systemctl enable --now containerd docker
sudo usermod -aG docker hostsetup
"""


def bare(box: Sandbox, mirror: SandboxMirror, host: SandboxHost) -> float:
    """The script as a person runs it: ``ssh host sh < script``."""
    start = time.monotonic()
    subprocess.run(["ssh", "-F", str(box.ssh_config_path), host.hostname, "sh"], check=True, capture_output=True,
                   input=BARE_SCRIPT.format(url=mirror.url), text=True)
    return time.monotonic() - start


def with_hostsetup(box: Sandbox, mirror: SandboxMirror, host: SandboxHost) -> float:
    cmd = [sys.executable, "-m", "hostsetup", "-S", str(box.ssh_config_path), "-H", host.hostname, "install",
           "--mirror", mirror.url, "--insecure-mirror", "--key-fingerprint", mirror.build.key_fingerprint,
           "--users", "hostsetup"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - start


def main(rounds: int = 3) -> None:
    box = Sandbox("bench-install", progress=lambda m: None)
    results: dict[str, list[float]] = {"bare script": [], "hostsetup install": [], "hostsetup no-op": []}
    try:
        mirror = box.start_mirror()
        for _ in range(rounds):
            a, b = box.start_hosts(["debian12", "debian12"])
            results["bare script"].append(bare(box, mirror, a))
            results["hostsetup install"].append(with_hostsetup(box, mirror, b))
            results["hostsetup no-op"].append(with_hostsetup(box, mirror, b))
            box.remove_hosts([a, b])
    finally:
        box.down()
    print(f"{date.today()} {platform.node()} {platform.processor() or platform.machine()}, rounds={rounds}")
    for name, values in results.items():
        print(f"{name:20} median {statistics.median(values):6.2f}s  runs {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
