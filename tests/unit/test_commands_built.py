"""Commands built with the command type at their call sites: a value with shell metacharacters or a
marker-like word stays one shell word, exactly; ``Remote`` runs a ``Command`` as its text."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from invoke.runners import Result

from hostsetup import rollback
from hostsetup.apply import _upload_bundle
from hostsetup.daemon.apply import configure_script, rollback_script
from hostsetup.host.command import command
from hostsetup.operations import CheckLogin, ConfigureDaemon, Run, UploadBundle
from hostsetup.plan import plan_install
from hostsetup.remote import Remote, RemoteError, local_remote
from hostsetup.settings import install_settings
from tests.unit.test_plan import recorded

# A quote, a space, a glob, a variable, a command substitution and marker names the templates use.
ODD = "it's a @USER@ $(x) * @PATH@ @SLOT@"


def test_a_user_named_like_a_marker_is_one_word_of_usermod() -> None:
    facts = recorded("debian12-bare")
    facts = dataclasses.replace(facts, user_groups={**facts.user_groups, ODD: frozenset()})
    settings = dataclasses.replace(install_settings({}), users=(ODD,))   # (settings refuse such a name)
    group = next(step for step in plan_install(facts, settings).steps if step.name == "group")
    usermod = [op.command for op in group.operations if isinstance(op, Run) and "usermod" in op.command]
    assert usermod == [f"usermod -aG docker {shlex.quote(ODD)}"]
    assert shlex.split(usermod[0]) == ["usermod", "-aG", "docker", ODD]


def test_rollback_keeps_and_puts_back_a_file_whose_name_holds_markers_and_quotes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollback, "ROLLBACK_DIR", str(tmp_path / "rollback"))
    odd = tmp_path / ODD.replace("/", "_")
    odd.write_text("before\n")
    keep = rollback.keep_script(str(odd))
    assert keep.count(shlex.quote(str(odd))) == 3 and "@PATH@" in keep and "@SLOT@" in keep
    script = "\n".join(("set -e", rollback.begin_script(), keep, f"echo after > {shlex.quote(str(odd))}",
                        rollback.proof_script("false", [str(odd)])))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and rollback.RESTORED in done.stdout, done.stderr
    assert odd.read_text() == "before\n"   # put back, under its own name
    assert sorted(p.name for p in tmp_path.iterdir()) == [odd.name]   # no stray file, copies dropped


def test_daemon_json_at_an_odd_path_is_one_word_wherever_the_scripts_name_it() -> None:
    path = f"/etc/docker/{ODD}.json"
    op = ConfigureDaemon(path, "{}\n", "{}", restart=True, validate=True, reload_units=False, expect={})
    script, back = configure_script(op), rollback_script(dataclasses.replace(op, old=None))
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert f"install -d -m 0755 $(dirname {shlex.quote(path)})" in script
    assert f'mv -f "$tmp" {shlex.quote(path)}' in script
    assert back.splitlines()[-4] == f"rm -f {shlex.quote(path)}"


def test_sudo_with_a_password_runs_and_removes_the_stored_script_by_its_path_as_one_word() -> None:
    stored = f"/tmp/{ODD}"
    calls: list[tuple[str, str, Any]] = []

    def run(line: str, **kw: Any) -> Result:
        calls.append(("run", line, kw["in_stream"].read() if kw["in_stream"] else None))
        return Result(stdout=f"{stored}\n", exited=0)

    def sudo(line: str, **kw: Any) -> Result:
        calls.append(("sudo", line, None))
        return Result(stdout="done", exited=0)

    conn = SimpleNamespace(run=run, sudo=sudo, config=SimpleNamespace(runners=SimpleNamespace()))
    seen: list[str] = []
    remote = Remote(conn, sudo_asks=True, before_session=seen.append)
    script = command("echo @WORD@", WORD=ODD)
    assert remote.root(script).stdout == "done"
    assert seen == [script.text] and calls[0][2] == script.text   # the Command's text, on stdin
    outer = shlex.split(calls[1][1])
    assert outer[:2] == ["sh", "-c"] and len(outer) == 3
    assert shlex.split(outer[2].split(";")[0]) == ["sh", stored]
    assert shlex.split(outer[2].split(";")[2]) == ["rm", "-f", stored]


def test_a_bundle_upload_cut_off_removes_its_temporary_file_by_name() -> None:
    uploaded = f"/var/tmp/{ODD}"
    runs: list[str] = []

    class Fake:
        sessions = 0

        def put(self, local: str, remote: str) -> None:
            raise OSError("disk full")

        def run(self, line: str, timeout: float | None = None, stdin: str | None = None) -> Result:
            runs.append(line)
            return Result(stdout=f"{uploaded}\n", exited=0)

    fake = Fake()
    fake.conn = fake  # type: ignore[attr-defined]
    with pytest.raises(RemoteError, match="uploading the bundle failed: disk full"):
        _upload_bundle(fake, UploadBundle("/b.tar", "0" * 64, 1, "/var/lib/hostsetup/bundles/x"))  # type: ignore[arg-type]
    assert shlex.split(runs[-1]) == ["rm", "-f", uploaded]


def test_the_login_check_shows_an_odd_user_name_as_one_word() -> None:
    (line,) = CheckLogin("registry.example:5000", ODD, "pw-not-shown").describe()
    assert line.startswith(f"$ docker login --username {shlex.quote(ODD)} --password-stdin registry.example:5000  (")
    (hub,) = CheckLogin("", "alice", "pw-not-shown").describe()
    assert hub.startswith("$ docker login --username alice --password-stdin  (")


def test_a_local_remote_runs_a_command_as_its_text() -> None:
    done = local_remote().run(command("printf %s @WORD@", WORD=ODD))
    assert done.ok and done.stdout == ODD
