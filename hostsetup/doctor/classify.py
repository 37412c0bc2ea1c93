"""Pure rules: ``Probes`` in, findings out, root cause first.

Journal lines are evidence only for the current failure (every attempt since the
unit last started) and only when the current state does not contradict them (a
fixed daemon.json does not stay "invalid" because an old line says so). Every
fatal line of that failure becomes evidence: of the finding that already explains
it, else of the finding its words point to (``hostsetup.doctor.causes``), else of
``DAEMON_START_FAILED`` as logged. ``HEALTHY`` needs the daemon to answer the
user's own client and no error finding; ``UNKNOWN`` is left for a client that
fails with no fatal line anywhere, never an all-clear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from hostsetup.distros import family_of
from hostsetup.doctor.causes import (
    CLIENT_CONFIG,
    CONTAINERD_CAUSES,
    DAEMON_CAUSES,
    NOT_CLIENT_CONFIG,
    classify_line,
)
from hostsetup.doctor.findings import CODES, ERROR, INFO, OK, WARNING, Finding, ordered
from hostsetup.doctor.journal import Fatal, Line, current_failure, fatal_lines, first_error, first_match
from hostsetup.doctor.probes import CLIENT_TIMEOUT, PIDFILE, Disk, Probes
from hostsetup.host.dockerd import sets_hosts
from hostsetup.host.paths import DAEMON_JSON
from hostsetup.host.units import Unit

LOCAL_ENDPOINTS = ("", "unix:///var/run/docker.sock", "unix:///run/docker.sock")
CONFIG_LINE = r"unable to configure the Docker daemon with file"
SYNTAX = r"invalid character|unexpected end of JSON|EOF|looking for beginning"
CONFLICT = r"specified both as a flag and in the configuration file"
UNKNOWN_KEYS = r"don't match any configuration option: (.*)"
RESTART = ("sudo systemctl reset-failed docker.service docker.socket && "
           "sudo systemctl start docker.socket docker.service")
CONTAINERD_TOML = "/etc/containerd/config.toml"
# Codes a fatal line only adds evidence to: the state-based rule decides whether they hold now (when it
# does not find them, the line is about a state that is gone: a disk with room again, a pid file removed).
ATTACH_ONLY = ("DATA_ROOT_FULL", "DATA_ROOT_UNWRITABLE", "CONTAINERD_DOWN", "DOCKER_GROUP_MISSING", "OTHER_DOCKERD",
               "STALE_PIDFILE")
# The daemon.json key that chooses a subsystem: set there, it is what the failure is about.
SUBSYSTEM_KEYS = {"STORAGE_DRIVER_FAILED": "storage-driver", "USERNS_FAILED": "userns-remap"}
# Client variables that change what the client does, and the words of the errors they cause.
CLIENT_VARIABLES = {"DOCKER_API_VERSION": r"API version|client version",
                    "DOCKER_TLS_VERIFY": r"certificate|\btls\b|x509|\.pem\b",
                    "DOCKER_CERT_PATH": r"certificate|\btls\b|x509|\.pem\b"}
ROOTLESS = re.compile(r"^unix:///run/user/(\d+)/docker\.sock$")
DESKTOP = re.compile(r"/\.docker/desktop/docker\.sock$")


def parse_config(text: str, engine: tuple[int, int]) -> tuple[dict[str, Any] | None, str]:
    """daemon.json as dockerd of that version reads it: (object, None) or (None, why not)."""
    if text.startswith("\ufeff") and engine < (23, 0):
        return None, "the file starts with a UTF-8 byte order mark"
    if not text.strip():
        return ({}, "") if engine >= (23, 0) else (None, "the file is empty (dockerd before 23.0 fails with EOF)")

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text.lstrip("\ufeff"), parse_constant=refuse)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, "the top level is not a JSON object"
    return value, ""


def unit_state(unit: Unit) -> str:
    text = f"{unit.name} LoadState={unit.load} ActiveState={unit.active} SubState={unit.sub}"
    text += f" UnitFileState={unit.file_state or '-'}"
    return text + (f" Result={unit.result}" if unit.result else "")


def endpoint_kind(endpoint: str) -> str:
    """What an endpoint is, for the evidence: a rootless engine's socket, Docker Desktop's, another address."""
    rootless = ROOTLESS.match(endpoint)
    if rootless:
        return f"{endpoint} (the rootless engine socket of uid {rootless[1]})"
    if DESKTOP.search(endpoint):
        return f"{endpoint} (Docker Desktop's socket)"
    return endpoint


class _Rules:
    """The rules over one host's probes; ``findings()`` runs them all."""

    def __init__(self, p: Probes) -> None:
        self.p = p
        self.svc, self.sock, self.ctd = p.unit("docker.service"), p.unit("docker.socket"), p.unit("containerd.service")
        self.systemd = self.svc.installed
        self.up = self.svc.running if self.systemd else p.client.answers
        # dockerd's errors from the current failure matter only while the daemon is not up.
        journal = list(p.journal_errors) or [Line(text) for text in p.journal]
        self.attempt = [] if self.up else current_failure(journal, "docker")
        self.config, self.config_error = (parse_config(p.daemon_json, p.engine_version)
                                          if p.daemon_json is not None else ({}, ""))
        self.fatals = [f for f in fatal_lines(self.attempt) if not self.stale(f)]
        self.ctd_fatals = ([] if self.ctd.running or not self.ctd.installed
                           else fatal_lines(current_failure(journal, "containerd")))
        self.family = family_of(p.os_ids)
        self.out: list[Finding] = []

    def stale(self, fatal: Fatal) -> bool:
        """A line logged before daemon.json last changed, or one about a daemon.json that is gone or now
        accepted: no attempt has been made since, so it says nothing about the host as it is."""
        p = self.p
        if fatal.last and p.daemon_json_mtime and fatal.last < p.daemon_json_mtime:
            return True
        if re.search(CONFIG_LINE, fatal.text):
            return p.daemon_json is None or bool(p.validation and p.validation.supported and p.validation.ok)
        return False

    def reinstall(self, package: str) -> str:
        return f"sudo {self.family.reinstall} {package}" if self.family else f"reinstall {package}"

    def add(self, code: str, severity: str, evidence: Sequence[str | None], fix: str, command: str = "") -> None:
        self.out.append(Finding(code, severity, tuple(e for e in evidence if e), fix, command))

    def daemon_severity(self) -> str:
        return WARNING if self.up else ERROR

    def journal(self, pattern: str) -> str | None:
        line = first_match(self.attempt, pattern)
        return line.text if line else None

    # -- the client's endpoint ---------------------------------------------------------
    def endpoint(self) -> None:
        p = self.p
        evidence: list[str | None] = []
        commands: list[str] = []
        host = p.env.get("DOCKER_HOST")
        for line in p.env_files:
            path, _, rest = line.partition(":")
            value = re.search(r"DOCKER_HOST=[\"']?([^\"'\s]*)", rest)
            named = re.search(r"DOCKER_CONTEXT=[\"']?([^\"'\s]*)", rest)
            if (value and value[1] not in LOCAL_ENDPOINTS) or (named and named[1] not in ("", "default")):
                evidence.append(line)
                sudo = "" if path.startswith(p.home + "/") else "sudo "
                commands.append(f"{sudo}sed -i.bak '/^[^#]*DOCKER_\\(HOST\\|CONTEXT\\)=/d' {path}")
        if host is not None and host not in LOCAL_ENDPOINTS:
            evidence.insert(0, f"DOCKER_HOST={endpoint_kind(host)} (in the login environment)")
            if not commands:
                commands.append("unset DOCKER_HOST")
        context = p.env.get("DOCKER_CONTEXT") or ("" if host else p.current_context)
        if context and context != "default" and context in p.contexts \
                and p.contexts[context] not in LOCAL_ENDPOINTS:
            evidence.insert(0, f"docker context {context}: {endpoint_kind(p.contexts[context])}")
            commands.append("docker context use default")
        if evidence:
            client = self.client_line(r"at (?!unix:///(var/)?run/docker\.sock)\S+://")
            self.add("DOCKER_HOST_ELSEWHERE", ERROR, [*evidence, client],
                     "Point the client back at this host's daemon: remove DOCKER_HOST/DOCKER_CONTEXT where it is "
                     "set and log in again.", " && ".join(dict.fromkeys(commands)))
        self.client_config(context)

    def client_config(self, context: str) -> None:
        """The client stopped by its own configuration: a context that does not exist, a file it cannot read."""
        p = self.p
        if p.client.answers:
            return
        said = [line.strip() for line in p.client.err.splitlines()
                if CLIENT_CONFIG.search(line) and not NOT_CLIENT_CONFIG.search(line)]
        missing = context and context != "default" and context not in p.contexts
        if not said and not missing:
            return
        evidence = [*said]
        if missing:
            where = "DOCKER_CONTEXT" if p.env.get("DOCKER_CONTEXT") else f"{p.home}/.docker/config.json"
            evidence.append(f"current context {context!r} ({where}) has no metadata under ~/.docker/contexts")
        named = next((m[0] for line in said for m in [re.search(r"/\S*config\.json", line)] if m), "")
        variables = [name for name, words in CLIENT_VARIABLES.items()
                     if any(re.search(words, line, re.IGNORECASE) for line in said)
                     and (name in p.env or any(f"{name}=" in line for line in p.env_files))]
        if variables:
            evidence += [f"{name}={p.env[name]} (in the login environment)" for name in variables if name in p.env]
            files = [line for line in p.env_files if any(f"{name}=" in line for name in variables)]
            evidence += files
            pattern = "\\|".join(variables)
            edits = [f"{'' if path.startswith(p.home + '/') else 'sudo '}sed -i.bak '/^[^#]*\\({pattern}\\)=/d' {path}"
                     for path in dict.fromkeys(line.partition(":")[0] for line in files)]
            command = " && ".join(edits) or "unset " + " ".join(variables)
            fix = f"Remove {', '.join(variables)} from the client's environment where it is set, and log in again."
        elif missing or any("context" in line.lower() for line in said):
            # The CLI cannot even start with a missing current context (20.10 refuses `context use` too):
            # naming the default one for this command lets it rewrite config.json, other keys kept.
            command = ("unset DOCKER_CONTEXT" if p.env.get("DOCKER_CONTEXT")
                       else "DOCKER_CONTEXT=default docker context use default")
            fix = "Switch the client back to the default context (or create the context it names)."
        else:
            command = f"editor {named}" if named else "docker version"
            fix = f"Correct {named or 'the client configuration the error names'}, or move it aside."
        self.add("CLIENT_CONFIG_INVALID", ERROR, evidence, fix, command)

    # -- units ---------------------------------------------------------------------------
    def units(self) -> None:
        svc, sock = self.svc, self.sock
        if not self.systemd:
            return
        if svc.masked:
            self.add("DAEMON_MASKED", ERROR, [unit_state(svc), self.journal(r"docker\.service is masked")],
                     "Unmask docker.service and start it.", "sudo systemctl unmask docker.service && " + RESTART)
        if sock.masked:
            self.add("SOCKET_MASKED", ERROR, [unit_state(sock), self.journal(r"docker\.socket is masked")],
                     "Unmask docker.socket and start it.", "sudo systemctl unmask docker.socket && " + RESTART)
        disabled = svc.file_state == "disabled" and sock.file_state != "enabled"
        if disabled:
            self.add("DAEMON_DISABLED", WARNING if svc.running else ERROR, [unit_state(svc), unit_state(sock)],
                     "Enable docker.socket and docker.service so the daemon comes back after a reboot.",
                     "sudo systemctl enable --now docker.socket docker.service")
        limit = (sock.result == "service-start-limit-hit" or svc.result == "start-limit-hit"
                 or (not svc.running and self.journal(r"Start request repeated too quickly") is not None))
        if limit and not svc.running:
            self.add("START_LIMIT_HIT", ERROR,
                     [unit_state(sock) if sock.result == "service-start-limit-hit" else unit_state(svc),
                      self.journal(r"Start request repeated too quickly")],
                     "After fixing the cause, clear systemd's failed state and start docker again.", RESTART)
        elif (not svc.running and svc.active == "inactive" and not sock.running and not disabled
              and not svc.masked and not sock.masked and not self.p.client.answers):
            self.add("DAEMON_STOPPED", ERROR, [unit_state(svc), unit_state(sock), self.client_line()],
                     "Start docker.socket and docker.service.", RESTART)

    def containerd(self) -> None:
        ctd = self.ctd
        dial = self.journal(r"failed to dial .*containerd|containerd did not exit successfully")
        if ctd.installed and not ctd.running:
            self.containerd_causes()
            said = [f.evidence for f in self.ctd_fatals]
            last = self.p.journal_containerd[-1] if self.p.journal_containerd and not said else None
            self.add("CONTAINERD_DOWN", ERROR, [unit_state(ctd), *said, dial, last],
                     ("Unmask and start" if ctd.masked else "Start") + " containerd.service.",
                     ("sudo systemctl unmask containerd.service && " if ctd.masked else "")
                     + "sudo systemctl start containerd.service")
        elif self.p.client.answers and self.p.client.components and "containerd" not in self.p.client.components:
            components = " ".join(self.p.client.components)
            self.add("CONTAINERD_DOWN", ERROR, [f"docker version: server components {components} (no containerd)",
                                                unit_state(ctd) if ctd.installed else None],
                     "Restart containerd.service; dockerd reconnects to it by itself.",
                     "sudo systemctl restart containerd.service")
        elif not ctd.installed and dial:
            self.add("CONTAINERD_DOWN", ERROR, [dial], "Install or start containerd (the containerd.io package).",
                     self.reinstall("containerd.io"))

    def containerd_causes(self) -> None:
        """Why containerd itself does not start, from its own fatal lines."""
        for fatal in self.ctd_fatals:
            code, _key, _value = classify_line(fatal.text, CONTAINERD_CAUSES, {})
            if code == "BINARY_MISSING":
                self.add(code, ERROR, [fatal.evidence], "Reinstall containerd.io (containerd's program is missing).",
                         self.reinstall("containerd.io"))
            elif code == "CONTAINERD_CONFIG_INVALID":
                path = re.search(r"(/\S+\.toml)", fatal.text)
                toml = path[1].rstrip(":,") if path else CONTAINERD_TOML
                self.add(code, ERROR, [fatal.evidence],
                         f"Correct {toml}, or move it aside so that containerd starts with its defaults.",
                         f"sudo mv {toml} {toml}.invalid.$(date +%Y%m%dT%H%M%S) && "
                         "sudo systemctl restart containerd.service")

    # -- daemon.json -----------------------------------------------------------------------
    def config_line(self) -> str | None:
        """What dockerd says about daemon.json now: ``--validate`` where it exists, else the journal
        (only a line logged after the file last changed)."""
        p = self.p
        if p.validation and p.validation.supported:
            if p.validation.ok:
                return None
            said = [line for line in p.validation.output if CONFIG_LINE in line] or list(p.validation.output)
            return said[0] if said else "dockerd --validate failed"
        line = first_match(self.attempt, CONFIG_LINE)
        return line.text if line and (line.time == 0 or line.time >= self.p.daemon_json_mtime) else None

    def configuration(self) -> None:
        p = self.p
        if p.daemon_json is None:
            return
        severity = self.daemon_severity()
        line = self.config_line()
        validated = p.validation is not None and p.validation.supported and p.validation.ok
        if self.config is None and not validated:
            self.add("CONFIG_INVALID_JSON", severity, [line if line and re.search(SYNTAX, line) else None,
                                                       f"{DAEMON_JSON}: {self.config_error}"],
                     "Restore the last good daemon.json from hostsetup's backups, or move the broken file aside.")
            return
        config = self.config or {}
        keys = re.search(UNKNOWN_KEYS, line or "")
        if keys:
            self.add("CONFIG_UNKNOWN_KEY", severity, [line],
                     f"Remove or rename {keys[1].strip()} (or restore the last good daemon.json).")
        conflict = line if line and re.search(CONFLICT, line) else None
        if "hosts" in config and sets_hosts(self.svc.argv):
            self.add("CONFIG_FLAG_CONFLICT", severity,
                     [conflict, f'{DAEMON_JSON}: "hosts": {json.dumps(config["hosts"])}',
                      "ExecStart: " + " ".join(self.svc.argv)],
                     "Keep hosts in one place: move them from daemon.json into an ExecStart drop-in.")
        elif conflict:
            name = re.search(r"configuration file: (\S+):", conflict)
            self.add("CONFIG_FLAG_CONFLICT", severity, [conflict, "ExecStart: " + " ".join(self.svc.argv)],
                     f"Set {name[1] if name else 'the option'} either in daemon.json or in ExecStart, not both.",
                     "sudo systemctl edit docker.service")
        if line and not keys and not conflict:
            code, key, value = classify_line(line, DAEMON_CAUSES, config)
            if code == "EXECSTART_INVALID":
                key = value = ""   # --validate was given the unit's flags too: the flag is the culprit
            elif code not in SUBSYSTEM_KEYS:
                code = "CONFIG_INVALID_VALUE"
            self.blamed(code, severity, line, key, value)

    # -- storage, pid file, network ----------------------------------------------------------------
    def storage(self) -> None:
        p = self.p
        for disk, code in ((p.disks[0] if p.disks else None, "DATA_ROOT_FULL"), (p.disk("/run"), "RUN_FULL")):
            if disk is None or not _full(disk):
                continue
            enospc = self.journal(r"no space left on device")
            self.add(code, self.daemon_severity(),
                     [f"{disk.path}: {disk.avail_kb} KiB free of {disk.size_kb} KiB, {disk.inodes_free} inodes free "
                      f"(filesystem {disk.mount})", enospc],
                     f"Free space on {disk.mount} (old container logs, unused images once the daemon runs; "
                     "hostsetup never deletes data), then run doctor --fix again.",
                     f"sudo du -xh --max-depth=2 {disk.existing} | sort -h | tail -n 15")
        root = p.disks[0] if p.disks else None
        if root and root.writable is False:
            self.add("DATA_ROOT_UNWRITABLE", self.daemon_severity(),
                     [f"{root.path}: {root.existing} is not writable by root (filesystem {root.mount})",
                      self.journal(r"read-only file system|permission denied")],
                     f"Make {root.mount} writable (remount read-write) or set data-root to a writable filesystem.",
                     f"sudo mount -o remount,rw {root.mount} && {RESTART}")

    def pidfile(self) -> None:
        p = self.p
        if p.pid is None or p.pid_comm is None or not self.systemd or self.up:
            return
        line = self.journal(r"pid file found|is still running")
        if p.pid_comm != "dockerd":
            self.add("STALE_PIDFILE", ERROR, [f"{PIDFILE}: {p.pid} (a running {p.pid_comm}, not dockerd)", line],
                     f"Move the stale {PIDFILE} aside (its PID now belongs to {p.pid_comm}) and start docker.")
        elif line and p.pid != self.svc.main_pid:
            # Only with dockerd's own refusal: a client may just have socket-activated the real one.
            self.add("OTHER_DOCKERD", ERROR, [f"{PIDFILE}: {p.pid} (a dockerd that systemd did not start)", line],
                     "Stop the other dockerd (snap, manual or a second package) before starting docker.service.",
                     f"ps -o pid,args -p {p.pid}")

    # -- every other fatal line of the current failure -------------------------------------------
    def fatal(self) -> None:
        """Each fatal line no finding holds yet: evidence of what its words name, else DAEMON_START_FAILED.
        A line the host's state now contradicts is dropped from ``fatals``: nothing was tried since."""
        config = self.config or {}
        current = []
        for fatal in self.fatals:
            if any(fatal.text in e for f in self.out for e in f.evidence):
                current.append(fatal)
                continue
            code, key, value = classify_line(fatal.text, DAEMON_CAUSES, config)
            present = {f.code for f in self.out}
            if code == "OTHER_DOCKERD" and "STALE_PIDFILE" in present:
                code = "STALE_PIDFILE"
            if self.gone(code, fatal.text) or (code in ATTACH_ONLY and code not in present):
                continue  # the program is back, the disk has room, containerd runs, the pid file is gone ...
            current.append(fatal)
            if code in ATTACH_ONLY:  # the state-based rule found it: one more piece of its evidence
                self.add(code, ERROR, [fatal.evidence], "")
            else:
                self.blamed(code, ERROR, fatal.evidence, key, value)
        self.fatals = current

    def gone(self, code: str, text: str) -> bool:
        """The state now contradicts a line of this kind: it was logged, nothing has been tried since."""
        p = self.p
        if code == "BINARY_MISSING":
            return bool(p.engine)          # dockerd --version answers again
        if code == "EXECSTART_INVALID":    # the flag it names is no longer on the command line
            flags = [f for f in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text) if f != "--help"]
            return bool(flags) and not any(w == f or w.startswith(f"{f}=") for f in flags for w in self.svc.argv)
        if code == "IPTABLES_FAILED":      # iptables answers for the nat table now (firewalld is another matter)
            return p.system.get("iptables-nat") == "ok" and "firewalld" not in text.lower()
        return False

    def blamed(self, code: str, severity: str, said: str, key: str, value: str) -> None:
        """A finding from what the engine said, naming the daemon.json key it is about (if any)."""
        config = self.config or {}
        if not key and SUBSYSTEM_KEYS.get(code, "") in config:
            key = SUBSYSTEM_KEYS[code]
            value = str(config[key])
        blame = f'{DAEMON_JSON}: "{key}": {value!r} is the value the engine rejected' if key else None
        fix, command = self.fix_for(code, key)
        self.out.append(Finding(code, severity, tuple(e for e in (said, blame, *self.context_of(code)) if e),
                                fix, command, key))

    def context_of(self, code: str) -> list[str]:
        p = self.p
        root = p.disks[0] if p.disks else None
        if code == "STORAGE_DRIVER_FAILED" and root:
            driver = (self.config or {}).get("storage-driver")
            return [f"data-root {root.path} is on {root.fs_type or 'an unknown filesystem'} ({root.mount})"
                    + (f"; storage-driver {driver!r}" if driver else "")]
        if code == "IPTABLES_FAILED":
            return [f"iptables: {p.system.get('iptables', '?')}"]
        if code == "EXECSTART_INVALID":
            return ["ExecStart: " + " ".join(self.svc.argv),
                    *(f"drop-in: {path}" for path in self.svc.drop_ins)]
        return []

    def firewall_fix(self) -> tuple[str, str]:
        if self.p.system.get("iptables", "absent") == "absent":
            return ("Install iptables (dockerd runs it to set up container networking).", self.reinstall("iptables"))
        return ("Load the netfilter modules or switch the iptables alternative (legacy or nft) to match the kernel.",
                "sudo modprobe ip_tables iptable_nat; sudo update-alternatives --config iptables")

    def fix_for(self, code: str, key: str) -> tuple[str, str]:
        """The fix sentence and the command to run by hand for a code found from a fatal line."""
        restore = "restore the last good daemon.json (doctor --fix does: its newest backup, else the file moved aside)"
        if key and (code == "CONFIG_INVALID_VALUE" or code in SUBSYSTEM_KEYS):
            return f"Correct or remove {key} in {DAEMON_JSON}, or {restore}.", f"sudoedit {DAEMON_JSON}"
        if code == "IPTABLES_FAILED":
            return self.firewall_fix()
        if code == "BINARY_MISSING":
            return ("Reinstall the engine: the program systemd runs is missing or cannot run.",
                    self.reinstall("docker-ce"))
        manual = CODES[code].manual if code in CODES else None
        return manual or ("Correct what the line names (it is dockerd's own last word), then run doctor --fix.",
                          "sudo journalctl -u docker.service -u docker.socket -b --no-pager | tail -n 50")

    # -- the user --------------------------------------------------------------------------------
    def user(self) -> None:
        p = self.p
        if p.docker_group is None and self.systemd:
            self.add("DOCKER_GROUP_MISSING", ERROR, ["getent group docker: no such group",
                                                     self.journal(r"Failed to resolve group|Failed to chown"),
                                                     *self.sockets()],
                     "Create the docker group (docker.socket needs it) and add the user.",
                     f"sudo groupadd --system docker && sudo usermod -aG docker {p.target}")
        if p.database_groups is None:
            self.add("UNKNOWN", ERROR, [f"id -Gn {p.target}: no such user"], f"Check the user name {p.target}.")
        if p.target == "root" or p.client.answers or p.database_groups is None:
            return
        denied = self.client_line(r"permission denied")
        if "docker" not in p.database_groups:
            self.add("USER_NOT_IN_GROUP", ERROR, [f"id -Gn {p.target}: {' '.join(sorted(p.database_groups))}",
                                                  denied],
                     f"Add {p.target} to the docker group, then log in again (or run `newgrp docker`).",
                     f"sudo usermod -aG docker {p.target}")
        elif p.target == p.user and "docker" not in p.session_groups:
            fresh = p.client_fresh
            self.add("USER_SESSION_STALE", ERROR,
                     [f"id -Gn (this session): {' '.join(sorted(p.session_groups))}",
                      f"id -Gn {p.target} (group database): {' '.join(sorted(p.database_groups))}", denied,
                      f"a fresh login answers (sudo -u {p.target} docker version: {fresh.version})"
                      if fresh and fresh.answers else None],
                     "Log out and back in (or run `newgrp docker`; restart long-running agents) to pick up "
                     "the docker group.", "newgrp docker")
        elif denied:
            sockets = self.sockets()
            self.add("SOCKET_PERMISSIONS", ERROR, [denied, *sockets],
                     "Give the socket back its root:docker 0660 (never chmod 666: that hands root to everyone).",
                     "sudo chown root:docker /run/docker.sock && sudo chmod 0660 /run/docker.sock")

    def sockets(self) -> list[str]:
        """``stat`` of the socket paths; /var/run/docker.sock only when it differs from /run's."""
        seen: dict[tuple[str, str, str, str], str] = {}
        for path, info in self.p.socket.items():
            if info:
                seen.setdefault(info, path)
        return [f"{path}: {' '.join(info)}" for info, path in seen.items()]

    def client_line(self, pattern: str = r".") -> str | None:
        """The user's client error line matching ``pattern`` (a timeout says so)."""
        regex = re.compile(pattern)
        line = next((line for line in self.p.client.err.splitlines() if regex.search(line)), None)
        if line is None and self.p.client.rc == 124 and pattern == ".":
            return f"docker version (as {self.p.target}) did not answer within {CLIENT_TIMEOUT}s"
        return line

    # -- the verdict --------------------------------------------------------------------------------
    def verdict(self) -> None:
        p = self.p
        if not p.has_root:
            self.add("LIMITED_PROBES", INFO, [f"sudo -n: {p.privilege}"],
                     "Journal, daemon.json validation, backups and writability were not checked: give the user "
                     "passwordless sudo or run as root.")
        errors = [f for f in self.out if f.severity == ERROR]
        if p.client.answers and not errors:
            self.add("HEALTHY", OK, [f"docker version (as {p.target}): server {p.client.version}"],
                     "Nothing to fix.")
            return
        if p.client.answers:
            return
        user_side = {"USER_NOT_IN_GROUP", "USER_SESSION_STALE", "SOCKET_PERMISSIONS"}
        if self.client_line(r"permission denied"):
            explained = any(f.code in user_side for f in errors)
        else:
            explained = any(f.code not in user_side for f in errors)
        if not explained:
            last = first_error(self.attempt)
            self.add("UNKNOWN", ERROR,
                     [self.client_line(), unit_state(self.svc) if self.systemd else None, last.text if last else None],
                     "No rule matched: read `journalctl -u docker -b` and `systemctl status docker` on the host.",
                     "sudo journalctl -u docker.service -u docker.socket -b --no-pager | tail -n 50")

    def findings(self) -> list[Finding]:
        p = self.p
        if not p.engine and not self.systemd and not p.client.answers:
            self.add("NOT_INSTALLED", ERROR, [f"dockerd: not found; docker.service: {self.svc.load}",
                                              self.client_line()],
                     "Install Docker Engine.", f"hostsetup -H <this host> install --users {p.target}")
            return ordered(self.out)
        for rule in (self.endpoint, self.units, self.containerd, self.configuration, self.storage, self.pidfile,
                     self.user, self.fatal, self.verdict):
            rule()
        return ordered(self.out)


def _full(disk: Disk) -> bool:
    if disk.size_kb <= 0:
        return False
    space = disk.avail_kb < min(100 * 1024, disk.size_kb // 20)
    inodes = disk.inodes > 0 and disk.inodes_free < min(1000, disk.inodes // 20)
    return space or inodes


def classify(p: Probes) -> list[Finding]:
    """Findings for one host's probes, root cause first."""
    return _Rules(p).findings()


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]
