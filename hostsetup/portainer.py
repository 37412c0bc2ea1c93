"""Portainer on a host, the same way every time: planning (pure) and the script that carries it out.

Portainer CE (``portainer/portainer-ce``, pinned) or the agent (``portainer/agent``), pulled through
the host's configured registry mirror, ``--restart=always``, the Docker socket mounted, HTTPS on 9443
(the agent: 9001), bound to the address asked for. The container carries a label with a hash of
everything hostsetup chose (image, ports, mounts, arguments): recreated only when that changes,
the named volume kept. A new container that does not answer puts the previous one back."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from hostsetup.distros import Platform, UnsupportedSystem, resolve_platform
from hostsetup.facts import HostFacts
from hostsetup.host.command import Command, Raw, command, join, words
from hostsetup.operations import Operation, Run, WriteUserFile
from hostsetup.plan import PlanError
from hostsetup.steps import Plan, Step

DEFAULT_VERSION = "2.21.4"
SERVER_IMAGE = "portainer/portainer-ce"
AGENT_IMAGE = "portainer/agent"
LEGACY_IMAGE = "portainer/portainer"   # the guides' name: Portainer 1.x, end of life since 2022
SERVER, AGENT = "portainer", "portainer_agent"
DATA_VOLUME = "portainer_data"
LABEL = "hostsetup.portainer"
PASSWORD_FILE = "/var/lib/hostsetup/portainer/admin-password"
PASSWORD_IN_CONTAINER = "/run/secrets/portainer-admin-password"
SOCKET = "/var/run/docker.sock"
WAIT_SECONDS = 30


@dataclass(frozen=True)
class PortainerSettings:
    agent: bool = False
    version: str = DEFAULT_VERSION
    image: str = ""                      # "": portainer/portainer-ce (agent: portainer/agent)
    bind: str = "0.0.0.0"
    edge: bool = False                   # publish 8000 (edge agents' tunnel)
    http: bool = False                   # publish 9000 (legacy plain HTTP)
    admin_password: str | None = None    # set on first start only (Portainer's own rule)
    remove: bool = False
    purge_data: bool = False

    @property
    def name(self) -> str:
        return AGENT if self.agent else SERVER

    @property
    def reference(self) -> str:
        return f"{self.image or (AGENT_IMAGE if self.agent else SERVER_IMAGE)}:{self.version}"

    @property
    def port(self) -> int:
        return 9001 if self.agent else 9443

    def ports(self) -> tuple[int, ...]:
        return (9001,) if self.agent else (9443, *((8000,) if self.edge else ()), *((9000,) if self.http else ()))

    def mounts(self) -> tuple[str, ...]:
        if self.agent:
            return (f"{SOCKET}:{SOCKET}", "/var/lib/docker/volumes:/var/lib/docker/volumes")
        password = (f"{PASSWORD_FILE}:{PASSWORD_IN_CONTAINER}:ro",) if self.admin_password else ()
        return (f"{SOCKET}:{SOCKET}", f"{DATA_VOLUME}:/data", *password)

    def arguments(self) -> tuple[str, ...]:
        return ("--admin-password-file", PASSWORD_IN_CONTAINER) if self.admin_password and not self.agent else ()

    def config_hash(self) -> str:
        """What hostsetup chose, as the label's value: another value means another container."""
        chosen = {"image": self.reference, "bind": self.bind, "ports": self.ports(), "mounts": self.mounts(),
                  "args": self.arguments(), "restart": "always"}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]

    def run_line(self) -> Command:
        """The ``docker run`` of the container, each value one word."""
        bind = f"[{self.bind}]" if ":" in self.bind else self.bind
        ports = join((command("-p @PORT@", PORT=f"{bind}:{p}:{p}") for p in self.ports()), " ")
        mounts = join((command("-v @MOUNT@", MOUNT=m) for m in self.mounts()), " ")
        args = command(" @ARGS@", ARGS=words(*self.arguments())) if self.arguments() else Raw("")
        return command("docker run -d --name @NAME@ --restart=always @PORTS@ @MOUNTS@ --label @LABEL@ @IMAGE@@ARGS@",
                       NAME=self.name, PORTS=ports, MOUNTS=mounts, LABEL=f"{LABEL}={self.config_hash()}",
                       IMAGE=self.reference, ARGS=args)

    def run_command(self) -> str:
        return self.run_line().text

    @property
    def answer_url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}/"


# The script of ``deploy_script``: pull, set the previous container aside, run, wait, put back on failure.
_DEPLOY = """if ! out=$(timeout 300 docker pull -q @IMAGE@ 2>&1); then
  echo "docker pull @IMAGE_SAID@ failed: $(echo "$out" | tail -n 1); nothing changed" >&2
  exit 1
fi
@VOLUME@if docker inspect --type container @PREVIOUS@ >/dev/null 2>&1; then
  if docker inspect --type container @NAME@ >/dev/null 2>&1; then docker rm -f @PREVIOUS@ >/dev/null
  else docker rename @PREVIOUS@ @NAME@; fi
fi
old=
if docker inspect --type container @NAME@ >/dev/null 2>&1; then
  if ! docker rename @NAME@ @PREVIOUS@; then echo 'cannot set @NAME_SAID@ aside; nothing changed' >&2; exit 1; fi
  old=@PREVIOUS@
  if ! docker stop @PREVIOUS@ >/dev/null; then
    docker rename @PREVIOUS@ @NAME@; echo 'cannot stop @NAME_SAID@; nothing changed' >&2; exit 1
  fi
fi
answers() {
  i=0; while [ $i -lt @TRIES@ ]; do
    curl -sk -o /dev/null --max-time 2 @URL@ && return 0
    [ "$(docker inspect -f '{{.State.Running}}' @NAME@ 2>/dev/null)" = true ] || return 1
    i=$((i + 1)); sleep 0.5
  done; return 1
}
if out=$(@RUN@ 2>&1); then
  if answers; then
    [ -z "$old" ] || docker rm "$old" >/dev/null
    exit 0
  fi
  why="did not answer on @URL_SAID@ within @WAIT@ s: $(docker logs --tail 3 @NAME@ 2>&1 | tail -n 1)"
else
  why="could not start: $(echo "$out" | tail -n 1)"
fi
docker rm -f @NAME@ >/dev/null 2>&1 || true
back=""; if [ -n "$old" ] && docker rename "$old" @NAME@ && docker start @NAME@ >/dev/null; then
  back='; the previous container runs again'
fi
echo "@NAME_SAID@ $why$back" >&2
exit 1"""

# What may stand as it is inside a quoted message of the script (an image reference, a URL, a name).
_LITERAL = re.compile(r"[\w.:/@\[\]%+,=-]*")


def _said(value: str) -> Raw:
    """``value`` as text of a quoted message (validated where it came in: an image reference, a URL);
    anything the shell would read there other than as itself is refused."""
    if not _LITERAL.fullmatch(value):
        raise PlanError(f"{value!r} cannot be said in the Portainer script as it is")
    return Raw(value)


def deploy_command(settings: PortainerSettings) -> Command:
    """Pull, keep the previous container aside, run the new one, wait until it answers over HTTPS;
    if it does not, remove it and put the previous one back."""
    volume = command("docker volume create @VOLUME@ >/dev/null\n", VOLUME=DATA_VOLUME) if not settings.agent \
        else Raw("")
    return command(_DEPLOY, IMAGE=settings.reference, IMAGE_SAID=_said(settings.reference), VOLUME=volume,
                   NAME=settings.name, NAME_SAID=_said(settings.name), PREVIOUS=f"{settings.name}.hostsetup-previous",
                   TRIES=WAIT_SECONDS * 2, URL=settings.answer_url, URL_SAID=_said(settings.answer_url),
                   RUN=settings.run_line(), WAIT=WAIT_SECONDS)


def deploy_script(settings: PortainerSettings) -> str:
    """``deploy_command``'s text: what runs."""
    return deploy_command(settings).text


def _platform(facts: HostFacts) -> Plan:
    try:
        return Plan(resolve_platform(facts.os_release))
    except UnsupportedSystem as exc:
        raise PlanError(str(exc)) from None


def plan_portainer(facts: HostFacts, settings: PortainerSettings) -> Plan:
    """One ``portainer`` (or ``portainer-agent``) step: nothing when the container is as chosen."""
    platform = _platform(facts).platform
    step = "portainer-agent" if settings.agent else "portainer"
    containers = _engine_answers(facts, settings)
    current = containers.get(settings.name)
    leftover = f"{settings.name}.hostsetup-previous" in containers
    if settings.remove:
        return _removal(platform, step, facts, settings, current is not None, leftover)
    return _running(platform, step, facts, settings, current, leftover)


def _engine_answers(facts: HostFacts, settings: PortainerSettings) -> dict[str, dict[str, Any]]:
    """The engine's containers; refused when there is no engine, it does not answer, or curl is missing."""
    if not facts.dockerd_version:
        raise PlanError("Docker Engine is not installed here (no dockerd): run `hostsetup install` first")
    if facts.containers is None:
        if facts.uid == 0 or facts.sudo == "nopasswd" or not facts.unit("docker.service").running:
            state = facts.unit("docker.service").active
            raise PlanError(f"the Docker engine does not answer (docker.service is {state}): start it, or see why "
                            "with hostsetup doctor")
        raise PlanError("cannot ask the Docker engine which containers run (the login user is not in the docker "
                        "group and sudo asks a password): run with --prompt-for-sudo-password")
    if "curl" not in facts.commands and not settings.remove:
        raise PlanError("curl is missing here (hostsetup checks with it that Portainer answers): "
                        "hostsetup install puts it there")
    return facts.containers


def _removal(platform: Platform, step: str, facts: HostFacts, settings: PortainerSettings, exists: bool,
             leftover: bool) -> Plan:
    """``--remove``: the container (and its set-aside previous one), with --purge-data its volume and
    password file."""
    ops: list[Operation] = []
    if exists or leftover:
        aside = (f"{settings.name}.hostsetup-previous",) if leftover else ()
        ops.append(Run(command("docker rm -f @NAMES@", NAMES=words(settings.name, *aside)).text))
    if settings.purge_data and not settings.agent and DATA_VOLUME in facts.volumes:
        ops.append(Run(command("docker volume rm @VOLUME@", VOLUME=DATA_VOLUME).text))
    if settings.purge_data and not settings.agent and PASSWORD_FILE in facts.files:
        ops.append(Run(command("rm -f @PATH@", PATH=PASSWORD_FILE).text))
    kept = "" if settings.purge_data or settings.agent or DATA_VOLUME not in facts.volumes else \
        f"; the volume {DATA_VOLUME} is kept (--purge-data removes it)"
    if not ops:
        return Plan(platform, (Step(step, f"no container {settings.name}{kept}"),))
    what = ", ".join(f"the container {settings.name}" if op.command.startswith("docker rm") else
                     f"the volume {DATA_VOLUME}" if op.command.startswith("docker volume") else
                     "the admin password file" for op in ops if isinstance(op, Run))
    return Plan(platform, (Step(step, f"remove {what}{kept}", tuple(ops)),))


def _running(platform: Platform, step: str, facts: HostFacts, settings: PortainerSettings,
             current: dict[str, Any] | None, leftover: bool) -> Plan:
    """The container as chosen: nothing when it runs so, else (re)created."""
    ops: list[Operation] = []
    password_old = facts.files.get(PASSWORD_FILE)
    if settings.admin_password is not None and not settings.agent and password_old != settings.admin_password:
        ops.append(WriteUserFile(PASSWORD_FILE, settings.admin_password, "root", "the initial admin password"))
    labels = ((current or {}).get("Config") or {}).get("Labels") or {}
    running = ((current or {}).get("State") or {}).get("Running") is True
    image = ((current or {}).get("Config") or {}).get("Image")
    same = current is not None and labels.get(LABEL) == settings.config_hash() and image == settings.reference
    warnings = []
    if settings.bind in ("0.0.0.0", "::"):
        warnings.append(f"{settings.name} listens on every address of the host ({settings.bind}:{settings.port}): "
                        "an admin UI for the Docker engine (root on the host) on the network; --bind an address "
                        "only your admins reach")
    if same and running and not leftover:
        if ops:  # only the password file: Portainer reads it on its first start, nothing to recreate
            return Plan(platform, (Step(step, "update the initial admin password file (Portainer reads it on its "
                                        "first start only)", tuple(ops), tuple(warnings)),))
        return Plan(platform, (Step(step, f"{settings.reference} runs as {settings.name} ({settings.answer_url})",
                                    warnings=tuple(warnings)),))
    if current is None:
        why = f"run {settings.reference} as {settings.name}"
    elif same and not running:
        why = f"{settings.name} is not running: recreate it from {settings.reference}"
    elif image != settings.reference:
        why = f"recreate {settings.name}: {image} -> {settings.reference}"
    else:
        why = f"recreate {settings.name}: its options changed"
    if not settings.agent:
        why += f" (volume {DATA_VOLUME} kept)" if DATA_VOLUME in facts.volumes else f" (new volume {DATA_VOLUME})"
    ops.append(Run(deploy_script(settings), display="\n".join((
        command("$ docker pull @IMAGE@  (through the host's registry mirror, if one is configured)",
                IMAGE=settings.reference).shown,
        *([command("$ docker volume create @VOLUME@", VOLUME=DATA_VOLUME).shown] if not settings.agent else []),
        *([command("$ docker rename @NAME@ @PREVIOUS@ && docker stop ...", NAME=settings.name,
                   PREVIOUS=f"{settings.name}.hostsetup-previous").shown] if current is not None else []),
        f"$ {settings.run_line().shown}",
        f"wait up to {WAIT_SECONDS} s for {settings.answer_url} to answer; if it does not, remove the new "
        "container and put the previous one back",
    ))))
    return Plan(platform, (Step(step, why, tuple(ops), tuple(warnings)),))
