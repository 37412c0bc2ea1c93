"""Find, or start, the local Docker engine that runs sandbox hosts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hostsetup.errors import HostsetupError

Progress = Callable[[str], None]

# A docker client hangs on a socket-activated daemon whose containerd is gone,
# so every call is bounded.
DEFAULT_TIMEOUT = 120.0
# The client's words when no daemon answers: never shown raw (see ``docker``).
ENGINE_DOWN = "Cannot connect to the Docker daemon"


class SandboxError(HostsetupError):
    """The sandbox could not be set up or torn down."""


def docker(*args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
           input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; raise SandboxError with its stderr on failure."""
    cmd = ["docker", *args]
    try:
        raw = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)  # input may be a tar
        proc = subprocess.CompletedProcess(cmd, raw.returncode, raw.stdout.decode(errors="replace"),
                                           raw.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise SandboxError("the docker client is not installed") from exc
    if check and proc.returncode != 0:
        message = proc.stderr.strip() or proc.stdout.strip()
        if ENGINE_DOWN in message:
            raise SandboxError("the Docker engine that runs the sandbox stopped answering on this machine; "
                               "`hostsetup sandbox up` starts one, `hostsetup doctor --local` says why it is down")
        raise SandboxError(f"`{' '.join(cmd)}` failed: {message}")
    return proc


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# A systemd host holds about 7 inotify instances (systemd, logind, dbus), all counted against root here;
# Linux's default limit, 128, stops the 19th or so host's systemd from booting ("Too many open files").
INOTIFY_PER_HOST = 10


def ensure_inotify_instances(hosts: int, progress: Progress) -> None:
    """Make room for ``hosts`` systemd hosts in this machine's inotify instance limit (root only; a warning
    otherwise, and nothing for an engine elsewhere: DOCKER_HOST)."""
    if os.environ.get("DOCKER_HOST", "unix://").startswith(("tcp://", "ssh://")):
        return
    needed = 128 + hosts * INOTIFY_PER_HOST
    try:
        current = int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        return
    if current >= needed:
        return
    try:
        INOTIFY_INSTANCES.write_text(f"{needed}\n")
    except OSError:
        progress(f"warning: {hosts} sandbox hosts may need fs.inotify.max_user_instances >= {needed} (it is "
                 f"{current}; each host's systemd holds about 7): if a host does not boot, run "
                 f"`sysctl -w fs.inotify.max_user_instances={needed}` as root")
        return
    progress(f"raised fs.inotify.max_user_instances from {current} to {needed} for {hosts} systemd hosts")


class StaleEndpoints(SandboxError):
    """The engine says a network has endpoints while no container is attached to it: a known Docker bug
    (moby#17217, #42119); only a restart of the engine clears it."""


def remove_network(network: str, attempts: int = 5) -> bool:
    """Remove a docker network if it exists (False when it did not). Right after ``docker rm -f`` the
    engine may still hold a removed container's endpoint ("has active endpoints"): such leftovers are
    disconnected by force and the removal is tried again; ``StaleEndpoints`` when none is left to
    disconnect and the engine still refuses."""
    for attempt in range(attempts):
        if docker("network", "inspect", network, check=False).returncode != 0:
            return attempt > 0
        proc = docker("network", "rm", network, check=False)
        if proc.returncode == 0:
            return True
        if "active endpoints" not in proc.stderr:
            docker("network", "rm", network)  # raises with the engine's own words
        endpoints = docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", network,
                           check=False).stdout.split()
        if not endpoints and attempt == attempts - 1:
            raise StaleEndpoints(f"the engine keeps stale endpoints on network {network} (no container uses it)")
        for endpoint in endpoints:
            docker("network", "disconnect", "-f", network, endpoint, check=False)
        time.sleep(0.5 * (attempt + 1))
    docker("network", "rm", network)
    return True


def restart_own_engine(state_dir: Path, progress: Progress) -> bool:
    """Restart the dockerd that ``ensure_engine`` started (and only that one), when no container at all
    exists on it; True when it was restarted and answers again."""
    pid_file = state_dir / "dockerd.pid"
    try:
        pid = int(pid_file.read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() != "dockerd":
            return False
    except (OSError, ValueError):
        return False
    if docker("ps", "-aq", check=False).stdout.split():
        return False
    progress(f"restarting the dockerd hostsetup started (pid {pid}) to clear stale network endpoints")
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        return False
    ensure_engine(state_dir, progress)
    return engine_answers()


def engine_answers(timeout: float = 10.0) -> bool:
    """True when a Docker daemon answers the client (DOCKER_HOST or the default socket)."""
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = {fields.get("ID", "").strip('"')} | set(fields.get("ID_LIKE", "").strip('"').split())
    return bool(ids & {"debian", "ubuntu"})


def _run_quiet(cmd: Sequence[str], what: str, timeout: float = 900) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise SandboxError(f"{what} failed:\n{tail}")


# Commands the sandbox needs on this machine, and the Debian packages that have them.
BUILD_TOOLS = {"debootstrap": "debootstrap", "openssl": "openssl", "apt-ftparchive": "apt-utils", "gpg": "gnupg",
               "gpgv": "gpgv", "dpkg-deb": "dpkg", "ssh-keygen": "openssh-client"}
# (the EL rehearsal's rpm tools: rpmrepo.RPM_TOOLS, installed by rpmrepo.ensure_rpm_tools)


def ensure_tools(progress: Progress = print, tools: Mapping[str, str] = BUILD_TOOLS,
                 purpose: str = "the sandbox") -> None:
    """Install the Debian packages that provide missing ``tools`` (root on Debian only)."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or not _is_debian_like():
        raise SandboxError(f"{purpose} needs these packages installed: {' '.join(missing)}")
    progress(f"installing {' '.join(missing)} for {purpose}")
    _run_quiet(["apt-get", "update", "-qq"], "apt-get update")
    _run_quiet(["apt-get", "install", "-y", "-qq", *missing], f"apt-get install {' '.join(missing)}")


def ensure_engine(state_dir: Path, progress: Progress = print) -> None:
    """Make sure a Docker engine answers, starting Debian's dockerd as root if needed."""
    if engine_answers():
        return
    if os.environ.get("DOCKER_HOST"):
        raise SandboxError(f"DOCKER_HOST={os.environ['DOCKER_HOST']} is set but no Docker "
                           "daemon answers there; start it or unset DOCKER_HOST")
    if os.geteuid() != 0 or not _is_debian_like():
        raise SandboxError("no Docker engine answers. The sandbox needs one: start Docker "
                           "(or set DOCKER_HOST), or run as root on Debian/Ubuntu so that "
                           "hostsetup can install docker.io and start dockerd itself")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        progress("installing the distribution's docker.io to run sandbox hosts")
        _run_quiet(["apt-get", "update", "-qq"], "apt-get update")
        _run_quiet(["apt-get", "install", "-y", "-qq", "docker.io"], "apt-get install docker.io")
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "dockerd.log"
    progress(f"starting dockerd in the background (log: {log})")
    with log.open("ab") as out:
        started = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    (state_dir / "dockerd.pid").write_text(f"{started.pid}\n")  # ours: ``restart_own_engine`` may restart it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_answers(timeout=5):
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
    raise SandboxError(f"dockerd did not answer within 60s; last log lines:\n{tail}")
