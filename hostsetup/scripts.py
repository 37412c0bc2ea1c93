"""Shell snippets that change files on a host safely: atomic writes and kept backups."""

from __future__ import annotations

import base64
import shlex

from hostsetup.operations import RemoveFiles, WriteFile

BACKUP_DIR = "/var/backups/hostsetup"
BACKUPS_KEPT = 5


def backup_script(path: str) -> str:
    """Copy ``path`` (if present) to the backup directory; keep the newest few."""
    name = path.strip("/").replace("/", "_")
    q = shlex.quote
    return (f"if [ -e {q(path)} ]; then install -d -m 0700 {BACKUP_DIR}; "
            f"cp -p {q(path)} {BACKUP_DIR}/{q(name)}.$(date +%Y%m%dT%H%M%S%N); "
            f"ls -1t {BACKUP_DIR}/{q(name)}.* | tail -n +{BACKUPS_KEPT + 1} | "
            "xargs -r rm -f; fi")


def write_file_script(op: WriteFile) -> str:
    q = shlex.quote
    payload = base64.b64encode(op.content.encode()).decode()
    return "\n".join((
        f'd=$(dirname {q(op.path)}); install -d -m 0755 "$d"',
        'tmp=$(mktemp "$d/.hostsetup.XXXXXX")',
        f'echo {payload} | base64 -d > "$tmp"',
        f'chmod {op.mode} "$tmp"',
        backup_script(op.path),
        f'mv -f "$tmp" {q(op.path)}',
    ))


def remove_files_script(op: RemoveFiles) -> str:
    return "\n".join(f"{backup_script(p)}\nrm -f {shlex.quote(p)}" for p in op.paths)
