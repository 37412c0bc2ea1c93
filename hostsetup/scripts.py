"""Shell snippets that change files on a host safely: atomic writes and kept backups."""

from __future__ import annotations

import base64
import shlex

from hostsetup.operations import CheckLogin, RemoveFiles, WriteFile, WriteUserFile

BACKUP_DIR = "/var/backups/hostsetup"
BACKUPS_KEPT = 5
# Signals after which a cut-off write removes its temporary file (name, number: exit 128+n).
TRAPPED_SIGNALS = (("HUP", 1), ("INT", 2), ("PIPE", 13), ("TERM", 15))
TEMP_PREFIX = ".hostsetup."


def backup_script(path: str) -> str:
    """Copy ``path`` (if present) to the backup directory; keep the newest few."""
    name = path.strip("/").replace("/", "_")
    q = shlex.quote
    return (f"if [ -e {q(path)} ]; then install -d -m 0700 {BACKUP_DIR}; "
            f"cp -p {q(path)} {BACKUP_DIR}/{q(name)}.$(date +%Y%m%dT%H%M%S%N); "
            f"ls -1t {BACKUP_DIR}/{q(name)}.* | tail -n +{BACKUPS_KEPT + 1} | "
            "xargs -r rm -f; fi")


def cleanup_traps(cleanup: str, survive_hangup: bool = False) -> list[str]:
    """Shell lines that run ``cleanup`` however the script ends: at its end (EXIT) and on each of
    ``TRAPPED_SIGNALS`` (dash skips the EXIT trap on a signal that has no trap of its own).

    ``survive_hangup``: a lost connection (HUP, then PIPE on the next output) does not stop the
    script; for one that must reach its own end (restart, check, roll back) rather than stop half-way."""
    ignored = ("HUP", "PIPE") if survive_hangup else ()
    return [f"trap '{cleanup}' EXIT", *([f"trap '' {' '.join(ignored)}"] if ignored else []),
            *(f"trap '{cleanup}; trap - EXIT; exit {128 + number}' {name}" for name, number in TRAPPED_SIGNALS
              if name not in ignored)]


def clear_traps() -> str:
    return "trap - EXIT " + " ".join(name for name, _ in TRAPPED_SIGNALS)


def write_file_script(op: WriteFile) -> str:
    """Write ``op.path`` whole or not at all: a temporary file beside it, renamed into place.

    The temporary file goes away however the script ends before the rename: a failed command
    (``set -e``), the end of the shell, or a signal (the session cut off: HUP; Ctrl-C: INT;
    TERM; a closed output: PIPE). Only SIGKILL can leave one behind. The traps are cleared after
    the rename, so a later command of the same script is not affected."""
    q = shlex.quote
    payload = base64.b64encode(op.content.encode()).decode()
    cleanup = '[ -z "$tmp" ] || rm -f "$tmp"'
    return "\n".join((
        f'd=$(dirname {q(op.path)}); install -d -m 0755 "$d"',
        "tmp=",
        *cleanup_traps(cleanup),
        f'tmp=$(mktemp "$d/{TEMP_PREFIX}XXXXXX")',
        f'echo {payload} | base64 -d > "$tmp"',
        f'chmod {op.mode} "$tmp"',
        backup_script(op.path),
        f'mv -f "$tmp" {q(op.path)}',
        "tmp=",
        clear_traps(),
    ))


def remove_files_script(op: RemoveFiles) -> str:
    return "\n".join(f"{backup_script(p)}\nrm -f {shlex.quote(p)}" for p in op.paths)


def check_login_script(op: CheckLogin) -> str:
    """``docker login`` with the password on stdin (decoded by ``base64``, fed by the shell's own
    ``printf``: on no command line), in a throwaway client configuration removed however it ends."""
    q = shlex.quote
    secret = base64.b64encode(op.password.encode()).decode()
    return "\n".join((
        "cfg=",
        *cleanup_traps('[ -z "$cfg" ] || rm -rf "$cfg"'),
        "cfg=$(mktemp -d)",
        "if ! command -v docker >/dev/null 2>&1; then echo 'the docker client is not installed: run "
        "hostsetup install first; nothing was written' >&2; exit 1; fi",
        f'if ! out=$(printf %s {secret} | base64 -d | DOCKER_CONFIG="$cfg" timeout 60 docker login '
        f"--username {q(op.username)} --password-stdin {q(op.registry) if op.registry else ''} 2>&1); then",
        '  rc=$?; why=$(printf \'%s\\n\' "$out" | grep -v \'^WARNING\' | grep . | tail -n 1)',
        '  [ -n "$why" ] || why="docker login ended with exit $rc and no message"',
        f"  printf '%s refused the login of %s: %s; nothing was written\\n' {q(op.registry or 'Docker Hub')} "
        f'{q(op.username)} "$why" >&2',
        "  exit 1",
        "fi",
        'rm -rf "$cfg"; cfg=',
        clear_traps(),
    ))


def write_user_file_script(op: WriteUserFile) -> str:
    """Write ``op.path`` as ``op.user`` (its own permissions: a link in the user's home leads
    nowhere the user could not write anyway), whole or not at all, mode 0600."""
    q = shlex.quote
    payload = base64.b64encode(op.content.encode()).decode()
    inner = "\n".join((
        "set -e", "umask 077", 'd=$(dirname "$1")', 'mkdir -p "$d"', "tmp=",
        *cleanup_traps('[ -z "$tmp" ] || rm -f "$tmp"'),
        f'tmp=$(mktemp "$d/{TEMP_PREFIX}XXXXXX")', 'cat > "$tmp"', 'chmod 600 "$tmp"', 'mv -f "$tmp" "$1"', "tmp=",
    ))
    return f"printf %s {payload} | base64 -d | runuser -u {q(op.user)} -- sh -c {q(inner)} sh {q(op.path)}"
