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
import shlex
from collections.abc import Iterable

ROLLBACK_DIR = "/var/backups/hostsetup/rollback"
PROOF_FAILED = "@@hostsetup-proof failed"
RESTORED = "@@hostsetup-rollback restored"
RESTORE_FAILED = "@@hostsetup-rollback failed"


def _slot(path: str) -> str:
    """Where ``path``'s copy is kept (a hash: one name per path, whatever it holds)."""
    return f"{ROLLBACK_DIR}/{hashlib.sha256(path.encode()).hexdigest()[:24]}"


def begin_script() -> str:
    """Start this run's rollback: an empty, private directory."""
    return f"rm -rf {ROLLBACK_DIR} && install -d -m 0700 {ROLLBACK_DIR}"


def keep_script(path: str) -> str:
    """Keep ``path`` as it is now, unless this run kept it already (its first state counts)."""
    q, slot = shlex.quote(path), _slot(path)
    return (f"if [ ! -e {slot} ] && [ ! -L {slot} ] && [ ! -e {slot}.absent ]; then "
            f"if [ -e {q} ] || [ -L {q} ]; then cp -a {q} {slot}; else : > {slot}.absent; fi; fi")


def restore_script(paths: Iterable[str]) -> str:
    """Put every kept one of ``paths`` back (renamed into place; a new one removed), then drop
    the copies. Prints ``RESTORED``, or ``RESTORE_FAILED`` if any could not be put back."""
    lines = ["rb_ok=1"]
    for path in paths:
        q, slot = shlex.quote(path), _slot(path)
        tmp = shlex.quote(f"{path.rsplit('/', 1)[0] or '/'}/.hostsetup-restore.{_slot(path)[-8:]}")
        lines.append(
            f"if [ -e {slot}.absent ]; then rm -f {q} || rb_ok=0; "
            f"elif [ -e {slot} ] || [ -L {slot} ]; then "
            f"rm -f {tmp} && cp -a {slot} {tmp} && mv -f {tmp} {q} || {{ rm -f {tmp}; rb_ok=0; }}; fi")
    lines.append(f'if [ $rb_ok = 1 ]; then rm -rf {ROLLBACK_DIR}; echo "{RESTORED}"; '
                 f'else echo "{RESTORE_FAILED}"; fi')
    return "\n".join(lines)


def discard_script() -> str:
    """The files are proven: drop the copies."""
    return f"rm -rf {ROLLBACK_DIR}"


def proof_script(command: str, paths: Iterable[str]) -> str:
    """Run ``command`` (its output on stderr, where errors are read); if it fails, print
    ``PROOF_FAILED``, put ``paths`` back and fail; if it succeeds, drop their copies."""
    paths = list(paths)
    failed = [f'echo "{PROOF_FAILED}"', *([restore_script(paths)] if paths else []), "exit 1"]
    return "\n".join([f"if ! {{ {command}; }} >&2; then", *failed, "fi",
                      *([discard_script()] if paths else [])])
