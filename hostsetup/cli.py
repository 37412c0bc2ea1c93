"""The ``hostsetup`` program: Fabric's CLI (``-H``, ``-i``, ``-S``, ``--list``) over
hostsetup's own task collection."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fabric.main import Fab
from invoke.exceptions import AmbiguousEnvVar, Exit, ParseError, UncastableEnvVar
from invoke.executor import Executor
from invoke.parser.argument import Argument
from invoke.parser.context import ParserContext
from paramiko.config import ConfigParseError

from hostsetup import __version__, secrets
from hostsetup.config import HostsetupConfig
from hostsetup.errors import HostsetupError
from hostsetup.inputs import InputError
from hostsetup.inputs.config import TASK_FLAG_RULES
from hostsetup.inputs.values import did_you_mean, existing_file
from hostsetup.run.status import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED
from hostsetup.tasks import namespace


def split_hosts(value: str | None) -> list[str]:
    """``-H a,b`` -> ``["a", "b"]`` (blank entries dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Hostsetup(Fab):  # type: ignore[misc]  # (fabric is untyped)
    """Fabric's program, except that a task runs once and receives every ``-H``
    host in ``c.config.hosts`` so that it can work on them in parallel."""

    def core_args(self) -> list[Argument]:
        return [*super().core_args(),
                Argument(names=("inventory",), help="Inventory file: hostsetup YAML/TOML or Ansible INI/YAML."),
                Argument(names=("limit",), help="Select inventory hosts: groups, names, globs; !x excludes."),
                Argument(names=("parallel",), help="How many hosts at once (default 10)."),
                Argument(names=("serial",), kind=bool, help="One host at a time (--parallel 1)."),
                Argument(names=("batch",), help="Rolling batches: N hosts or N% of them at a time."),
                Argument(names=("max-fail-percent",),
                         help="Start no new batch once more than this % of hosts failed.")]

    def parse_core(self, argv: list[str] | None) -> None:
        with input_boundary(argv):
            super().parse_core(argv)
        # -d turns on Invoke's debug logging (it dumps the configuration, sudo password included):
        # every handler masks secrets. paramiko logs a broken handshake with a traceback on stderr;
        # the per-host report says it in one line instead.
        secrets.install_log_filter()
        if not self.args.debug.value:
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)

    def create_config(self) -> None:
        with input_boundary([]):
            super().create_config()
            # ./hostsetup.yaml is the project configuration file.
            self.config.set_project_location(os.getcwd())
            self.config.load_project()

    def parse_collection(self) -> None:
        with input_boundary(self.argv):
            super().parse_collection()

    def parse_tasks(self) -> None:
        with input_boundary(self.argv, self._flag_names):
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with input_boundary(self.argv):
            list_format = self.args["list-format"].value
            if list_format not in ("flat", "nested", "json"):
                raise InputError(f"--list-format: {list_format!r}: choose flat, nested or json")
            super().parse_cleanup()

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        """Invoke's run, inside a last boundary: whatever a phase let through is one line, exit 70."""
        try:
            super().run(argv, exit)
        except (SystemExit, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:
            print(internal_error_line(exc), file=sys.stderr)
            sys.exit(70)

    def _flag_names(self) -> list[str]:
        names = [f"--{n}" if len(n) > 1 else f"-{n}" for a in self.core_args() for n in a.names]
        for context in self.collection.to_contexts():
            names += [f"--{n}" if len(n) > 1 else f"-{n}" for a in context.flags.values() for n in a.names]
        return names

    def update_config(self) -> None:
        with input_boundary(self.argv):
            # Files named on the command line must exist (Fabric would raise, Invoke skip them quietly).
            for flag, value in (("-f", self.args.config.value), ("-S", self.args["ssh-config"].value)):
                if value is not None:
                    existing_file(value, flag)
            runtime = self.args.config.value
            if runtime is not None and os.path.splitext(runtime)[1] not in (".yaml", ".yml", ".json"):
                raise InputError(f"-f: {runtime}: a settings file is YAML or JSON: name it *.yaml, *.yml or *.json")
            for path in self.args["identity"].value or []:
                existing_file(path, "-i")
            try:
                super().update_config()
            except ConfigParseError as exc:  # -S or ~/.ssh/config
                path = self.args["ssh-config"].value or "~/.ssh/config"
                raise InputError(f"{path}: not a valid ssh_config: {exc}") from None
            flags: dict[str, Any] = {
                "hosts": split_hosts(self.args["hosts"].value), "inventory": self.args["inventory"].value,
                "limit": self.args["limit"].value,
                "parallel": 1 if self.args["serial"].value else self.args["parallel"].value,
                "batch": self.args["batch"].value, "max_fail_percent": self.args["max-fail-percent"].value}
            flags = {k: v for k, v in flags.items() if v not in (None, "", [])}
            self.config.check_flags(flags)
            self.config._overrides.update(flags)
            self.config.merge()

    def execute(self) -> None:
        with input_boundary(self.argv):
            check_task_flags(self.tasks)
            super().execute()


def check_task_flags(tasks: list[ParserContext]) -> None:
    """Task flags with a meaning beyond their type (``TASK_FLAG_RULES``), checked before the task
    starts: a report's directory must exist now, not after the hosts were worked on."""
    for context in tasks:
        for arg in context.args.values():
            rule = TASK_FLAG_RULES.get(arg.name)
            if rule is not None and arg.got_value and arg.value not in (None, ""):
                rule(arg.value, f"--{arg.name.replace('_', '-')}")


@contextmanager
def input_boundary(argv: list[str] | None, flag_names: Callable[[], list[str]] | None = None) -> Iterator[None]:
    """The CLI boundary: bad input ends in one line and exit 2, an interrupt in exit 130, and
    anything else in one line and exit 70 (with ``--debug``, Python's traceback as well)."""
    try:
        yield
    except Exit:
        raise
    except HostsetupError as exc:
        raise Exit(f"hostsetup: {one_line(str(exc))}", code=EXIT_BAD_INPUT) from None
    except (UncastableEnvVar, AmbiguousEnvVar) as exc:
        raise Exit(f"hostsetup: a HOSTSETUP_* environment variable does not fit its setting: {exc}",
                   code=EXIT_BAD_INPUT) from None
    except ParseError as exc:
        raise Exit(f"hostsetup: {parse_error_line(str(exc), flag_names() if flag_names else [])}; see hostsetup --help",
                   code=EXIT_BAD_INPUT) from None
    except ValueError as exc:
        if "invalid literal for int()" in str(exc):  # an INT flag (-T, -t, sandbox --hosts) given text
            raise Exit(f"hostsetup: {int_flag_line(argv or [], str(exc))}", code=EXIT_BAD_INPUT) from None
        raise Exit(internal_error_line(exc), code=EXIT_INTERNAL) from exc
    except KeyboardInterrupt:
        raise Exit("hostsetup: interrupted", code=EXIT_INTERRUPTED) from None
    except EOFError:  # a prompt (--prompt-for-sudo-password) read the end of standard input
        raise Exit("hostsetup: a prompt got no answer: standard input is closed; run it from a terminal, or give "
                   "the password in the sudo.password setting", code=EXIT_BAD_INPUT) from None
    except BrokenPipeError:
        raise  # the reader went away (| head): main() ends quietly
    except Exception as exc:
        if logging.getLogger("invoke").isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        raise Exit(internal_error_line(exc), code=EXIT_INTERNAL) from None


def one_line(message: str) -> str:
    """Bad input is reported on one line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def internal_error_line(exc: BaseException) -> str:
    return (f"hostsetup: internal error: {type(exc).__name__}: {one_line(secrets.mask(str(exc)))} "
            "(a bug in hostsetup; please report it, with the output of --debug)")


def parse_error_line(message: str, flag_names: list[str]) -> str:
    """Invoke's parse errors, with "did you mean" for an unknown flag."""
    unknown = re.fullmatch(r"No idea what '(.*)' is!", message)
    if unknown:
        word = unknown.group(1).split("=", 1)[0]
        return f"unknown option or task {word!r}{did_you_mean(word, [n for n in flag_names if n != word])}"
    needs = re.fullmatch(r"Flag <Argument: ([\w-]+).*> needed value and was not given one!?", message)
    if needs:
        name = needs.group(1).replace("_", "-")
        return f"{'-' if len(name) == 1 else '--'}{name} needs a value"
    return message.rstrip("!.")


def int_flag_line(argv: list[str], message: str) -> str:
    """``-T abc``: name the flag whose value is not a whole number."""
    value = message.rpartition(": ")[2].strip("'\"")
    flag = next((argv[i - 1] for i in range(1, len(argv)) if argv[i] == value and argv[i - 1].startswith("-")),
                next((a.split("=", 1)[0] for a in argv if a.startswith("-") and a.endswith("=" + value)), "a flag"))
    return f"{flag}: {value!r} is not a whole number"


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
