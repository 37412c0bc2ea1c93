"""What a plan asks a host to do, as plain data. ``apply`` carries them out."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from hostsetup.host.command import Raw, command
from hostsetup.host.packages import (
    PackageManager,
    install_command,
    manager_named,
    refresh_command,
    transaction_command,
)
from hostsetup.secrets import file_mode


@dataclass(frozen=True)
class Run:
    """Run a shell command as root."""

    command: str
    display: str = ""    # what --dry-run shows when the script is more than its command (lock waits)

    @property
    def waits_for_lock(self) -> bool:
        """The command waits for the package manager's locks first (``host.packages.locked``)."""
        return "\nhs_wait_lock" in self.command

    def describe(self) -> list[str]:
        return self.display.splitlines() if self.display else [f"$ {self.command}"]


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` atomically, keeping a backup of the old file."""

    path: str
    content: str
    old: str | None = None
    mode: str = ""          # "": 0600 when the content holds credentials, else 0644

    def __post_init__(self) -> None:
        if not self.mode:
            object.__setattr__(self, "mode", file_mode(self.content))

    def describe(self) -> list[str]:
        diff = difflib.unified_diff(
            (self.old or "").splitlines(keepends=True), self.content.splitlines(keepends=True),
            fromfile=f"{self.path} (current)" if self.old is not None else "/dev/null",
            tofile=f"{self.path} (planned)")
        return [f"write {self.path} (mode {self.mode})", *[line.rstrip("\n") for line in diff]]


@dataclass(frozen=True)
class RemoveFiles:
    """Remove files (each backed up first)."""

    paths: tuple[str, ...]

    def describe(self) -> list[str]:
        return [f"remove {path} (backed up)" for path in self.paths]


@dataclass(frozen=True)
class FetchKey:
    """Download a repository key on the host, check its fingerprint, then install it."""

    url: str
    path: str
    fingerprints: tuple[str, ...]
    old: str | None = None

    def describe(self) -> list[str]:
        return [f"$ curl -fsSL {self.url}",
                f"verify the primary key fingerprint is {' or '.join(self.fingerprints)}",
                f"write {self.path} (mode 0644)"]


@dataclass(frozen=True)
class InstallPackages:
    """Refresh the Docker repository's index and install packages.

    ``version`` is the exact version for docker-ce and docker-ce-cli; when only a
    short ``pin`` is known (the repository is new), it is resolved on the host.
    """

    manager: str                 # apt-get, dnf or yum
    packages: tuple[str, ...]
    repo_file: str
    pin: str | None = None
    version: str | None = None
    hold: bool = False
    lock_timeout: int = 120      # seconds to wait for another package manager's locks
    local_files: tuple[str, ...] = ()   # package files on the host installed in the same transaction (bundles)

    @property
    def package_manager(self) -> PackageManager:
        return manager_named(self.manager)

    def refresh_command(self) -> str:
        """The refresh of the Docker repository alone, after the lock wait."""
        return refresh_command(self.manager, self.repo_file, self.lock_timeout)

    def transaction_command(self, version: str | None) -> str:
        """The transaction's command line (what ``--dry-run`` shows)."""
        return transaction_command(self.manager, self.packages, self.local_files, version, self.hold,
                                   self.lock_timeout)

    def install_command(self, version: str | None) -> str:
        """The transaction as it runs: after the lock wait, a full disk named."""
        return install_command(self.manager, self.packages, self.local_files, version, self.hold, self.lock_timeout)

    def describe(self) -> list[str]:
        manager = self.package_manager
        lines = [f"wait up to {self.lock_timeout} s for the {manager.locks.name} lock (then fail naming "
                 "its holder)", f"$ {manager.refresh_repository(self.repo_file)}"]
        if self.pin and not self.version:
            lines += [f"$ {manager.list_versions()}",
                      f"resolve version {self.pin} against that list"]
        shown = self.version or (f"<{self.pin} resolved>" if self.pin else None)
        return [*lines, f"$ {self.transaction_command(shown)}"]


@dataclass(frozen=True)
class ConfigureDaemon:
    """Put a new daemon.json in place safely and make dockerd use it.

    Validate on the host where the engine can (``dockerd --validate``), back up,
    rename into place, reload (SIGHUP) or restart, wait for ``docker info`` to
    show ``expect``; on failure restore the backup and restart. ``content`` None
    keeps the file and only restarts (a changed drop-in).
    """

    path: str
    content: str | None
    old: str | None
    restart: bool
    validate: bool
    reload_units: bool
    expect: dict[str, object]

    @property
    def mode(self) -> str:
        return file_mode(self.content or "")

    def describe(self) -> list[str]:
        lines = []
        if self.content is not None:
            lines += WriteFile(self.path, self.content, self.old).describe()
            if self.validate:
                lines.append(f"$ dockerd --validate --config-file <new {self.path}> (if the engine has it)")
        if self.reload_units:
            lines.append("$ systemctl daemon-reload")
        lines.append("$ systemctl restart docker" if self.restart else "$ systemctl reload docker  (SIGHUP)")
        lines.append("wait for docker info" + (f" to show {', '.join(self.expect)}" if self.expect else "")
                     + "; on failure restore the previous file and restart")
        return lines


@dataclass(frozen=True)
class CheckLogin:
    """Log in to ``registry`` through the host's dockerd in a throwaway client configuration:
    credentials the registry refuses fail the step before any file is written."""

    registry: str      # "": Docker Hub (docker login's default)
    username: str
    password: str = field(repr=False)

    def describe(self) -> list[str]:
        login = command("$ docker login --username @USER@ --password-stdin@REGISTRY@", USER=self.username,
                        REGISTRY=command(" @NAME@", NAME=self.registry) if self.registry else Raw(""))
        return [f"{login.shown}  (password on stdin, throwaway DOCKER_CONFIG: checks the credentials, keeps nothing)"]


@dataclass(frozen=True)
class WriteUserFile:
    """Write a file in a user's home as that user (``runuser``): atomic, mode 0600, no backup
    (it holds credentials: a copy would outlive a logout). Its content is never shown."""

    path: str
    content: str = field(repr=False)
    user: str
    change: str        # what changes in it, for --dry-run

    def describe(self) -> list[str]:
        return [f"write {self.path} as {self.user} (mode 0600, atomic): {self.change}"]


@dataclass(frozen=True)
class UploadBundle:
    """Send an offline bundle over SFTP, check its sha256 on the host, unpack it into ``remote_dir``."""

    local: str
    sha256: str
    size: int
    remote_dir: str

    def describe(self) -> list[str]:
        return [f"upload {self.local} ({self.size} bytes) over SFTP to a temporary file",
                f"check its sha256 is {self.sha256}, unpack it into {self.remote_dir}, remove the upload"]


Operation = (UploadBundle | Run | WriteFile | RemoveFiles | FetchKey | InstallPackages | ConfigureDaemon | CheckLogin
             | WriteUserFile)
