"""The ``hostsetup`` program: Fabric's CLI (``-H``, ``-i``, ``-S``, ``--list``) over
hostsetup's own task collection."""

from __future__ import annotations

import os
import sys

from fabric.main import Fab
from invoke import Executor, Exit
from invoke.exceptions import AmbiguousEnvVar, UncastableEnvVar

from hostsetup import __version__
from hostsetup.config import HostsetupConfig
from hostsetup.errors import HostsetupError
from hostsetup.tasks import namespace


def split_hosts(value: str | None) -> list[str]:
    """``-H a,b`` -> ``["a", "b"]`` (blank entries dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Hostsetup(Fab):
    """Fabric's program, except that a task runs once and receives every ``-H``
    host in ``c.config.hosts`` so that it can work on them in parallel."""

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


def main() -> None:
    """Console entry point; a closed pipe (``hostsetup --help | head``) is not an error."""
    try:
        program.run()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
