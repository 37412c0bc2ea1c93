"""What a built mirror is: the apt tree's layout and the records (Mirror, RpmRepo) kept in its JSON files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The apt tree's layout (these feed the mirror's recipe hash: hostsetup.sandbox.mirror.make_recipe).
REPO_PATH = "linux/debian"
KEY_PATH = f"{REPO_PATH}/gpg"
COMPONENT = "stable"
FIXTURES_PATH = "debian-fixtures"
FIXTURES_SUITE = "bookworm"


@dataclass(frozen=True)
class Mirror:
    """A built mirror; serve ``root`` at ``/`` with any static HTTP server."""

    root: Path
    key_fingerprint: str
    versions: dict[str, list[str]]
    tiny_image: Path
    tiny_image_ref: str
    tiny_image_output: str
    recipe_hash: str = ""
    arch: str = ""
    packages: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fixtures: dict[str, str] = field(default_factory=dict)
    repo_path: str = REPO_PATH
    key_path: str = KEY_PATH
    fixtures_path: str = FIXTURES_PATH
    fixtures_suite: str = FIXTURES_SUITE
    rpm: RpmRepo | None = None   # the EL rehearsal RPM repositories (built by hostsetup.sandbox.rpmrepo)


@dataclass(frozen=True)
class RpmRepo:
    """The EL rehearsal repositories of a built mirror (paths relative to its root)."""

    tree: str                                   # rpm-<hash12>: a base URL of its own
    recipe_hash: str
    arch: str                                   # rpm basearch, e.g. x86_64
    key_fingerprint: str                        # docker-ce repositories (the mirror's key)
    fixtures_key_fingerprint: str
    versions: dict[str, list[str]]              # releasever -> docker-ce versions, newest first
    packages: dict[str, dict[str, list[str]]]   # releasever -> name -> versions, newest first
    fixtures: dict[str, dict[str, str]]         # releasever -> name -> version
    key_path: str                               # rpmrepo.KEY_PATH (the EL layout is rpmrepo's)
    fixtures_path: str                          # rpmrepo.FIXTURES_PATH
    fixtures_key_path: str                      # rpmrepo.FIXTURES_KEY_PATH
