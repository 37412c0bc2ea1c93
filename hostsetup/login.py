"""Planning registry logins: each user's ``~/.docker/config.json`` gets (or loses) one
registry's entry, every other key kept. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from hostsetup.distros import UnsupportedSystem, resolve_platform
from hostsetup.facts import HostFacts, docker_config_path
from hostsetup.host.command import Command, Payload, Quoted, Raw, command, join
from hostsetup.host.files import cleanup_traps, clear_traps
from hostsetup.operations import CheckLogin, Operation, WriteUserFile
from hostsetup.plan import PlanError
from hostsetup.registries import (
    ClientConfigError,
    Credentials,
    auth_key,
    client_config_text,
    helper_for,
    is_hub,
    logged_in_as,
    parse_client_config,
    with_login,
    without_login,
)
from hostsetup.steps import Plan, Step


@dataclass(frozen=True)
class LoginSettings:
    registry: str                      # host[:port], checked (registries.registry_name)
    credentials: Credentials | None    # None: log out
    users: tuple[str, ...] = ()        # (): the user hostsetup logs in as over SSH


def plan_login(facts: HostFacts, login: LoginSettings) -> Plan:
    """One ``login`` step: a credentials check on the host, then each user's file that changes."""
    try:
        platform = resolve_platform(facts.os_release)
    except UnsupportedSystem as exc:
        raise PlanError(str(exc)) from None
    if login.credentials is not None and not facts.dockerd_version:
        raise PlanError("Docker Engine is not installed here (no dockerd): run `hostsetup install` first")
    key = auth_key(login.registry)
    users = login.users or (facts.user,)
    writes: list[Operation] = []
    done: list[str] = []
    for user in users:
        account = facts.homes.get(user)
        if account is None:
            raise PlanError(f"no user {user} on this host")
        path = docker_config_path(account.home)
        text = facts.files.get(path)
        if path in facts.files and text is None:
            raise PlanError(f"{path} cannot be read, even as root")
        try:
            config = parse_client_config(text, f"{user}'s {path}")
        except ClientConfigError as exc:
            raise PlanError(str(exc)) from None
        before = logged_in_as(config, key)
        helper = helper_for(config, key)
        if helper:
            raise PlanError(f"{user}'s {path} keeps logins in {helper}, where hostsetup does not write: "
                            f"{'log in' if login.credentials else 'log out'} there as {user} (docker "
                            f"{'login' if login.credentials else 'logout'}), or remove that setting first")
        if login.credentials is None:
            new = without_login(config, key)
            change = f"remove the login to {login.registry} (as {before})" if before else \
                f"remove the entry of {login.registry}"
        else:
            new = with_login(config, key, login.credentials)
            change = (f"log in to {login.registry} as {login.credentials.username}"
                      + (f" (was {before})" if before and before != login.credentials.username else "")
                      + ("; other keys kept" if set(config) - {"auths"} or len(config.get("auths") or {}) > 1
                         or (before is None and config.get("auths")) else ""))
        if new == config and (text is not None or login.credentials is None):
            done.append(user)
            continue
        writes.append(WriteUserFile(path, client_config_text(new), user, change))
    state = (f"logged in to {login.registry} as {login.credentials.username}" if login.credentials
             else f"not logged in to {login.registry}")
    if not writes:
        return Plan(platform, (Step("login", f"{', '.join(done)}: {state}"),))
    changing = [op.user for op in writes if isinstance(op, WriteUserFile)]
    check: tuple[Operation, ...] = ()
    if login.credentials is not None:
        check = (CheckLogin("" if is_hub(login.registry) else login.registry, login.credentials.username,
                            login.credentials.password),)
    verb = f"log in to {login.registry} as {login.credentials.username}" if login.credentials \
        else f"log out of {login.registry}"
    return Plan(platform, (Step("login", f"{verb}: {', '.join(changing)}", (*check, *writes)),))


def check_login_script(op: CheckLogin) -> Command:
    """``docker login`` with the password on stdin (decoded by ``base64``, fed by the shell's own
    ``printf``: on no command line), in a throwaway client configuration removed however it ends."""
    return join((
        "cfg=",
        *cleanup_traps('[ -z "$cfg" ] || rm -rf "$cfg"'),
        "cfg=$(mktemp -d)",
        "if ! command -v docker >/dev/null 2>&1; then echo 'the docker client is not installed: run "
        "hostsetup install first; nothing was written' >&2; exit 1; fi",
        command('if ! out=$(@PASSWORD@ | DOCKER_CONFIG="$cfg" timeout 60 docker login '
                "--username @USER@ --password-stdin @REGISTRY@ 2>&1); then",
                PASSWORD=Payload(op.password, secret=True), USER=op.username,
                REGISTRY=Quoted(op.registry) if op.registry else Raw("")),
        '  rc=$?; why=$(printf \'%s\\n\' "$out" | grep -v \'^WARNING\' | grep . | tail -n 1)',
        '  [ -n "$why" ] || why="docker login ended with exit $rc and no message"',
        command("  printf '%s refused the login of %s: %s; nothing was written\\n' @WHERE@ @USER@ \"$why\" >&2",
                WHERE=op.registry or "Docker Hub", USER=op.username),
        "  exit 1",
        "fi",
        'rm -rf "$cfg"; cfg=',
        clear_traps(),
    ))
