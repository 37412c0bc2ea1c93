"""Planning ``--fix``: only safe, reversible repairs, as exact root shell scripts (pure).

Files are moved aside or backed up, never deleted; units are unmasked, enabled,
reset and started; the user is added to the docker group. Anything that could
lose data (freeing disk, removing images) or that hostsetup cannot know the
right answer for (DOCKER_HOST, iptables) stays a printed command.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hostsetup.daemon.listeners import hosts_list, insecure_hosts
from hostsetup.doctor.classify import LOCAL_ENDPOINTS, SUBSYSTEM_KEYS, UNKNOWN_KEYS, parse_config
from hostsetup.doctor.findings import ERROR, INFO, OK, Finding
from hostsetup.doctor.probes import CLIENT_FORMAT, PIDFILE, Probes
from hostsetup.host.command import Command, command, join
from hostsetup.host.dockerd import DEFAULT_ARGV, host_flags
from hostsetup.host.files import write_atomic
from hostsetup.host.paths import DAEMON_JSON, EXECSTART_DROPIN
from hostsetup.render import render
from hostsetup.secrets import file_mode, mask

CONFIG_CODES = ("CONFIG_INVALID_JSON", "CONFIG_UNKNOWN_KEY", "CONFIG_INVALID_VALUE")
# Not the daemon's problem: left unfixed, these do not stop it from starting.
USER_SIDE = ("DOCKER_HOST_ELSEWHERE", "CLIENT_CONFIG_INVALID", "USER_NOT_IN_GROUP", "USER_SESSION_STALE",
             "SOCKET_PERMISSIONS",
             "START_LIMIT_HIT", "DAEMON_STOPPED")
RELOGIN = "log out and back in (or run `newgrp docker`) so existing sessions get the docker group"


@dataclass(frozen=True)
class FixStep:
    """One repair: a root shell script and the finding codes it addresses."""

    name: str
    codes: tuple[str, ...]
    script: str          # what runs
    note: str = ""
    shown: str = ""      # what --dry-run prints (secrets masked, file contents readable); "": the script


@dataclass(frozen=True)
class FixPlan:
    """The repairs for one host, in order, and what is left for a person to do."""

    steps: tuple[FixStep, ...]
    manual: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    regroup: bool = False      # the user's groups change: probe again from a new login

    def describe(self) -> list[str]:
        """The plan as shown (``--dry-run``): secrets masked; ``FixStep.script`` is what runs."""
        lines = []
        for step in self.steps:
            lines.append(f"fix {step.name}" + (f" ({', '.join(step.codes)})" if step.codes else "") + ":")
            lines += [f"    {line}" for line in (step.shown or step.script).splitlines()]
        for finding in self.manual:
            lines.append(f"by hand ({finding.code}): {finding.command or finding.fix}")
        lines += [f"note: {note}" for note in self.notes]
        return [mask(line) for line in lines]


def _bad_keys(findings: Sequence[Finding]) -> set[str]:
    for finding in findings:
        for line in finding.evidence:
            match = re.search(UNKNOWN_KEYS, line)
            if match:
                return {k.strip() for k in match[1].split(",")}
    return set()


def _get(config: dict[str, Any], path: str) -> Any:
    """``config["a"]["b"]`` for ``a.b`` (None when absent); a list's dicts are searched for the rest."""
    value: Any = config
    for part in path.split("."):
        if isinstance(value, list):
            value = next((item[part] for item in value if isinstance(item, dict) and part in item), None)
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def dropin_hosts(argv: Sequence[str], hosts: Sequence[str]) -> list[str]:
    """The -H values of the drop-in: ``fd://`` (the local socket stays socket-activated, so clients
    on /var/run/docker.sock keep working), then the unit's and daemon.json's other addresses."""
    flag_hosts = host_flags(argv or DEFAULT_ARGV)[0]
    return list(dict.fromkeys(["fd://", *[h for h in (*flag_hosts, *hosts) if h not in ("fd://", *LOCAL_ENDPOINTS)]]))


def hosts_execstart(argv: Sequence[str], hosts: Sequence[str]) -> str:
    """dockerd's command line with daemon.json's ``hosts`` as -H flags."""
    rest = host_flags(argv or DEFAULT_ARGV)[1]
    return " ".join([rest[0], *[w for h in dropin_hosts(argv, hosts) for w in ("-H", h)], *rest[1:]])


class _Planner:
    def __init__(self, findings: Sequence[Finding], p: Probes, stamp: str) -> None:
        self.findings, self.p, self.stamp = findings, p, stamp
        # A warning means the daemon runs: only enabling it for the next boot is worth doing then.
        self.codes = {f.code for f in findings if f.severity == ERROR or f.code == "DAEMON_DISABLED"}
        self.steps: list[FixStep] = []
        self.fixed: set[str] = set()
        self.notes: list[str] = []
        self.replaced: dict[str, Finding] = {}   # findings left to a person, with a different fix
        self.regroup = False

    def step(self, name: str, codes: Sequence[str], lines: Sequence[str | Command], note: str = "") -> None:
        script = join(lines)
        self.steps.append(FixStep(name, tuple(codes), script.text, note, script.shown))
        self.fixed.update(codes)

    def has(self, *codes: str) -> list[str]:
        return [c for c in codes if c in self.codes]

    def units(self) -> None:
        if self.has("DAEMON_MASKED", "SOCKET_MASKED"):
            names = [u for c, u in (("DAEMON_MASKED", "docker.service"), ("SOCKET_MASKED", "docker.socket"))
                     if c in self.codes]
            self.step("unmask", self.has("DAEMON_MASKED", "SOCKET_MASKED"), [f"systemctl unmask {' '.join(names)}"])
        if self.has("DAEMON_DISABLED"):
            self.step("enable", ["DAEMON_DISABLED"], ["systemctl enable docker.socket docker.service"])

    def config(self) -> bool:
        """Replace a daemon.json dockerd refuses: by the newest backup when usable, else just move it aside."""
        # Failures daemon.json chose (storage-driver, userns-remap) when they blame one of its keys.
        keyed = [f.code for f in self.findings if f.key and f.code in SUBSYSTEM_KEYS and f.code in self.codes]
        codes = [*self.has(*CONFIG_CODES), *keyed]
        if not codes or self.p.daemon_json is None:
            return False
        aside = f"{DAEMON_JSON}.invalid.{self.stamp}"
        lines: list[str | Command] = [command("mv @FROM@ @TO@", FROM=DAEMON_JSON, TO=aside)]
        backup = self._usable_backup()
        if backup:
            lines.append(command("cp -p @BACKUP@ @TO@", BACKUP=backup, TO=DAEMON_JSON))
            name = "restore daemon.json"
            note = f"restored {backup}; the refused file is kept as {aside}"
        else:
            name = "move daemon.json aside"
            note = f"no usable backup: dockerd starts with its defaults; the refused file is kept as {aside}"
        self.step(name, codes, lines, note)
        self.fixed.add("CONFIG_FLAG_CONFLICT")  # the file that had hosts is gone too
        return True

    def _usable_backup(self) -> str | None:
        p = self.p
        if p.backup is None or p.backup == p.daemon_json:
            return None
        config, _ = parse_config(p.backup, p.engine_version)
        if config is None or _bad_keys(self.findings) & config.keys():
            return None
        current = parse_config(p.daemon_json or "", p.engine_version)[0] or {}
        if any(f.key and _get(config, f.key) is not None and _get(config, f.key) == _get(current, f.key)
               for f in self.findings):
            return None  # the backup sets the value the engine rejected
        argv = p.unit("docker.service").argv
        if "hosts" in config and host_flags(argv)[0]:
            return None
        if insecure_hosts(hosts_list(config.get("hosts")), config, argv):
            return None  # restoring it would open plain TCP
        return p.backup_path

    def hosts(self) -> None:
        p = self.p
        config: dict[str, Any] | None = parse_config(p.daemon_json or "", p.engine_version)[0]
        if "CONFIG_FLAG_CONFLICT" not in self.codes or "CONFIG_FLAG_CONFLICT" in self.fixed:
            return
        if not config or "hosts" not in config:
            return
        hosts = [str(h) for h in hosts_list(config["hosts"])]
        rest = {k: v for k, v in config.items() if k != "hosts"}
        argv = p.unit("docker.service").argv
        plain = insecure_hosts(dropin_hosts(argv, hosts), rest, argv)
        if plain:
            self.refuse_plain_tcp(plain)
            return
        command = hosts_execstart(argv, hosts)
        dropin = render("daemon/execstart.conf.j2", command=command, comment=(
            'Written by hostsetup doctor: "hosts" moved here from /etc/docker/daemon.json, where it',
            "conflicted with this command line's -H (dockerd refuses a key set both ways)."))
        self.step("move hosts to a drop-in", ["CONFIG_FLAG_CONFLICT"], [
            write_atomic(DAEMON_JSON, json.dumps(rest, indent=2) + "\n", file_mode(json.dumps(rest))),
            write_atomic(EXECSTART_DROPIN, dropin, "0644"),
            "systemctl daemon-reload",
        ])

    def refuse_plain_tcp(self, plain: Sequence[str]) -> None:
        """Leave the conflict to a person: moving these addresses into ExecStart would open plain TCP."""
        addresses = ", ".join(plain)
        conflict = next(f for f in self.findings if f.code == "CONFIG_FLAG_CONFLICT")
        self.replaced[conflict.code] = dataclasses.replace(
            conflict, command=f"sudoedit {DAEMON_JSON}",
            fix=f"Remove {addresses} from hosts in {DAEMON_JSON}, or turn on TLS verification (tlsverify with "
                "tlscacert, tlscert and tlskey), then run doctor --fix again; to keep plain TCP on purpose, move "
                "hosts into ExecStart yourself (sudo systemctl edit docker.service).")
        self.notes.append(f"warning: hosts not moved into ExecStart: {addresses} without TLS verification would "
                          "give root on this host to anyone who can reach it")

    def containerd(self) -> None:
        ctd = self.p.unit("containerd.service")
        if "CONTAINERD_DOWN" not in self.codes or not ctd.installed:
            return
        if "CONTAINERD_CONFIG_INVALID" in self.codes or any(
                f.code == "BINARY_MISSING" and "containerd" in " ".join(f.evidence) for f in self.findings):
            return  # it would only fail again: that cause is a person's to fix first
        lines = ["systemctl unmask containerd.service"] if ctd.masked else []
        if ctd.active == "failed":
            lines.append("systemctl reset-failed containerd.service")
        lines.append("timeout 90 systemctl " + ("restart" if ctd.running else "start") + " containerd.service")
        if self.p.unit("docker.service").running:
            # A running dockerd reconnects on its own, after a gRPC back-off: wait for it (at most 60 s).
            lines.append(f"for i in $(seq 60); do timeout 5 docker version --format '{CLIENT_FORMAT}' 2>/dev/null "
                         "| grep -qw containerd && break; sleep 1; done")
        self.step("start containerd", ["CONTAINERD_DOWN"], lines)

    def pidfile(self) -> None:
        pid = self.p.pid
        if "STALE_PIDFILE" not in self.codes or pid is None:
            return
        self.step("move the stale pid file aside", ["STALE_PIDFILE"], [command(
            'if [ "$(cat @PIDFILE@ 2>/dev/null)" = @PID@ ] && [ "$(cat /proc/@PID@/comm 2>/dev/null)" != dockerd ]; '
            "then mv @PIDFILE@ @ASIDE@; fi", PIDFILE=PIDFILE, PID=pid, ASIDE=f"{PIDFILE}.stale.{self.stamp}")])

    def group(self) -> None:
        lines: list[str | Command] = ["groupadd --system docker"] if "DOCKER_GROUP_MISSING" in self.codes else []
        if self.has("USER_NOT_IN_GROUP", "DOCKER_GROUP_MISSING"):
            if self.p.target != "root":
                lines.append(command("usermod -aG docker @USER@", USER=self.p.target))
                self.regroup = True
            self.step("docker group", self.has("DOCKER_GROUP_MISSING", "USER_NOT_IN_GROUP"), lines,
                      f"new logins of {self.p.target} get the docker group; {RELOGIN}")
        if "USER_SESSION_STALE" in self.codes:
            self.fixed.add("USER_SESSION_STALE")
            self.notes.append(f"{self.p.target} is in the docker group already: {RELOGIN}")

    def start(self) -> None:
        svc, sock = self.p.unit("docker.service"), self.p.unit("docker.socket")
        if not svc.installed or (svc.running and sock.running):
            self.fixed.update(self.has("START_LIMIT_HIT", "DAEMON_STOPPED"))
            return
        blocking = [c for c in self.codes if c not in USER_SIDE and c not in self.fixed]
        if blocking:
            self.notes.append(f"docker not started: fix {', '.join(sorted(blocking))} first")
            return
        self.step("start docker", self.has("START_LIMIT_HIT", "DAEMON_STOPPED"), [
            "systemctl reset-failed docker.service docker.socket",
            "timeout 120 systemctl start docker.socket docker.service",
        ])

    def plan(self) -> FixPlan:
        if not self.config():
            self.hosts()
        self.units()
        self.containerd()
        self.pidfile()
        self.group()
        if self.steps or self.has("START_LIMIT_HIT", "DAEMON_STOPPED"):
            self.start()
        manual = tuple(self.replaced.get(f.code, f) for f in self.findings
                       if f.code not in self.fixed and f.severity not in (OK, INFO))
        return FixPlan(tuple(self.steps), manual, tuple(self.notes), self.regroup)


def plan_fixes(findings: Sequence[Finding], probes: Probes, stamp: str) -> FixPlan:
    """The safe repairs for ``findings``; ``stamp`` names the files moved aside (e.g. 20250101T120000)."""
    return _Planner(findings, probes, stamp).plan()
