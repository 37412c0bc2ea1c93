"""Shell snippets that change files on a host safely: atomic writes and kept backups."""

from __future__ import annotations

import base64
import shlex

from hostsetup.operations import RemoveFiles, WriteFile

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
