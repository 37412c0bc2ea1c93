"""Finding codes, each in one entry: its order (root causes first), what it means (``doctor --explain``), the
words that name it in a fatal line and its printed fix; and a finding.

A new doctor rule for a failure dockerd or containerd names in its fatal line is one ``CODES`` entry."""

from __future__ import annotations

from dataclasses import dataclass

from hostsetup.host.paths import DAEMON_JSON

ERROR, WARNING, INFO, OK = "error", "warning", "info", "ok"


@dataclass(frozen=True)
class Code:
    """What a finding code means: the cause in one line, the evidence the doctor looks for, the fix."""

    summary: str
    looks_for: str
    fix: str
    # A failure named in a fatal line: the words that name its subsystem in dockerd's (and systemd's lines about
    # docker) and in containerd's, tried in ``match`` order (specific vocabularies first, generic last);
    # ``config_first``: a daemon.json value the line quotes makes it CONFIG_INVALID_VALUE instead.
    dockerd: str = ""
    containerd: str = ""
    config_first: bool = True
    match: int = 0
    manual: tuple[str, str] | None = None   # the fix sentence and the command printed for it (when fixed text)


_FIXED = "--fix"
_BY_HAND = "printed, not run"

# Root causes first: a restart loop (START_LIMIT_HIT) or a stopped daemon is the consequence of whatever
# comes before it; user-side problems come after the daemon's.
CODES: dict[str, Code] = {
    "NOT_INSTALLED": Code(
        "Docker Engine is not installed",
        "no dockerd binary, no docker.service unit, and no daemon answering the client",
        f"{_BY_HAND}: hostsetup install for the host"),
    "CLIENT_CONFIG_INVALID": Code(
        "the docker client's own configuration stops it (a missing context, an unreadable config.json)",
        "the client's error names its configuration: a current context that does not exist, a config file "
        "it cannot parse, an endpoint it cannot parse",
        f"{_BY_HAND}: `docker context use default`, or the file named to edit"),
    "DOCKER_HOST_ELSEWHERE": Code(
        "the client is pointed away from this host's daemon (DOCKER_HOST or context)",
        "DOCKER_HOST or DOCKER_CONTEXT in the login environment or a profile file, or a current context whose "
        "endpoint is not /var/run/docker.sock (a rootless engine's /run/user/UID/docker.sock, Docker Desktop's "
        "~/.docker/desktop/docker.sock, a TCP address)",
        f"{_BY_HAND}: remove the variable from the file that sets it, or `docker context use default`"),
    "DAEMON_MASKED": Code(
        "docker.service is masked",
        "systemctl show docker.service: LoadState=masked",
        f"{_FIXED}: unmask, reset-failed and start"),
    "SOCKET_MASKED": Code(
        "docker.socket is masked",
        "systemctl show docker.socket: LoadState=masked",
        f"{_FIXED}: unmask, reset-failed and start"),
    "CONFIG_INVALID_JSON": Code(
        "/etc/docker/daemon.json is not valid JSON",
        "dockerd --validate (23.0+) or the journal's `unable to configure the Docker daemon with file ...` "
        "with a JSON syntax error, checked against the file as it is now",
        f"{_FIXED}: restore hostsetup's newest usable backup, else move the file aside (kept beside it)"),
    "CONFIG_UNKNOWN_KEY": Code(
        "/etc/docker/daemon.json has a key this engine does not know",
        "`the following directives don't match any configuration option: KEYS`",
        f"{_FIXED}: restore a backup without those keys, else move the file aside"),
    "CONFIG_FLAG_CONFLICT": Code(
        "an option is set both in daemon.json and as a dockerd flag",
        "`specified both as a flag and in the configuration file`, or hosts in daemon.json while ExecStart has -H",
        f"{_FIXED}: a local hosts moves into an ExecStart drop-in; plain TCP is left to a person"),
    "CONFIG_INVALID_VALUE": Code(
        "/etc/docker/daemon.json has a value the engine rejects",
        "dockerd --validate, `unable to configure ...`, or a fatal start error that names a value set in "
        "daemon.json (the key is named: an invalid bip CIDR, a registry mirror, a log driver ...)",
        f"{_FIXED}: restore hostsetup's newest backup that does not have that value, else move the file aside"),
    "STORAGE_DRIVER_FAILED": Code(
        "the storage driver cannot start on this kernel or on the data-root's filesystem",
        "a fatal line about the graphdriver (`error initializing graphdriver`, `driver not supported`, "
        "`prerequisites for driver not satisfied`, d_type), with the data-root's filesystem type",
        f"{_FIXED} when storage-driver is set in daemon.json (backup or move aside; images stay on disk); "
        "else choose a driver the filesystem serves (overlay2 on ext4 or xfs with ftype=1)",
        dockerd=(r"graph ?driver|storage[- ]driver|storage[- ]opt|driver not supported|prerequisites for driver|"
                 r"d_type|backing (\w+ )?file ?system|overlay2?: |devicemapper|\baufs\b|snapshotter"),
        config_first=False,
        match=1,
        manual=("Use a storage driver this filesystem serves (overlay2 on ext4, or xfs with ftype=1), or move "
                "data-root to such a filesystem.",
                f"sudoedit {DAEMON_JSON}")),
    "USERNS_FAILED": Code(
        "user namespace remapping (userns-remap) cannot be set up",
        "a fatal line about userns, subuid/subgid or remapped root",
        f"{_FIXED} when userns-remap is set in daemon.json; else create the user and its /etc/subuid, "
        "/etc/subgid ranges",
        dockerd=(r"userns|user namespace|subuid|subgid|remapped root|remapping|uid_map|gid_map|newuidmap|newgidmap|"
                 r"(uid|gid|user ?name|group ?name) lookup"),
        config_first=False,
        match=2,
        manual=("Create the remap user and its ranges in /etc/subuid and /etc/subgid, or remove userns-remap.",
                "grep -H . /etc/subuid /etc/subgid")),
    "EXECSTART_INVALID": Code(
        "dockerd's command line (ExecStart or a drop-in) has a flag dockerd does not accept",
        "dockerd's flag parser: `unknown flag`, `flag needs an argument`, `invalid argument ... for ... flag` "
        "(from the journal, or from dockerd --validate run with the unit's flags)",
        f"{_BY_HAND}: correct or remove the drop-in that sets ExecStart, then systemctl daemon-reload",
        dockerd=(r"unknown (shorthand )?flag|flag needs an argument|bad flag syntax|"
                 r"invalid argument \S+ for \S+ flag|See 'dockerd --help'"),
        config_first=False,
        match=0,
        manual=("Correct dockerd's command line in the drop-in that sets ExecStart (or remove the drop-in), then "
                "daemon-reload.",
                "systemctl cat docker.service")),
    "BRIDGE_ADDRESS_FAILED": Code(
        "the default bridge's addresses cannot be set up (in use, overlapping, none free)",
        "a fatal line from the network controller about the bridge, addresses, subnets or pools that names "
        "no daemon.json value",
        f"{_BY_HAND}: set bip or default-address-pools to a range this network does not use",
        dockerd=(r"network controller|\bbridge\b|docker0|\bbip\b|CIDR|subnet|address pool|overlap|gateway|"
                 r"IP address|IPv[46] address|\bMTU\b"),
        match=10,
        manual=("Give the default bridge a free range: set bip or default-address-pools to addresses this network "
                "does not use.",
                "ip -brief address; ip route")),
    "IPTABLES_FAILED": Code(
        "dockerd cannot set up its firewall rules (iptables, nftables, firewalld)",
        "a fatal line naming iptables, ip6tables, nf_tables, a NAT chain or firewalld, with `iptables -V`",
        f"{_BY_HAND}: load the netfilter modules, or make the iptables alternative (legacy or nft) match the "
        "kernel",
        dockerd=r"iptables|ip6tables|nf_tables|nftables|\bNAT chain|firewalld|firewall-backend|\bip_tables\b",
        config_first=False,
        match=3),
    "BINARY_MISSING": Code(
        "a daemon's program is missing or cannot be executed",
        "systemd's status=203/EXEC, `Failed to execute PATH`, `Failed at step EXEC`, or `executable file not "
        "found`",
        f"{_BY_HAND}: reinstall the package that ships it (the command for this system is printed)",
        dockerd=(r"status=203/EXEC|Failed to execute |Failed at step EXEC|to locate executable|"
                 r"executable file not found|exec format error"),
        containerd=r"status=203/EXEC|Failed to execute |Failed at step EXEC|to locate executable",
        match=8),
    "CONTAINERD_CONFIG_INVALID": Code(
        "containerd refuses its own configuration (/etc/containerd/config.toml)",
        "containerd's fatal line since it last started: `failed to load TOML`, an unknown or invalid setting",
        f"{_BY_HAND}: move the file aside (containerd then runs with its defaults) or correct it",
        containerd=(r"toml|config\.toml|configuration|unknown (field|key|option)|invalid (plugin )?config|"
                    r"failed to load"),
        config_first=False,
        match=11),
    "CONTAINERD_DOWN": Code(
        "containerd is not running",
        "containerd.service not active, dockerd's `failed to dial ... containerd`, or `docker version` with "
        "no containerd component; containerd's own fatal line says why",
        f"{_FIXED}: unmask, reset-failed and start containerd",
        dockerd=r"failed to dial .*containerd|containerd did not exit|containerd\.sock",
        config_first=False,
        match=7),
    "DATA_ROOT_FULL": Code(
        "the filesystem of the data-root is full",
        "df on the data-root (space or inodes almost gone), `no space left on device`",
        f"{_BY_HAND}: free space (hostsetup never deletes data), then --fix starts docker",
        dockerd=r"no space left on device",
        config_first=False,
        match=4),
    "RUN_FULL": Code(
        "/run is full",
        "df on /run",
        f"{_BY_HAND}: free space on /run"),
    "DATA_ROOT_UNWRITABLE": Code(
        "the data-root is not writable",
        "the data-root or its nearest existing parent is not writable by root, `read-only file system`",
        f"{_BY_HAND}: remount read-write, or set data-root to a writable filesystem",
        dockerd=r"read-only file system",
        config_first=False,
        match=5),
    "STALE_PIDFILE": Code(
        "/var/run/docker.pid names a live process that is not dockerd",
        "the pid file's PID belongs to another program (a reused PID)",
        f"{_FIXED}: the pid file is moved aside"),
    "OTHER_DOCKERD": Code(
        "another dockerd, not started by systemd, holds the pid file",
        "dockerd's `pid file found` / `is still running` while the PID is a dockerd systemd did not start",
        f"{_BY_HAND}: stop the other dockerd (snap, manual, a second package)",
        dockerd=r"pid file|docker\.pid|is still running",
        config_first=False,
        match=6),
    "DAEMON_START_FAILED": Code(
        "dockerd (or containerd) failed to start: no specific rule knows this error",
        "any fatal line of the current failure that no other code explains, given exactly as logged",
        f"{_BY_HAND}: the line names what the daemon could not do; correct that, then --fix starts docker"),
    "DOCKER_GROUP_MISSING": Code(
        "the docker group does not exist",
        "getent group docker, systemd's `Failed to resolve group docker` / status=216/GROUP",
        f"{_FIXED}: groupadd --system docker and add the user",
        dockerd=r"status=216/GROUP|Failed to resolve group docker|Failed to chown socket",
        config_first=False,
        match=9),
    "DAEMON_DISABLED": Code(
        "docker.service and docker.socket are disabled (not started at boot)",
        "UnitFileState=disabled on both",
        f"{_FIXED}: enable both"),
    "DAEMON_STOPPED": Code(
        "the daemon is stopped and its socket is not listening",
        "docker.service and docker.socket inactive, and the client gets no answer",
        f"{_FIXED}: start docker.socket and docker.service"),
    "START_LIMIT_HIT": Code(
        "systemd gave up restarting docker (start-limit-hit)",
        "Result=start-limit-hit (service-start-limit-hit on the socket), `Start request repeated too quickly`; "
        "the reason logged by the earlier attempts is its own finding, listed first",
        f"{_FIXED} once the cause is gone: reset-failed and start"),
    "USER_NOT_IN_GROUP": Code(
        "the user is not in the docker group",
        "id -Gn USER without docker, and the client's `permission denied`",
        f"{_FIXED}: usermod -aG docker USER (new logins get it)"),
    "USER_SESSION_STALE": Code(
        "the user is in the docker group but this login session predates it",
        "the group database lists docker, this session's groups do not, a fresh login answers",
        f"{_BY_HAND}: log in again or `newgrp docker`"),
    "SOCKET_PERMISSIONS": Code(
        "the socket's owner, group or mode keeps the user out",
        "permission denied on a socket not root:docker 0660 while the user is in the group",
        f"{_BY_HAND}: chown root:docker and chmod 0660 the socket"),
    "UNKNOWN": Code(
        "the daemon does not answer and no rule explains why",
        "given only when no fatal line was logged at all: the client's error, the unit state, the last line",
        f"{_BY_HAND}: read journalctl -u docker -b and systemctl status docker"),
    "LIMITED_PROBES": Code(
        "some probes needed root and sudo asked for a password",
        "sudo -n refused: the journal, validation, backups and writability were not read",
        "run as root or give the user passwordless sudo"),
    "HEALTHY": Code(
        "the daemon answers for the user",
        "docker version as the user answers with a server version, and no error finding",
        "nothing to fix"),
}
RANK = {code: index for index, code in enumerate(CODES)}


def explain(code: str) -> list[str]:
    """``doctor --explain CODE``: the cause, the evidence looked for and the fix."""
    entry = CODES[code]
    return [f"{code}: {entry.summary}", f"  looks for: {entry.looks_for}", f"  fix: {entry.fix}"]


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable code, how bad, the exact evidence and the fix in one sentence."""

    code: str
    severity: str
    evidence: tuple[str, ...]
    fix: str
    command: str = ""        # what to run by hand when ``--fix`` does not do it
    key: str = ""            # the daemon.json key it blames, if any

    @property
    def summary(self) -> str:
        return CODES[self.code].summary

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"code": self.code, "severity": self.severity, "summary": self.summary,
                                    "evidence": list(self.evidence), "fix": self.fix, "command": self.command}
        if self.key:
            found["key"] = self.key
        return found


def ordered(findings: list[Finding]) -> list[Finding]:
    """Root cause first; at most one finding per code (a later one's evidence joins the first)."""
    seen: dict[str, Finding] = {}
    for finding in findings:
        first = seen.get(finding.code)
        if first is None:
            seen[finding.code] = finding
        else:
            extra = tuple(e for e in finding.evidence if e not in first.evidence)
            seen[finding.code] = Finding(first.code, first.severity, first.evidence + extra, first.fix,
                                         first.command, first.key or finding.key)
    return sorted(seen.values(), key=lambda f: RANK[f.code])


def healthy(findings: list[Finding]) -> bool:
    return any(f.code == "HEALTHY" for f in findings)
