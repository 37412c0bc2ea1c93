"""The ``hostsetup`` program: Fabric's CLI (``-H``, ``-i``, ``-S``, ``--list``) over
hostsetup's own task collection."""

from __future__ import annotations

import logging
import os
import sys

from fabric.main import Fab
from invoke import Argument, Executor, Exit
from invoke.exceptions import AmbiguousEnvVar, UncastableEnvVar

from hostsetup import __version__, secrets
from hostsetup.config import HostsetupConfig
from hostsetup.errors import HostsetupError
from hostsetup.tasks import namespace


def split_hosts(value: str | None) -> list[str]:
    """``-H a,b`` -> ``["a", "b"]`` (blank entries dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Hostsetup(Fab):
    """Fabric's program, except that a task runs once and receives every ``-H``
    host in ``c.config.hosts`` so that it can work on them in parallel."""

    def core_args(self) -> list[Argument]:
        return [*super().core_args(),
                Argument(names=("inventory",), help="Inventory file: hostsetup YAML/TOML or Ansible INI/YAML."),
                Argument(names=("limit",), help="Select inventory hosts: groups, names, globs; !x excludes."),
                Argument(names=("parallel",), kind=int, help="How many hosts at once (default 10)."),
                Argument(names=("serial",), kind=bool, help="One host at a time (--parallel 1)."),
                Argument(names=("batch",), help="Rolling batches: N hosts or N% of them at a time."),
                Argument(names=("max-fail-percent",), kind=int,
                         help="Start no new batch once more than this % of hosts failed.")]

    def parse_core(self, argv: list[str] | None) -> None:  # type: ignore[override]
        super().parse_core(argv)
        # -d turns on Invoke's debug logging (it dumps the configuration, sudo password included):
        # every handler masks secrets. paramiko logs a broken handshake with a traceback on stderr;
        # the per-host report says it in one line instead.
        secrets.install_log_filter()
        if not self.args.debug.value:
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)

    def create_config(self) -> None:
        super().create_config()
        # ./hostsetup.yaml is the project configuration file.
        self.config.set_project_location(os.getcwd())
        self.config.load_project()

    def update_config(self) -> None:  # type: ignore[override]
        super().update_config()
        hosts = split_hosts(self.args["hosts"].value)
        if hosts:
            self.config._overrides["hosts"] = hosts
        fleet = {"inventory": self.args["inventory"].value, "limit": self.args["limit"].value,
                 "parallel": 1 if self.args["serial"].value else self.args["parallel"].value,
                 "batch": self.args["batch"].value, "max_fail_percent": self.args["max-fail-percent"].value}
        self.config._overrides.update({k: v for k, v in fleet.items() if v not in (None, "")})
        self.config.merge()

    def execute(self) -> None:
        try:
            super().execute()
        except HostsetupError as exc:
            raise Exit(f"hostsetup: {exc}", code=2) from None
        except (UncastableEnvVar, AmbiguousEnvVar) as exc:
            raise Exit(f"hostsetup: a HOSTSETUP_* environment variable does not fit its setting: {exc}",
                       code=2) from None
        except KeyboardInterrupt:
            raise Exit("hostsetup: interrupted", code=130) from None


program = Hostsetup(
    name="hostsetup",
    binary="hostsetup",
    version=__version__,
    namespace=namespace,
    executor_class=Executor,
    config_class=HostsetupConfig,
)


def help_first(argv: list[str]) -> list[str]:
    """``hostsetup TASK ... --help`` -> ``hostsetup ... --help TASK``: Invoke would otherwise take
    ``--help`` as the value of a positional argument (``sandbox --help``)."""
    names = set(namespace.task_names) | {a for aliases in namespace.task_names.values() for a in aliases}
    takes_value = {name for arg in program.core_args() if arg.takes_value
                   for name in (f"--{arg.names[0]}", *(f"-{n}" if len(n) == 1 else f"--{n}" for n in arg.names))}
    skip = False
    for index, word in enumerate(argv[1:], start=1):
        if skip:  # the value of the flag before (-H demo install --help: "demo" is a host)
            skip = False
            continue
        if word in takes_value:
            skip = True
        elif word in names:
            if any(w in ("--help", "-h") for w in argv[index + 1:]):
                return [*argv[:index], "--help", word]
            break
    return argv


def main() -> None:
    """Console entry point; a closed pipe (``hostsetup --help | head``) is not an error."""
    secrets.install_stream_masks()
    try:
        program.run(help_first(sys.argv))
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
