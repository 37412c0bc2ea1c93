"""``hostsetup -H HOSTS login REGISTRY``: a registry login in users' ~/.docker/config.json."""

from __future__ import annotations

from functools import partial

from invoke.context import Context
from invoke.tasks import task

from hostsetup import secrets
from hostsetup.errors import HostsetupError
from hostsetup.facts import Wanted
from hostsetup.inputs.files import prompt_secret, read_secret
from hostsetup.login import LoginSettings, plan_login
from hostsetup.registries import Credentials, registry_name, registry_username
from hostsetup.run.converge import run_converge
from hostsetup.run.fleet import Planner
from hostsetup.run.settings import target_hosts
from hostsetup.run.status import exit_code
from hostsetup.settings import _as_list, check_users

PASSWORD_VARIABLE = "HOSTSETUP_LOGIN_PASSWORD"


def read_password(c: Context, password_file: str | None, username: str, registry: str) -> str:
    """From ``--password-file`` (its first line), the ``login.password`` setting (``HOSTSETUP_LOGIN_PASSWORD``),
    ``login.password_file``, or a prompt on the terminal; never from the command line."""
    path = password_file or str(c.config.login.password_file or "")
    if path:
        return read_secret(path, "password file")
    if c.config.login.password:
        return str(c.config.login.password)
    return prompt_secret(f"password for {username} at {registry}: ",
                         f"no password for {username} at {registry}: give --password-file FILE or "
                         f"{PASSWORD_VARIABLE}, or run it on a terminal to be asked")


@task(positional=["registry"], help={
    "registry": "the registry, host[:port] (registry.example.com:5000); docker.io for Docker Hub",
    "username": "the registry user name",
    "password-file": f"read the password from this file (else {PASSWORD_VARIABLE}, else a prompt)",
    "users": "comma-separated users whose ~/.docker/config.json gets the login (default: the SSH user)",
    "logout": "remove the registry's login from those users' files instead",
    "dry-run": "print what would change; change nothing",
    "json": "write a machine-readable report to this file",
    "html": "write a self-contained HTML page of the run to this file",
})
def login(c: Context, registry: str, username: str = "", password_file: str | None = None,
          users: str | None = None, logout: bool = False, dry_run: bool = False, json: str | None = None,
          html: str | None = None) -> None:
    """Log users in to a registry: credentials checked on the host first, ~/.docker/config.json written
    atomically (0600, other keys kept); --logout removes it."""
    name = registry_name(registry, "registry")
    who = check_users(_as_list(users if users is not None else c.config.login.users), "--users")
    credentials = None
    if not logout:
        user = username or str(c.config.login.username or "")
        if not user:
            raise HostsetupError("give --username (or login.username) to log in")
        registry_username(user)  # refused before any password is asked for
        credentials = Credentials.checked(user, read_password(c, password_file, user, name))
        secrets.register(credentials.password, credentials.auth)
    targets = target_hosts(c.config)
    settings = LoginSettings(name, credentials, who)
    planners: dict[str, Planner] = {t.name: partial(plan_login, login=settings) for t in targets}
    wanted: dict[str, tuple[str, ...] | Wanted] = {t.name: Wanted(who, docker_configs=True) for t in targets}
    exit_code(run_converge(c.config, planners, wanted, dry_run, json, targets, html, "login"))
