"""Finding codes, their order (root causes first) and what a finding says."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFO, OK = "error", "warning", "info", "ok"

# Root causes first: a restart loop (START_LIMIT_HIT) or a stopped daemon is the
# consequence of whatever comes before it; user-side problems come after the daemon's.
CODES: dict[str, str] = {
    "NOT_INSTALLED": "Docker Engine is not installed",
    "DOCKER_HOST_ELSEWHERE": "the client is pointed away from this host's daemon (DOCKER_HOST or context)",
    "DAEMON_MASKED": "docker.service is masked",
    "SOCKET_MASKED": "docker.socket is masked",
    "CONFIG_INVALID_JSON": "/etc/docker/daemon.json is not valid JSON",
    "CONFIG_UNKNOWN_KEY": "/etc/docker/daemon.json has a key this engine does not know",
    "CONFIG_FLAG_CONFLICT": "an option is set both in daemon.json and as a dockerd flag",
    "CONFIG_INVALID_VALUE": "/etc/docker/daemon.json has a value the engine rejects",
    "CONTAINERD_DOWN": "containerd is not running",
    "DATA_ROOT_FULL": "the filesystem of the data-root is full",
    "RUN_FULL": "/run is full",
    "DATA_ROOT_UNWRITABLE": "the data-root is not writable",
    "STALE_PIDFILE": "/var/run/docker.pid names a live process that is not dockerd",
    "OTHER_DOCKERD": "another dockerd, not started by systemd, holds the pid file",
    "IPTABLES_FAILED": "dockerd cannot set up iptables",
    "DOCKER_GROUP_MISSING": "the docker group does not exist",
    "DAEMON_DISABLED": "docker.service and docker.socket are disabled (not started at boot)",
    "DAEMON_STOPPED": "the daemon is stopped and its socket is not listening",
    "START_LIMIT_HIT": "systemd gave up restarting docker (start-limit-hit)",
    "USER_NOT_IN_GROUP": "the user is not in the docker group",
    "USER_SESSION_STALE": "the user is in the docker group but this login session predates it",
    "SOCKET_PERMISSIONS": "the socket's owner, group or mode keeps the user out",
    "UNKNOWN": "the daemon does not answer and no rule explains why",
    "LIMITED_PROBES": "some probes needed root and sudo asked for a password",
    "HEALTHY": "the daemon answers for the user",
}
RANK = {code: index for index, code in enumerate(CODES)}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable code, how bad, the exact evidence and the fix in one sentence."""

    code: str
    severity: str
    evidence: tuple[str, ...]
    fix: str
    command: str = ""        # what to run by hand when ``--fix`` does not do it

    @property
    def summary(self) -> str:
        return CODES[self.code]

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "summary": self.summary,
                "evidence": list(self.evidence), "fix": self.fix, "command": self.command}


def ordered(findings: list[Finding]) -> list[Finding]:
    """Root cause first; at most one finding per code."""
    seen: dict[str, Finding] = {}
    for finding in findings:
        seen.setdefault(finding.code, finding)
    return sorted(seen.values(), key=lambda f: RANK[f.code])


def healthy(findings: list[Finding]) -> bool:
    return any(f.code == "HEALTHY" for f in findings)
