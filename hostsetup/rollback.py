"""Putting files back as they were when the step that proves them fails.

Some files can only be proven by a later command: a repository file and its key are right
when the package manager's refresh of that repository succeeds. Until then, the first time a
run changes such a file, a byte-exact copy of it (mode, owner and all; or a note that it did
not exist) is kept in ``ROLLBACK_DIR``, on the host. When the proof fails, every kept file
is put back (a new one removed); when it succeeds, the copies are dropped. All of it is
shell, so it runs in the same root session as the writes and the proof.

The directory belongs to one run: its first kept file empties it, so copies left by a run
that was cut off never go back over what the host has now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from hostsetup.host.command import Command, Raw, command, join

ROLLBACK_DIR = "/var/backups/hostsetup/rollback"
PROOF_FAILED = "@@hostsetup-proof failed"
RESTORED = "@@hostsetup-rollback restored"
RESTORE_FAILED = "@@hostsetup-rollback failed"


def _slot(path: str) -> str:
    """Where ``path``'s copy is kept (a hash: one name per path, whatever it holds)."""
    return f"{ROLLBACK_DIR}/{hashlib.sha256(path.encode()).hexdigest()[:24]}"


def begin_script() -> str:
    """Start this run's rollback: an empty, private directory."""
    return command("rm -rf @DIR@ && install -d -m 0700 @DIR@", DIR=ROLLBACK_DIR).text


def keep_script(path: str) -> str:
    """Keep ``path`` as it is now, unless this run kept it already (its first state counts)."""
    return command("if [ ! -e @SLOT@ ] && [ ! -L @SLOT@ ] && [ ! -e @SLOT@.absent ]; then "
                   "if [ -e @PATH@ ] || [ -L @PATH@ ]; then cp -a @PATH@ @SLOT@; else : > @SLOT@.absent; fi; fi",
                   SLOT=_slot(path), PATH=path).text


def restore_script(paths: Iterable[str]) -> str:
    """Put every kept one of ``paths`` back (renamed into place; a new one removed), then drop
    the copies. Prints ``RESTORED``, or ``RESTORE_FAILED`` if any could not be put back."""
    lines: list[Command | str] = ["rb_ok=1"]
    for path in paths:
        lines.append(command(
            "if [ -e @SLOT@.absent ]; then rm -f @PATH@ || rb_ok=0; "
            "elif [ -e @SLOT@ ] || [ -L @SLOT@ ]; then "
            "rm -f @TMP@ && cp -a @SLOT@ @TMP@ && mv -f @TMP@ @PATH@ || { rm -f @TMP@; rb_ok=0; }; fi",
            SLOT=_slot(path), PATH=path,
            TMP=f"{path.rsplit('/', 1)[0] or '/'}/.hostsetup-restore.{_slot(path)[-8:]}"))
    lines.append(command('if [ $rb_ok = 1 ]; then rm -rf @DIR@; echo "@RESTORED@"; else echo "@FAILED@"; fi',
                         DIR=ROLLBACK_DIR, RESTORED=Raw(RESTORED), FAILED=Raw(RESTORE_FAILED)))
    return join(lines).text


def discard_script() -> str:
    """The files are proven: drop the copies."""
    return command("rm -rf @DIR@", DIR=ROLLBACK_DIR).text


def proof_script(refresh: Command | str, paths: Iterable[str]) -> str:
    """Run ``refresh`` (its output on stderr, where errors are read); if it fails, print
    ``PROOF_FAILED``, put ``paths`` back and fail; if it succeeds, drop their copies."""
    paths = list(paths)
    run = Raw(refresh) if isinstance(refresh, str) else refresh
    failed: list[Command | str] = [command('echo "@FAILED@"', FAILED=Raw(PROOF_FAILED)),
                                   *([restore_script(paths)] if paths else []), "exit 1"]
    return join([command("if ! { @REFRESH@; } >&2; then", REFRESH=run), *failed, "fi",
                 *([discard_script()] if paths else [])]).text
