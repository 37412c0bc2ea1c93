"""Fleet benchmark: wall time, SSH sessions, the control process's CPU seconds (user + system) and peak
memory, and the CPU each host and its SSH relay spent, of a fresh install (with its verify), a no-op
install and a verify on 1, 5, 10 and 20 sandbox hosts (or the sizes given). Writes benchmarks/RESULTS.md.

Run: ``inv bench`` (or ``inv bench --sizes 1,50``, ``python3 -m benchmarks.fleet 1 50``). Needs the sandbox.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from hostsetup.sandbox.engine import docker
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror

SIZES = (1, 5, 10, 20)
RESULTS = Path(__file__).parent / "RESULTS.md"


def host_cpu_ns(containers: list[str]) -> int:
    """CPU time these containers have used so far (cgroup v1 cpuacct; v2 cpu.stat), in ns: for the hosts,
    what a run costs them (sshd, shells, package managers), apart from the control process."""
    ids = docker("inspect", "-f", "{{.Id}}", *containers).stdout.split()
    total = 0
    for cid in ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        if v1.exists():
            total += int(v1.read_text())
            continue
        for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
                   Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")):
            if v2.exists():
                total += int(v2.read_text().split()[1]) * 1000  # usage_usec
                break
    return total


def run(box: Sandbox, mirror: SandboxMirror, hosts: list[SandboxHost], work: Path, *task: str) -> dict[str, float]:
    """One ``hostsetup TASK`` over ``hosts`` in a child process: wall time, sessions, CPU, peak RSS."""
    inventory = work / "inventory.yaml"
    inventory.write_text(json.dumps({
        "vars": {"user": "hostsetup", "key": str(box.key_path),
                 "install": {"mirror": mirror.url, "insecure_mirror": True, "users": "hostsetup",
                             "key_fingerprint": mirror.build.key_fingerprint}},
        "hosts": {h.hostname: {"host": "127.0.0.1", "port": h.port} for h in hosts}}))
    config = work / "config.yaml"
    config.write_text(json.dumps({"known_hosts": [str(box.known_hosts_path)], "parallel": 20}))
    report = work / "report.json"
    cmd = ["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-m", "hostsetup", "-f", str(config), "--inventory",
           str(inventory), *task, "--json", str(report)]
    names, relays = [h.name for h in hosts], [f"{h.name}-ssh" for h in hosts]
    host_cpu, relay_cpu = host_cpu_ns(names), host_cpu_ns(relays)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - start
    host_cpu, relay_cpu = host_cpu_ns(names) - host_cpu, host_cpu_ns(relays) - relay_cpu
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(task)} failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(report.read_text())["hosts"]
    peak_kb, user, system = proc.stderr.strip().splitlines()[-1].split()
    sessions = [h["ssh_sessions"] for h in data if "ssh_sessions" in h]
    return {"wall": wall, "sessions": sum(sessions) / len(sessions) if sessions else float("nan"),
            "peak_mb": int(peak_kb) / 1024, "cpu_ms_per_host": (float(user) + float(system)) * 1000 / len(data),
            "host_cpu_ms_per_host": host_cpu / 1e6 / len(hosts), "relay_cpu_ms_per_host": relay_cpu / 1e6 / len(hosts),
            # no run can end sooner than all the CPU it makes this machine spend, spread over every core
            "cpu_bound_s": ((float(user) + float(system)) + (host_cpu + relay_cpu) / 1e9) / (os.cpu_count() or 1)}


Row = tuple[int, str, dict[str, float]]


def main() -> None:
    sizes = tuple(int(a) for a in sys.argv[1:]) or SIZES
    box = Sandbox("bench-fleet", progress=lambda m: print(f"[sandbox] {m}", flush=True))
    rows: list[Row] = []
    try:
        mirror = box.start_mirror()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for size in sizes:
                hosts = box.start_hosts(["debian12"] * size)
                # what a user runs: install, whose checks then run on every host it changed
                rows.append((size, "fresh install + verify", run(box, mirror, hosts, work, "install")))
                rows.append((size, "no-op", run(box, mirror, hosts, work, "install")))
                rows.append((size, "verify", run(box, mirror, hosts, work, "verify")))
                box.remove_hosts(hosts)
                print(*rows[-3:], sep="\n", flush=True)
        write_results(rows)   # before the sandbox goes: measured numbers are never lost to a teardown
    finally:
        box.down()


def write_results(rows: list[Row]) -> None:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine())
    lines = [f"## Fleet benchmark, {date.today()}", "",
             f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
             f"Python {platform.python_version()}; sandbox hosts are Debian 12 systemd containers on this "
             "machine, installing from the local mirror; `hostsetup install` (its checks run on the hosts it "
             "changed), `hostsetup verify`; --parallel 20.", "",
             "| hosts | run | wall time (s) | SSH sessions per host | control CPU per host (ms) "
             "| control peak memory (MB) | CPU on each host (ms) | CPU of each host's SSH relay (ms) "
             "| all CPU / cores (s) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def sessions(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1f}"

    lines += [f"| {n} | {kind} | {r['wall']:.2f} | {sessions(r['sessions'])} | {r['cpu_ms_per_host']:.0f} "
              f"| {r['peak_mb']:.0f} | {r['host_cpu_ms_per_host']:.0f} | {r['relay_cpu_ms_per_host']:.0f} "
              f"| {r['cpu_bound_s']:.2f} |" for n, kind, r in rows]
    noop = {n: r["wall"] for n, kind, r in rows if kind == "no-op"}
    peak = max(r["peak_mb"] for _, _, r in rows)
    most, least = max(noop), min(noop)
    lines += ["", f"No-op on {most} hosts / no-op on {least} host(s): {noop[most] / noop[least]:.2f}x. "
              f"Peak memory at {most} hosts: {peak:.0f} MB.", ""]
    previous = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    RESULTS.write_text(previous.rstrip() + "\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
