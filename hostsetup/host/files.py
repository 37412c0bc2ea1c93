"""Changing files on a host safely, as shell: atomic writes, kept backups, cleanup however a script ends.

Install, daemon and doctor all write through ``write_atomic`` and back up through ``backup``: one
temporary-file pattern, one backup directory and naming, one restore."""

from __future__ import annotations

from collections.abc import Iterable

from hostsetup.host.command import Command, Payload, command, join

BACKUP_DIR = "/var/backups/hostsetup"
BACKUPS_KEPT = 5
# Signals after which a cut-off write removes its temporary file (name, number: exit 128+n).
TRAPPED_SIGNALS = (("HUP", 1), ("INT", 2), ("PIPE", 13), ("TERM", 15))
TEMP_PREFIX = ".hostsetup."


def backup_name(path: str) -> str:
    """The name ``path``'s backups carry in ``BACKUP_DIR`` (a timestamp follows): ``etc_docker_daemon.json``."""
    return path.strip("/").replace("/", "_")


def backup(path: str) -> Command:
    """Copy ``path`` (if present) to the backup directory; keep the newest few."""
    return command(
        "if [ -e @PATH@ ]; then install -d -m 0700 @DIR@; cp -p @PATH@ @DIR@/@NAME@.$(date +%Y%m%dT%H%M%S%N); "
        "ls -1t @DIR@/@NAME@.* | tail -n +@FROM@ | xargs -r rm -f; fi",
        PATH=path, DIR=BACKUP_DIR, NAME=backup_name(path), FROM=BACKUPS_KEPT + 1)


def restore_newest_backup(path: str) -> Command:
    """Put ``path``'s newest backup back in place (nothing when there is none)."""
    return command('b=$(ls -1t @DIR@/@NAME@.* 2>/dev/null | head -n 1); if [ -n "$b" ]; then cp -p "$b" @PATH@; fi',
                   DIR=BACKUP_DIR, NAME=backup_name(path), PATH=path)


def backup_glob(path: str) -> str:
    """A shell glob matching ``path``'s backups (unquoted: for a script to expand)."""
    return f"{BACKUP_DIR}/{backup_name(path)}.*"


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


def write_atomic(path: str, content: str, mode: str, keep_backup: bool = True) -> Command:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed into place.

    The temporary file goes away however the script ends before the rename: a failed command
    (``set -e``), the end of the shell, or a signal (the session cut off: HUP; Ctrl-C: INT;
    TERM; a closed output: PIPE). Only SIGKILL can leave one behind. The traps are cleared after
    the rename, so a later command of the same script is not affected."""
    cleanup = '[ -z "$tmp" ] || rm -f "$tmp"'
    return join((
        command('d=$(dirname @PATH@); install -d -m 0755 "$d"', PATH=path),
        "tmp=",
        *cleanup_traps(cleanup),
        command('tmp=$(mktemp "$d/@PREFIX@XXXXXX")', PREFIX=TEMP_PREFIX),
        command('@CONTENT@ > "$tmp"', CONTENT=Payload(content)),
        command('chmod @MODE@ "$tmp"', MODE=mode),
        *((backup(path),) if keep_backup else ()),
        command('mv -f "$tmp" @PATH@', PATH=path),
        "tmp=",
        clear_traps(),
    ))


def remove_with_backup(paths: Iterable[str]) -> Command:
    return join(backup(p) + command("\nrm -f @PATH@", PATH=p) for p in paths)


def write_as_user(user: str, path: str, content: str) -> Command:
    """Write ``path`` as ``user`` (its own permissions: a link in the user's home leads
    nowhere the user could not write anyway), whole or not at all, mode 0600."""
    inner = "\n".join((
        "set -e", "umask 077", 'd=$(dirname "$1")', 'mkdir -p "$d"', "tmp=",
        *cleanup_traps('[ -z "$tmp" ] || rm -f "$tmp"'),
        f'tmp=$(mktemp "$d/{TEMP_PREFIX}XXXXXX")', 'cat > "$tmp"', 'chmod 600 "$tmp"', 'mv -f "$tmp" "$1"', "tmp=",
    ))
    return command("@CONTENT@ | runuser -u @USER@ -- sh -c @INNER@ sh @PATH@",
                   CONTENT=Payload(content), USER=user, INNER=inner, PATH=path)
