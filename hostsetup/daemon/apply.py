"""Applying a daemon.json change on the host: validate, back up, swap, reload or restart,
wait for the daemon, roll back if it does not come back. One SSH session when all goes well."""

from __future__ import annotations

import json
import time
from typing import Any

from hostsetup.host.command import Command, Payload, Raw, command, join
from hostsetup.host.files import backup, cleanup_traps, restore_newest_backup
from hostsetup.operations import ConfigureDaemon
from hostsetup.remote import Remote, RemoteError, tail

RESULT = "@@hostsetup-daemon"
WAIT_SECONDS = 60

# Waits until the daemon answers (bounded: a client can hang on a socket-activated
# daemon whose containerd is gone), then prints `docker info` as JSON.
_WAIT = f"""wait_docker() {{
  i=0
  while [ $i -lt {WAIT_SECONDS * 2} ]; do
    if v=$(timeout 5 docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) && [ -n "$v" ]; then
      echo "{RESULT} info $(timeout 10 docker info --format '{{{{json .}}}}' 2>/dev/null)"; return 0
    fi
    # A daemon that failed (or waits to be restarted by systemd) will not answer: stop waiting.
    case "$(systemctl show -p ActiveState,SubState --value docker.service | tr '\\n' ' ')" in
      *failed*|*auto-restart*) return 1;;
    esac
    i=$((i + 1)); sleep 0.5
  done
  return 1
}}
first_error() {{
  log=$(journalctl -u docker.service --since "$since" --no-pager -o cat 2>/dev/null)
  echo "$log" | grep -m1 -E 'level=(fatal|error)|failed to start daemon|unable to configure' \\
    || echo "$log" | grep -m1 -iE 'failed|unable|invalid' || systemctl status docker --no-pager 2>&1 | tail -n 1
}}
"""


# After the change: wait for dockerd; if it does not come back, the previous file (or none) and a restart.
_CHECK_OR_ROLL_BACK = """if wait_docker; then echo "@RESULT@ applied"; rm -f "$prev"; exit 0; fi
err=$(first_error)
echo "@RESULT@ failed $err"
if [ $had_prev = 1 ]; then chmod "$prev_mode" "$prev"; mv -f "$prev" @PATH@; else rm -f @PATH@; fi
systemctl reset-failed docker.service 2>/dev/null; systemctl restart docker.service
if wait_docker; then echo "@RESULT@ rolledback"; else echo "@RESULT@ rollback-failed"; fi
exit 4"""

_VALIDATE = """if dockerd --help 2>/dev/null | grep -q -- "--validate"; then
  if ! out=$(dockerd --validate --config-file "$tmp" 2>&1); then
    rm -f "$tmp" "$prev"; echo "@RESULT@ invalid $(echo "$out" | tail -n 1)"; exit 3
  fi
  echo "@RESULT@ validated"
fi"""


def configure_command(op: ConfigureDaemon) -> Command:
    """The shell script carrying out ``op``; it prints ``@@hostsetup-daemon <event> ...`` lines."""
    path, result = op.path, Raw(RESULT)
    # The rollback copy stays beside the file (a root-only directory), private (mktemp makes it
    # 0600 and `cat` keeps that), and goes away however the script ends.
    lines: list[Command | str] = [
        "set -u", 'since="$(date "+%Y-%m-%d %H:%M:%S")"', _WAIT,
        command("install -d -m 0755 $(dirname @PATH@)", PATH=path),
        command('prev=$(mktemp "$(dirname @PATH@)/.daemon.json.prev.XXXXXX"); tmp=', PATH=path),
        # A lost connection does not stop it half-way: it restarts, checks and rolls back.
        *cleanup_traps('rm -f "$prev" "$tmp"', survive_hangup=True),
        "had_prev=0",
        command('if [ -e @PATH@ ]; then cat @PATH@ > "$prev"; had_prev=1; prev_mode=$(stat -c %a @PATH@); fi',
                PATH=path)]
    if op.content is not None:
        lines += [
            command('tmp=$(mktemp "$(dirname @PATH@)/.daemon.json.XXXXXX")', PATH=path),
            command('@CONTENT@ > "$tmp"; chmod @MODE@ "$tmp"', CONTENT=Payload(op.content), MODE=op.mode),
        ]
        if op.validate:
            lines.append(command(_VALIDATE, RESULT=result))
        lines += [backup(op.path), command('mv -f "$tmp" @PATH@', PATH=path)]
    if op.reload_units:
        lines.append("systemctl daemon-reload")
    if op.restart:
        lines.append("systemctl reset-failed docker.service 2>/dev/null; systemctl restart docker.service")
    else:
        lines.append("if systemctl is-active --quiet docker.service; then systemctl reload docker.service; "
                     "else systemctl start docker.service; fi")
    lines.append(command(_CHECK_OR_ROLL_BACK, RESULT=result, PATH=path))
    return join(lines)


def configure_script(op: ConfigureDaemon) -> str:
    """``configure_command``'s text: what runs."""
    return configure_command(op).text


def rollback_script(op: ConfigureDaemon) -> str:
    """Restore the newest backup (or remove a file that did not exist) and restart."""
    restore = restore_newest_backup(op.path) if op.old is not None else command("rm -f @PATH@", PATH=op.path)
    return join(("set -u", _WAIT, restore, "systemctl reset-failed docker.service 2>/dev/null\n"
                 "systemctl restart docker.service\nwait_docker")).text


def _events(stdout: str) -> list[tuple[str, str]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith(RESULT + " "):
            event, _, rest = line.removeprefix(RESULT + " ").partition(" ")
            out.append((event, rest))
    return out


def _lookup(info: dict[str, Any], dotted: str) -> Any:
    value: Any = info
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def mismatches(info: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Expected settings that ``docker info`` does not show."""
    def same(found: Any, value: Any) -> bool:  # an empty list is left out of docker info by newer engines
        return found == value or (found is None and value == [])
    return [f"{field} is {_lookup(info, field)!r}, expected {value!r}"
            for field, value in expect.items() if not same(_lookup(info, field), value)]


def apply_configure(remote: Remote, op: ConfigureDaemon) -> None:
    """Carry out ``op``; raise RemoteError saying what happened (and that it was rolled back)."""
    result = remote.root(configure_script(op), timeout=WAIT_SECONDS * 3)
    events = _events(result.stdout)
    kinds = [e for e, _ in events]
    detail = {e: rest for e, rest in events}
    if "invalid" in kinds:
        raise RemoteError(f"dockerd --validate refused the new daemon.json: {detail['invalid']}; nothing changed")
    if "failed" in kinds:
        state = ("the previous daemon.json is back and dockerd runs" if "rolledback" in kinds
                 else "ROLLBACK FAILED: dockerd is not running, see journalctl -u docker")
        raise RemoteError(f"dockerd did not come back with the new daemon.json ({detail['failed']}); {state}")
    if "applied" not in kinds:
        raise RemoteError(f"applying daemon.json failed: {tail(result)}")
    info = json.loads(detail.get("info", "{}") or "{}")
    wrong = mismatches(info, op.expect)
    deadline = time.monotonic() + 10
    while wrong and time.monotonic() < deadline:  # a SIGHUP reload is applied asynchronously
        time.sleep(0.5)
        again = remote.root("timeout 5 docker info --format '{{json .}}'")
        wrong = mismatches(json.loads(again.stdout or "{}"), op.expect) if again.ok else wrong
    if wrong:
        remote.root(rollback_script(op), timeout=WAIT_SECONDS * 2)
        raise RemoteError(f"dockerd runs but does not show the new settings ({'; '.join(wrong)}); "
                          "the previous daemon.json was restored")
