"""The doctor task and its per-host run: recorded probe output through a fake shell, exit codes, output."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from invoke.context import Context
from invoke.exceptions import AuthFailure, Exit, UnexpectedExit
from invoke.runners import Result

from hostsetup.config import HostsetupConfig
from hostsetup.doctor import run
from hostsetup.doctor.findings import CODES
from hostsetup.doctor.report import host_details, host_line
from hostsetup.doctor.run import DoctorOptions, DoctorReport, doctor_host
from hostsetup.errors import HostsetupError
from hostsetup.run.status import Status
from hostsetup.run.status import doctor_exit_code as exit_code
from hostsetup.targets import LOCAL, Target
from hostsetup.tasks.doctor import doctor

DATA = Path(__file__).parent / "data" / "doctor"


def recorded(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


class FakeShell:
    """Stands in for this machine's Remote (--local): probes answer with recorded output, root scripts are
    recorded."""

    outputs: ClassVar[list[str]] = []
    scripts: ClassVar[list[str]] = []
    shells: ClassVar[int] = 0
    root_ok: ClassVar[bool] = True

    def __init__(self) -> None:
        type(self).shells += 1
        self.sessions = 0
        self.conn = SimpleNamespace(close=lambda: None)

    def run(self, command: str, timeout: float | None = None) -> Result:
        self.sessions += 1
        return Result(stdout=type(self).outputs.pop(0), stderr="", exited=0, command=command)

    def root(self, script: str, timeout: float | None = None) -> Result:
        self.sessions += 1
        type(self).scripts.append(script)
        return Result(stdout="", stderr="" if self.root_ok else "boom", exited=0 if self.root_ok else 1,
                      command=script)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeShell]:
    monkeypatch.setattr(run, "open_connection", lambda target, config: FakeShell())
    FakeShell.outputs, FakeShell.scripts, FakeShell.shells, FakeShell.root_ok = [], [], 0, True
    return FakeShell


def doctor_local(fix: bool = False, dry_run: bool = False) -> DoctorReport:
    return doctor_host(Target(LOCAL, LOCAL), HostsetupConfig(), DoctorOptions(fix=fix, dry_run=dry_run, local=True))


def test_healthy_takes_one_session(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine26.1-healthy")]
    report = doctor_local(fix=True)
    assert (report.status, report.codes, report.sessions, report.plan) == ("healthy", ["HEALTHY"], 1, None)
    assert report.system.startswith("Debian GNU/Linux 13") and report.engine.startswith("Docker version 26.1")


def test_fix_then_probe_again_from_a_new_login(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine20.10-not-in-group"), recorded("engine20.10-healthy")]
    report = doctor_local(fix=True)
    assert fake.scripts == ["set -e\nusermod -aG docker hostsetup"]
    assert fake.shells == 2  # the group change reaches only a new login
    assert (report.status, [f.code for f in report.findings], report.codes) == (
        "fixed", ["USER_NOT_IN_GROUP"], ["HEALTHY"])
    assert report.sessions == 3 and [s.status for s in report.steps] == ["changed"]
    data = json.loads(json.dumps(report.as_dict()))
    assert data["fixes"]["steps"][0]["script"] == "usermod -aG docker hostsetup"
    assert data["after"][0]["code"] == "HEALTHY"
    assert host_line(report) == "localhost (--local)  fixed      USER_NOT_IN_GROUP -> HEALTHY"


def test_dry_run_changes_nothing_and_prints_the_commands(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine26.1-socket-masked")]
    report = doctor_local(fix=True, dry_run=True)
    assert fake.scripts == [] and report.status == "unhealthy" and report.after is None
    lines = host_details(report, verbose=False, dry_run=True)
    assert lines[:3] == ["  would run as root:", "    fix unmask (SOCKET_MASKED):",
                         "        systemctl unmask docker.socket"]


def test_a_failed_fix_skips_the_rest_and_still_looks_again(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine26.1-invalid-json"), recorded("engine26.1-invalid-json")]
    fake.root_ok = False
    report = doctor_local(fix=True)
    assert [(s.name, s.status) for s in report.steps] == [("move daemon.json aside", "failed"),
                                                         ("start docker", "skipped")]
    assert report.steps[0].error == "boom"
    assert report.status == "unhealthy" and report.codes == ["CONFIG_INVALID_JSON", "START_LIMIT_HIT"]


def test_no_sudo_means_no_fix(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine26.1-stopped").replace("priv=sudo", "priv=password")]
    report = doctor_local(fix=True)
    assert fake.scripts == [] and report.status == "unhealthy"
    assert report.error == "cannot fix: sudo asks hostsetup for a password: run as root or with passwordless sudo"


def test_garbage_is_a_failed_host(fake: type[FakeShell]) -> None:
    fake.outputs = ["sh: 1: syntax error\n"]
    report = doctor_local()
    assert report.status == "failed" and report.error.startswith("probing failed")
    assert host_line(report).startswith("localhost (--local)  failed     -  (probing failed")


PASSWORD = "s3cret"
PROXIES = {"proxies": {"http-proxy": f"http://user:{PASSWORD}@proxy:3128"}}


def with_secrets(output: str) -> str:
    """A hosts conflict the fix moves, with a proxy password in daemon.json and in DOCKER_HOST."""
    config = {"hosts": ["unix:///var/run/docker.sock", "unix:///run/docker-alt.sock"], **PROXIES}
    encoded = base64.b64encode(json.dumps(config).encode()).decode()
    output = re.sub(r"(@@daemon-json\n)[^\n]*", lambda m: f"{m[1]}present\t1795817661\t{encoded}", output)
    return output.replace("@@env-files\n", f"@@env-files\n/etc/environment:1:DOCKER_HOST=tcp://me:{PASSWORD}@10.0.0.9:2376\n")


def test_every_output_masks_secrets_but_the_fix_runs_with_them(fake: type[FakeShell], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fake.outputs = [with_secrets(recorded("engine26.1-hosts-conflict"))]
    with pytest.raises(Exit):
        doctor(context([]), local=True, dry_run=True, verbose=True, json=str(tmp_path / "doctor.json"))
    out, saved = capsys.readouterr().out, (tmp_path / "doctor.json").read_text()
    assert '"http-proxy": "http://user:***@proxy:3128"' in out           # the --dry-run heredoc, as shown
    assert "evidence: /etc/environment:1:DOCKER_HOST=tcp://me:***@10.0.0.9:2376" in out  # --verbose evidence
    assert "http://user:***@proxy:3128" in saved and "tcp://me:***@10.0.0.9:2376" in saved
    assert PASSWORD not in out and PASSWORD not in saved
    fake.outputs = [with_secrets(recorded("engine26.1-hosts-conflict")), recorded("engine26.1-healthy")]
    doctor_local(fix=True)
    payloads = [base64.b64decode(p).decode() for p in re.findall(r"printf %s (\S+) \| base64 -d", fake.scripts[0])]
    assert any(f'"http-proxy": "http://user:{PASSWORD}@proxy:3128"' in p for p in payloads)  # the executed form


def test_the_sudo_password_is_masked(fake: type[FakeShell]) -> None:
    fake.outputs = [recorded("engine26.1-healthy")]
    c = context([])
    c.config.sudo.password = "pw-only-in-this-test"
    doctor(c, local=True)
    assert host_line(DoctorReport("h", error="sudo said pw-only-in-this-test")) == "h  ok         -  (sudo said ***)"


def odd_output(name: str) -> str:
    """A recording with output the parser has not met: a group line without its fields, bad base64."""
    if name == "group":
        return re.sub(r"(@@group\n)[^\n]*", r"\1docker", recorded("engine26.1-healthy"))
    return recorded("engine26.1-healthy").replace("@@daemon-json\nabsent", "@@daemon-json\npresent\t1\t!!!x")


@pytest.mark.parametrize("odd", ["group", "base64"])
def test_unexpected_probe_output_is_a_failed_host(fake: type[FakeShell], odd: str) -> None:
    fake.outputs = [odd_output(odd)]
    report = doctor_local()
    assert report.status == "failed" and report.error.startswith("probing failed: output not understood (")
    assert exit_code([report]) == 3


class RemoteFake(FakeShell):
    """A remote host whose sudo refuses the password given with --prompt-for-sudo-password."""

    def root(self, script: str, timeout: float | None = None) -> Result:
        raise AuthFailure(Result(command=script, exited=1), "[sudo] password: ")


def test_a_wrong_sudo_password_is_a_failed_host(fake: type[FakeShell], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "open_connection", lambda target, config: RemoteFake())
    fake.outputs = [recorded("engine26.1-stopped").replace("priv=sudo", "priv=password")]
    config = HostsetupConfig()
    config.sudo.password = "wrong"
    report = doctor_host(Target("web1", "web1"), config, DoctorOptions(fix=True))
    assert (report.status, report.error) == ("failed", "sudo did not accept the password")
    assert [f.code for f in report.findings] == ["DAEMON_STOPPED", "LIMITED_PROBES"]  # the diagnosis is kept
    assert host_line(report) == "web1  failed     DAEMON_STOPPED,LIMITED_PROBES  (sudo did not accept the password)"


@pytest.mark.parametrize(("error", "message"), [
    (UnexpectedExit(Result(stderr="sudo: a terminal is required", exited=1)),
     "command failed: sudo: a terminal is required"),
    (KeyError("surprise"), "internal error: KeyError: 'surprise'")])
def test_any_error_of_one_host_leaves_the_others_diagnosed(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str],
                                                           error: Exception, message: str) -> None:
    class Shell(FakeShell):
        def __init__(self, host: str) -> None:
            super().__init__()
            self.host = host

        def run(self, command: str, timeout: float | None = None) -> Result:
            if self.host == "odd":
                raise error
            return Result(stdout=recorded("engine26.1-healthy"), exited=0, command=command)

    monkeypatch.setattr(run, "open_connection", lambda target, config: Shell(target.name))
    with pytest.raises(Exit) as stopped:
        doctor(context(["odd", "web2"]))
    assert stopped.value.code == 3
    odd, web2 = capsys.readouterr().out.splitlines()[:2]
    assert odd == f"odd   failed     -  ({message})"
    assert web2 == "web2  healthy    HEALTHY"


@pytest.mark.parametrize(("statuses", "code"), [
    (["healthy", "fixed"], 0), (["healthy", "unhealthy"], 1), (["unhealthy", "failed"], 3), ([], 0)])
def test_exit_codes(statuses: list[Status], code: int) -> None:
    assert exit_code([DoctorReport(f"h{i}", status=s) for i, s in enumerate(statuses)]) == code


def context(hosts: list[str]) -> Context:
    config = HostsetupConfig()
    config["hosts"] = hosts
    return Context(config=config)


@pytest.mark.parametrize(("hosts", "options", "message"), [
    ([], {}, "no hosts given"),
    (["web1"], {"local": True}, "either hosts or --local"),
    (["web1"], {"user": "bad name"}, "is not a user name"),
])
def test_bad_input_is_a_clear_error(hosts: list[str], options: dict[str, object], message: str) -> None:
    with pytest.raises(HostsetupError, match=message):
        doctor(context(hosts), **options)


def test_help_lists_every_code_and_exit_status() -> None:
    doc = doctor.__doc__ or ""
    assert all(code in doc for code in CODES)
    assert "Exit status: 0" in doc


def test_local_run_through_the_program(tmp_path: Path) -> None:
    report = tmp_path / "doctor.json"
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "doctor", "--local", "--json", str(report)],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    (host,) = json.loads(report.read_text())["hosts"]
    assert host["host"] == "localhost (--local)" and host["codes"] and host["ssh_sessions"] == 1
    assert proc.returncode == (0 if host["codes"][-1] == "HEALTHY" else 1)
    assert proc.stdout.startswith("localhost (--local)  ")
