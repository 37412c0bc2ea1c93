"""Applying a daemon.json change on the host: validate, back up, swap, reload or restart,
wait for the daemon, roll back if it does not come back. One SSH session when all goes well."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from hostsetup.host.command import Payload
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


def configure_script(op: ConfigureDaemon) -> str:
    """The shell script carrying out ``op``; it prints ``@@hostsetup-daemon <event> ...`` lines."""
    q = shlex.quote
    path = q(op.path)
    # The rollback copy stays beside the file (a root-only directory), private (mktemp makes it
    # 0600 and `cat` keeps that), and goes away however the script ends.
    lines = ["set -u", 'since="$(date "+%Y-%m-%d %H:%M:%S")"', _WAIT, f"install -d -m 0755 $(dirname {path})",
             f'prev=$(mktemp "$(dirname {path})/.daemon.json.prev.XXXXXX"); tmp=',
             # A lost connection does not stop it half-way: it restarts, checks and rolls back.
             *cleanup_traps('rm -f "$prev" "$tmp"', survive_hangup=True),
             "had_prev=0", f"if [ -e {path} ]; then cat {path} > \"$prev\"; had_prev=1; "
             f"prev_mode=$(stat -c %a {path}); fi"]
    if op.content is not None:
        lines += [
            f'tmp=$(mktemp "$(dirname {path})/.daemon.json.XXXXXX")',
            f'{Payload(op.content).text()} > "$tmp"; chmod {op.mode} "$tmp"',
        ]
        if op.validate:
            lines.append(
                'if dockerd --help 2>/dev/null | grep -q -- "--validate"; then\n'
                '  if ! out=$(dockerd --validate --config-file "$tmp" 2>&1); then\n'
                f'    rm -f "$tmp" "$prev"; echo "{RESULT} invalid $(echo "$out" | tail -n 1)"; exit 3\n'
                f'  fi\n  echo "{RESULT} validated"\nfi')
        lines += [backup(op.path).text, f'mv -f "$tmp" {path}']
    if op.reload_units:
        lines.append("systemctl daemon-reload")
    if op.restart:
        lines.append("systemctl reset-failed docker.service 2>/dev/null; systemctl restart docker.service")
    else:
        lines.append("if systemctl is-active --quiet docker.service; then systemctl reload docker.service; "
                     "else systemctl start docker.service; fi")
    lines.append(f"""if wait_docker; then echo "{RESULT} applied"; rm -f "$prev"; exit 0; fi
err=$(first_error)
echo "{RESULT} failed $err"
if [ $had_prev = 1 ]; then chmod "$prev_mode" "$prev"; mv -f "$prev" {path}; else rm -f {path}; fi
systemctl reset-failed docker.service 2>/dev/null; systemctl restart docker.service
if wait_docker; then echo "{RESULT} rolledback"; else echo "{RESULT} rollback-failed"; fi
exit 4""")
    return "\n".join(lines)


def rollback_script(op: ConfigureDaemon) -> str:
    """Restore the newest backup (or remove a file that did not exist) and restart."""
    restore = restore_newest_backup(op.path).text if op.old is not None else f"rm -f {shlex.quote(op.path)}"
    return f"set -u\n{_WAIT}\n{restore}\nsystemctl reset-failed docker.service 2>/dev/null\n" \
           "systemctl restart docker.service\nwait_docker"


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
