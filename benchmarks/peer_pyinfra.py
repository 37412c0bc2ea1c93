"""The same job with pyinfra, on the same kind of sandbox hosts: Docker's key and repository file, the five
packages, the service, a user in the docker group. Run: ``python3 -m benchmarks.peer_pyinfra 20 50``.

pyinfra runs from a virtual environment of its own (it pins paramiko below 5, hostsetup runs on 5), made
under the sandbox cache on first use; its deploy is written here, next to its inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.fleet import host_cpu_ns
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror, default_cache

PYINFRA = "pyinfra==3.10.0"
RESULTS = Path(__file__).parent / "RESULTS.md"

DEPLOY = '''
from io import StringIO
from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

mirror = host.data.mirror
files.download(name="Docker's key", src=mirror + "/linux/debian/gpg", dest="/etc/apt/keyrings/docker.asc",
               _sudo=True)
files.put(name="Docker's repository", src=StringIO(
    "Types: deb\\nURIs: " + mirror + "/linux/debian\\nSuites: bookworm\\nComponents: stable\\n"
    "Signed-By: /etc/apt/keyrings/docker.asc\\n"), dest="/etc/apt/sources.list.d/docker.sources", _sudo=True)
apt.packages(name="Docker Engine", packages=["docker-ce", "docker-ce-cli", "containerd.io",
             "docker-buildx-plugin", "docker-compose-plugin"], update=True, _sudo=True)
systemd.service(name="docker running", service="docker", running=True, enabled=True, _sudo=True)
server.user(name="docker group", user="hostsetup", groups=["docker"], append=True, _sudo=True)
'''


def pyinfra_venv() -> Path:
    venv = default_cache() / "bench" / "pyinfra-venv"
    if not (venv / "bin" / "pyinfra").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", PYINFRA], check=True, timeout=600)
    return venv


def run(venv: Path, box: Sandbox, mirror: SandboxMirror, hosts: list[SandboxHost], work: Path) -> dict[str, float]:
    inventory = work / "inventory.py"
    inventory.write_text("hosts = " + repr([(h.hostname, {
        "ssh_hostname": "127.0.0.1", "ssh_port": h.port, "ssh_user": "hostsetup", "ssh_key": str(box.key_path),
        "ssh_known_hosts_file": str(box.known_hosts_path), "ssh_strict_host_key_checking": "yes",
        "mirror": mirror.url}) for h in hosts]) + "\n")
    deploy = work / "deploy.py"
    deploy.write_text(DEPLOY)
    cmd = ["/usr/bin/time", "-f", "%M %U %S", str(venv / "bin" / "pyinfra"), "-y", "--parallel", "20",
           str(inventory), str(deploy)]
    names = [h.name for h in hosts]
    host_cpu = host_cpu_ns(names)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work)
    wall = time.monotonic() - start
    host_cpu = host_cpu_ns(names) - host_cpu
    if proc.returncode != 0:
        raise SystemExit(f"pyinfra failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    peak_kb, user, system = proc.stderr.strip().splitlines()[-1].split()
    return {"wall": wall, "cpu_ms_per_host": (float(user) + float(system)) * 1000 / len(hosts),
            "peak_mb": int(peak_kb) / 1024, "host_cpu_ms_per_host": host_cpu / 1e6 / len(hosts)}


def main() -> None:
    sizes = tuple(int(a) for a in sys.argv[1:]) or (20,)
    venv = pyinfra_venv()
    box = Sandbox("bench-peer", progress=lambda m: print(f"[sandbox] {m}", flush=True))
    rows: list[tuple[int, str, dict[str, float]]] = []
    try:
        mirror = box.start_mirror()
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                hosts = box.start_hosts(["debian12"] * size)
                rows.append((size, "fresh install", run(venv, box, mirror, hosts, Path(tmp))))
                rows.append((size, "no-op", run(venv, box, mirror, hosts, Path(tmp))))
                box.remove_hosts(hosts)
                print(*rows[-2:], sep="\n", flush=True)
    finally:
        box.down()
    lines = [f"## pyinfra, the same job, {date.today()}", "",
             f"Machine: {os.cpu_count()} cores; {PYINFRA} (paramiko 4) from its own venv, `pyinfra -y --parallel 20 "
             "inventory.py deploy.py` (benchmarks/peer_pyinfra.py: key, repository file, the five packages, the "
             "service, the docker group) on Debian 12 sandbox hosts from the local mirror.", "",
             "| hosts | run | wall time (s) | control CPU per host (ms) | control peak memory (MB) "
             "| CPU on each host (ms) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {kind} | {r['wall']:.2f} | {r['cpu_ms_per_host']:.0f} | {r['peak_mb']:.0f} "
              f"| {r['host_cpu_ms_per_host']:.0f} |" for n, kind, r in rows]
    RESULTS.write_text(RESULTS.read_text().rstrip() + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
