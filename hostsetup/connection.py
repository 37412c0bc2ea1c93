"""Opening SSH connections with host keys checked, on the target and on every ProxyJump hop.

Fabric's ``Connection`` accepts any host key (paramiko ``AutoAddPolicy``, no known_hosts),
and so does every ``ProxyJump`` hop Fabric builds for itself. hostsetup checks each of them
the way OpenSSH does:

* Known keys come from the ``known_hosts`` setting, the user's files (ssh_config
  ``UserKnownHostsFile``, default ``~/.ssh/known_hosts ~/.ssh/known_hosts2``) and the global
  ones (``GlobalKnownHostsFile``, default ``/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2``),
  all loaded into one table: a host listed in any of them must show the listed key, whatever
  ``StrictHostKeyChecking`` says (paramiko compares with the first entry of the key's type, in
  that file order).
* An unknown host is handled as ``StrictHostKeyChecking`` says: ``yes`` refuses it; ``no``
  accepts it quietly; anything else (``accept-new``, the default) accepts it with a warning.
  An accepted key is appended to the first user file (hashed with ``HashKnownHosts yes``), so
  the next connection checks it instead of trusting whatever it is shown.
* A hop takes these options from its own ssh_config entry; what that entry leaves unset it takes
  from the connection it carries, so ``Host b / ProxyJump a / UserKnownHostsFile f`` checks ``a``
  against ``f`` as well.
"""

from __future__ import annotations

import binascii
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fabric import Config, Connection
from paramiko import MissingHostKeyPolicy, RejectPolicy, SSHClient
from paramiko.hostkeys import HostKeyEntry, HostKeys, InvalidHostKey
from paramiko.pkey import PKey
from paramiko.ssh_exception import SSHException

log = logging.getLogger(__name__)

DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
HOST_KEY_OPTIONS = ("userknownhostsfile", "globalknownhostsfile", "stricthostkeychecking", "hashknownhosts")

# Parallel runs may accept keys at the same moment; one writer at a time keeps lines whole.
_SAVE_LOCK = threading.Lock()


def known_hosts_line(hostname: str, key: PKey, hashed: bool = False) -> str:
    """The known_hosts line for ``key`` under ``hostname`` as paramiko names it (``[host]:port``
    off port 22), hashed like ``ssh-keygen -H`` when asked so the file does not list the hosts."""
    name = HostKeys.hash_host(hostname) if hashed else hostname
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def _ends_without_newline(path: Path) -> bool:
    try:
        with path.open("rb") as existing:
            if existing.seek(0, os.SEEK_END) == 0:
                return False
            existing.seek(-1, os.SEEK_END)
            return existing.read(1) != b"\n"
    except OSError:
        return False


def remember_host_key(path: Path, line: str) -> None:
    """Append ``line`` to ``path``, creating it as OpenSSH does (file 0600, directory 0700).

    Appending, never rewriting, keeps the user's comments and the lines paramiko cannot parse."""
    with _SAVE_LOCK:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        separator = "\n" if _ends_without_newline(path) else ""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as known:
            known.write(separator + line)


class AcceptNewPolicy(MissingHostKeyPolicy):
    """Accept a host never seen before and remember its key (OpenSSH ``accept-new``, or ``no``
    with ``warn=False``), so that from the next connection on the key is checked, not trusted."""

    def __init__(self, save_to: Path | None = None, hash_names: bool = False, warn: bool = True) -> None:
        self.save_to = save_to
        self.hash_names = hash_names
        self.warn = warn

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        where = f", adding it to {self.save_to}" if self.save_to else ""
        log.log(logging.WARNING if self.warn else logging.INFO, "accepting new host key for %s (%s %s)%s",
                hostname, key.get_name(), key.fingerprint, where)
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.save_to is None:
            return
        try:
            remember_host_key(self.save_to, known_hosts_line(hostname, key, self.hash_names))
        except OSError as exc:  # as OpenSSH: the key was accepted, only remembering it failed
            log.warning("could not add the host key for %s to %s: %s", hostname, self.save_to, exc)


def host_key_policy(strict: str, save_to: Path | None = None, hash_names: bool = False) -> MissingHostKeyPolicy:
    """The paramiko policy for an ssh_config ``StrictHostKeyChecking`` value (for unknown hosts only:
    a known host showing another key is refused by paramiko before any policy is asked)."""
    value = strict.lower()
    if value == "yes":
        return RejectPolicy()
    return AcceptNewPolicy(save_to, hash_names, warn=value not in ("no", "off"))


def host_key_options(own: Mapping[str, object], carried: Mapping[str, str]) -> dict[str, str]:
    """A connection's host-key options: its own ssh_config's, and what those leave unset, the
    ones of the connection it carries (a hop is checked as the user asked for the host behind it)."""
    options = dict(carried)
    options.update({name: str(own[name]) for name in HOST_KEY_OPTIONS if name in own})
    return options


def known_hosts_files(value: str | None, default: Sequence[str]) -> list[Path]:
    """The files of a ``UserKnownHostsFile``/``GlobalKnownHostsFile`` value (``none``: no file)."""
    if value is None:
        names: Sequence[str] = default
    elif value.strip().lower() == "none":
        names = ()
    else:
        names = shlex.split(value)
    return [Path(name).expanduser() for name in names]


def load_known_hosts(client: SSHClient, path: Path) -> None:
    """Add ``path``'s keys to the one table paramiko checks first (its "system" keys): there a
    host listed in any file must match, and paramiko never rewrites those files."""
    if not path.is_file():
        return
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:  # as OpenSSH: an unreadable file is skipped, not fatal
        log.warning("cannot read known hosts file %s: %s", path, exc)
        return
    # Line by line, as OpenSSH reads it: one line paramiko cannot parse (bad base64, an unknown
    # key type) is skipped with a warning instead of failing every host (HostKeys.load raises).
    table = client._system_host_keys  # type: ignore[attr-defined]  # checked first, never rewritten
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entry = HostKeyEntry.from_line(line, number)
        except (InvalidHostKey, SSHException, ValueError, binascii.Error) as exc:
            log.warning("%s:%d: skipping a host key line that cannot be read (%s)", path, number, exc)
            continue
        if entry is None:
            continue
        entry.hostnames = [h for h in entry.hostnames if not table.check(h, entry.key)]
        if entry.hostnames:
            table._entries.append(entry)


def check_host_keys(conn: Connection, extra_files: Sequence[Path], carried: Mapping[str, str] | None = None) -> None:
    """Make ``conn``, and every ``Connection`` gateway before it, check host keys.

    Fabric builds ProxyJump hops itself (``Connection.get_gateway``) with ``AutoAddPolicy``;
    only by walking ``.gateway`` does every hop get the target's rules. A ``ProxyCommand``
    gateway is a string, not a connection: it has no SSH client of ours to check."""
    options = host_key_options(conn.ssh_config, carried or {})
    user_files = known_hosts_files(options.get("userknownhostsfile"), DEFAULT_USER_KNOWN_HOSTS)
    global_files = known_hosts_files(options.get("globalknownhostsfile"), DEFAULT_GLOBAL_KNOWN_HOSTS)
    for path in (*extra_files, *user_files, *global_files):
        load_known_hosts(conn.client, path)
    conn.client.set_missing_host_key_policy(host_key_policy(
        options.get("stricthostkeychecking", "accept-new"),
        save_to=user_files[0] if user_files else None,
        hash_names=options.get("hashknownhosts", "no").lower() == "yes"))
    if isinstance(conn.gateway, Connection):
        check_host_keys(conn.gateway, extra_files, options)


_CLONING = threading.Lock()


def connect(target: str, config: Config, known_hosts: Iterable[Path | str] = (),
            **kwargs: object) -> Connection:
    """A Fabric ``Connection`` to ``target`` (``user@host:port`` or an ssh_config alias), host keys
    checked on it and on its ProxyJump hops; ``known_hosts`` adds files to trust."""
    # Its own copy: Fabric's Connection writes into its configuration as it starts (inline_ssh_env),
    # and every write re-merges it; on the fleet's one shared Config another host's thread reading it
    # then finds keys missing ("No attribute or config key found for 'user'").
    with _CLONING:
        own = config.clone()
    conn = Connection(target, config=own, **kwargs)
    extra_files = [Path(str(path)).expanduser() for path in (*config.get("known_hosts", []), *known_hosts)]
    check_host_keys(conn, extra_files)
    return conn


# The liveness probe OpenSSH's own ServerAliveInterval sends: a global request the server
# answers (with a refusal: it knows no such request), so any reply proves the peer alive.
KEEPALIVE_REQUEST = "keepalive@openssh.com"


def liveness_kwargs(config: Config, timeout: float) -> dict[str, Any]:
    """paramiko ``connect`` bounds for a host that accepts TCP but never speaks SSH (no banner),
    or stops during the handshake or authentication: ``timeout`` seconds each, unless the
    configuration's ``connect_kwargs`` already sets them."""
    if timeout <= 0:
        return {}
    given = config.get("connect_kwargs", {})
    return {name: timeout for name in ("banner_timeout", "auth_timeout", "channel_timeout") if name not in given}


class Transport(Protocol):
    """What the watchdog needs of a paramiko ``Transport``."""

    def global_request(self, kind: str, data: Any = None, wait: bool = True) -> Any: ...

    def is_active(self) -> bool: ...

    def close(self) -> None: ...


class Watchdog:
    """Closes an SSH transport whose peer stops answering (a hung host: its TCP stack still up,
    its processes frozen, so no error ever comes; a command would wait for its whole timeout).

    A pinger thread sends a keepalive global request with want_reply every ``interval`` seconds
    and waits for the reply; a checker thread closes the transport once nothing came back for
    ``timeout`` seconds. Closing ends every session on it at once (they see the channel closed);
    ``fired`` then tells the caller why."""

    def __init__(self, transport: Transport, timeout: float, interval: float | None = None,
                 name: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.transport = transport
        self.timeout = timeout
        self.interval = interval if interval is not None else min(10.0, max(0.2, timeout / 4))
        self.name = name
        self.clock = clock
        self.last_reply = clock()
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Watchdog:
        for role, loop in (("ping", self._ping), ("check", self._check)):
            thread = threading.Thread(target=loop, name=f"hostsetup-{role}-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def silent_for(self) -> float:
        return self.clock() - self.last_reply

    def _ping(self) -> None:
        while not self._stop.is_set() and self.transport.is_active():
            try:
                self.transport.global_request(KEEPALIVE_REQUEST, wait=True)
            except Exception:  # the transport is gone (closed, broken): nothing left to watch
                return
            if not self.transport.is_active():
                return
            self.last_reply = self.clock()
            self._stop.wait(self.interval)

    def _check(self) -> None:
        step = min(1.0, self.interval)
        while not self._stop.wait(step):
            if self.silent_for() > self.timeout:
                if self._stop.is_set():
                    return
                self.fired.set()
                self.transport.close()
                return
