"""Break sandbox hosts in each way the doctor knows and record the raw probe output.

Run from the repository root: ``python3 -m tests.tools.record_doctor [cause ...]``.
For every flavor (debian12: engine 20.10, debian13: engine 26.1) and cause, a fresh
host gets Docker installed by the real CLI, is broken by the cause's root script
(``BREAKS``, shared with tests/e2e/test_doctor.py) and probed as the sandbox's sudo
user. Writes ``tests/unit/data/doctor/engine<major.minor>-<cause>.txt`` (``<flavor>-<cause>.txt``
without an engine): the probe
output exactly as the doctor receives it. Nothing here is invented: every log line
in those files was printed by a real dockerd or systemd.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fabric import Config, Connection

from hostsetup.connection import connect
from hostsetup.doctor.probes import probe_command
from hostsetup.sandbox.hosts import Sandbox, SandboxHost, SandboxMirror

OUT = Path(__file__).resolve().parents[1] / "unit" / "data" / "doctor"
FLAVORS = ("debian12", "debian13")
USER = "hostsetup"

# Wait (at most 30 s) until systemd has given up on docker: Restart=always, RestartSec=2, StartLimitBurst=3.
WAIT_LIMIT = ("for i in $(seq 60); do [ \"$(systemctl show -p Result --value docker.socket)\" = "
              "service-start-limit-hit ] && break; sleep 0.5; done")


# A fresh start counter, a restart that fails, and the wait for systemd to give up.
RESTART_LOOP = ("systemctl reset-failed docker.service docker.socket && (systemctl restart docker.service || true) && "
                + WAIT_LIMIT)


def as_user(script: str) -> str:
    """``script`` as the sandbox user, in a login shell (the break scripts run as root)."""
    return f"runuser -l {USER} -c {shlex.quote(script)}"


def restart_with(config: str) -> str:
    """Write daemon.json and restart docker (which fails), then wait for the start limit."""
    return (f"systemctl reset-failed docker.service docker.socket && "
            f"mkdir -p /etc/docker && printf '%s\\n' '{config}' > /etc/docker/daemon.json && "
            f"(systemctl restart docker.service || true) && {WAIT_LIMIT}")


@dataclass(frozen=True)
class Break:
    """A way to break a host: a root script, and whether the probe must come from a session opened before it."""

    script: str
    stale_session: bool = False
    user: str = USER
    install: bool = True


BREAKS: dict[str, Break] = {
    "healthy": Break("true"),
    "not-installed": Break("true", install=False),
    # docker.service stopped but docker.socket listening: the first client starts it again.
    "lazy-socket": Break("systemctl stop docker.service"),
    "stopped": Break("systemctl stop docker.service docker.socket"),
    # What a reboot leaves when both units are disabled: nothing running, /run emptied.
    "disabled": Break("systemctl disable docker.service docker.socket && "
                      "systemctl stop docker.service docker.socket && rm -f /run/docker.sock /run/docker.pid"),
    "socket-masked": Break("systemctl stop docker.service docker.socket && systemctl mask docker.socket && "
                           "(systemctl start docker.service || true)"),
    "invalid-json": Break(restart_with('{"log-level": "info",}')),
    "unknown-key": Break(restart_with('{"log-level": "info", "no-such-option": true}')),
    # Plain TCP: doctor --fix leaves it to a person. Only local sockets are moved into ExecStart.
    "hosts-conflict": Break(restart_with('{"hosts": ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"]}')),
    "hosts-conflict-unix": Break(restart_with('{"hosts": ["unix:///var/run/docker.sock", "unix:///run/docker-alt.sock"]}')),
    "containerd-stopped": Break("systemctl stop containerd.service"),
    # Masked containerd while docker restarts: dockerd waits 60 s for it and a client hangs meanwhile.
    "containerd-masked": Break("systemctl mask containerd.service && systemctl stop containerd.service && "
                               "systemctl restart --no-block docker.service && sleep 3"),
    "not-in-group": Break(f"gpasswd -d {USER} docker"),
    "session-stale": Break(f"gpasswd -d {USER} docker", stale_session=True),
    "socket-permissions": Break("chown root:root /run/docker.sock"),
    "docker-host": Break("echo DOCKER_HOST=tcp://127.0.0.1:2375 >> /etc/environment"),
    # Three failed starts, then the cause goes away: systemd still refuses until reset-failed.
    "start-limit": Break(restart_with('{"log-level": "info",}') + " && rm -f /etc/docker/daemon.json"),
    "data-root-full": Break("mkdir -p /srv/small && mount -t tmpfs -o size=64m tmpfs /srv/small && "
                           "(dd if=/dev/zero of=/srv/small/fill bs=1M 2>/dev/null || true) && "
                           + restart_with('{"data-root": "/srv/small/docker"}')),
    "data-root-readonly": Break("mkdir -p /srv/ro && mount -t tmpfs -o ro,size=64m tmpfs /srv/ro && "
                                + restart_with('{"data-root": "/srv/ro/docker"}')),
    # The pid file names a live process that is not dockerd (its PID was reused, here by sshd).
    "stale-pidfile": Break("systemctl stop docker.service docker.socket && "
                           "systemctl show -p MainPID --value ssh.service > /run/docker.pid && "
                           f"(systemctl start docker.socket docker.service || true) && {WAIT_LIMIT}"),
    # A docker user without sudo: the probes that need root are skipped, and say so.
    "no-sudo": Break("useradd -m -s /bin/bash -G docker plain && install -d -o plain -m 700 /home/plain/.ssh && "
                     "install -o plain -m 600 /root/.ssh/authorized_keys /home/plain/.ssh/", user="plain"),
    "group-missing": Break("systemctl stop docker.service docker.socket && groupdel docker && "
                           "(systemctl start docker.socket docker.service || true)"),
    # Causes whose real error the restart loop used to hide (each starts from a reset start counter).
    # A storage driver the data-root's filesystem (the host's volume: ext4) cannot serve.
    "storage-driver": Break(restart_with('{"storage-driver": "btrfs"}')),
    # A daemon.json value that only the network controller refuses (20.10 has no --validate).
    "invalid-cidr": Break(restart_with('{"bip": "300.0.0.1/24"}')),
    "userns-remap": Break(restart_with('{"userns-remap": "nosuchuser"}')),
    # The engine's program is gone: systemd's status=203/EXEC, dockerd never runs.
    "binary-missing": Break(f"mv /usr/bin/dockerd /usr/bin/dockerd.away && {RESTART_LOOP}"),
    # A drop-in gives dockerd a flag it does not know.
    "execstart-flag": Break("mkdir -p /etc/systemd/system/docker.service.d && printf '[Service]\\nExecStart=\\n"
                            "ExecStart=/usr/bin/dockerd -H fd:// --no-such-flag\\n' "
                            "> /etc/systemd/system/docker.service.d/override.conf && systemctl daemon-reload && "
                            + RESTART_LOOP),
    # No iptables program (a minimal image): dockerd cannot create its NAT chain.
    "iptables-missing": Break(f"mv /usr/sbin/xtables-nft-multi /usr/sbin/xtables-nft-multi.away && {RESTART_LOOP}"),
    # containerd refuses its own configuration; dockerd waits for it to come up.
    "containerd-config": Break("t=/etc/containerd/config.toml && "
                               "([ -e /root/containerd.toml ] || cp $t /root/containerd.toml) && "
                               "printf 'version = 2\\n[plugins\\n' > $t && "
                               "(systemctl restart containerd.service || true) && "
                               "systemctl restart --no-block docker.service && sleep 3"),
    # A second dockerd, started by hand, holds /var/run/docker.pid.
    "second-dockerd": Break("systemctl stop docker.service docker.socket && (setsid nohup dockerd "
                            "-H unix:///run/docker-other.sock --containerd=/run/containerd/containerd.sock "
                            "</dev/null >/var/log/other-dockerd.log 2>&1 &) && sleep 3 && " + RESTART_LOOP),
    # The client's own configuration: a current context that does not exist, rootless and Desktop contexts.
    "missing-context": Break(as_user("mkdir -p ~/.docker && printf '%s\\n' "
                                     "'{\"currentContext\": \"nosuch\"}' > ~/.docker/config.json")),
    # Client variables in the login environment: a pinned API version older than any engine serves, TLS
    # verification against a daemon that has none (and no certificates).
    "api-version": Break("echo DOCKER_API_VERSION=1.0 >> /etc/environment"),
    "tls-verify": Break("echo DOCKER_TLS_VERIFY=1 >> /etc/environment"),
    "rootless-context": Break(as_user("docker context create rootless --docker "
                                      "host=unix:///run/user/$(id -u)/docker.sock && docker context use rootless")),
    "desktop-context": Break(as_user("docker context create desktop-linux --docker "
                                     "host=unix://$HOME/.docker/desktop/docker.sock && "
                                     "docker context use desktop-linux")),
}


def root_run(box: Sandbox, host: SandboxHost, script: str, user: str = "root") -> str:
    with session(box, host, user) as c:
        return c.run(script, hide=True, timeout=600, in_stream=False).stdout


def session(box: Sandbox, host: SandboxHost, user: str = USER) -> Connection:
    config = Config(overrides={"known_hosts": [str(box.known_hosts_path)], "run": {"in_stream": False}})
    return connect(host.target(user), config, connect_kwargs={"key_filename": [str(box.key_path)]})


def install(box: Sandbox, mirror: SandboxMirror, host: SandboxHost) -> None:
    subprocess.run([sys.executable, "-m", "hostsetup", "-S", str(box.ssh_config_path), "-H", host.hostname,
                    "install", "--mirror", mirror.url, "--insecure-mirror", "--key-fingerprint",
                    mirror.build.key_fingerprint, "--users", USER, "--no-verify"],
                   check=True, capture_output=True, timeout=600)


def break_and_probe(box: Sandbox, host: SandboxHost, cause: Break) -> str:
    """Break ``host`` and return the probe output as ``cause.user`` sees it."""
    if not cause.stale_session:
        root_run(box, host, cause.script)
        with session(box, host, cause.user) as c:
            return c.run(probe_command(), hide=True, warn=True, timeout=120).stdout
    root_run(box, host, cause.script)
    with session(box, host, cause.user) as old:
        old.open()  # this login's groups are fixed now, without docker
        root_run(box, host, f"usermod -aG docker {cause.user}")
        return old.run(probe_command(), hide=True, warn=True, timeout=120).stdout


def engine_of(output: str) -> str:
    """``engine20.10`` from the probe output: dockerd's version, else the client's (dockerd may be the
    thing that is missing); "" when no engine is installed."""
    match = re.search(r"@@engine\n(?:.*\n)?Docker version (\d+\.\d+)", output)
    return f"engine{match[1]}" if match else ""


def record(box: Sandbox, mirror: SandboxMirror, causes: list[str], batch: int = 4,
           progress: Callable[[str], None] = print) -> list[Path]:
    """Record every cause on every flavor, ``batch`` fresh hosts at a time (removed afterwards)."""
    jobs = [(flavor, cause) for flavor in FLAVORS for cause in causes]
    OUT.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        hosts = box.start_hosts([flavor for flavor, _ in chunk])
        try:
            def one(job: tuple[tuple[str, str], SandboxHost]) -> Path:
                (flavor, cause), host = job
                if BREAKS[cause].install:
                    install(box, mirror, host)
                output = break_and_probe(box, host, BREAKS[cause])
                path = OUT / f"{engine_of(output) or flavor}-{cause}.txt"
                path.write_text(output)
                progress(f"recorded {path.name} on {flavor}")
                return path

            with ThreadPoolExecutor(max_workers=batch) as pool:
                written += pool.map(one, zip(chunk, hosts, strict=True))
        finally:
            box.remove_hosts(hosts)
    return written


def main() -> None:
    causes = sys.argv[1:] or list(BREAKS)
    unknown = [c for c in causes if c not in BREAKS]
    if unknown:
        sys.exit(f"unknown causes {unknown}; known: {', '.join(BREAKS)}")
    box = Sandbox("doctor-record")
    try:
        box.prepare()
        record(box, box.start_mirror(), causes)
    finally:
        box.down()


if __name__ == "__main__":
    main()
