"""The fleet check runner's pieces that need no host: which commands may be answered ahead, and the
answers script run here for real."""

from __future__ import annotations

import subprocess

import pytest

from hostsetup.checks.fleet import answers_script, parse_answers, read_only


@pytest.mark.parametrize("command", [
    "dpkg-query -f '${Status} ${Version}' -W docker-ce", "systemctl is-active docker", "systemctl is-enabled docker",
    "test -e /etc/docker/daemon.json", "cat -- /etc/docker/daemon.json", "getent group docker", "id -Gn hostsetup",
    "timeout 20 docker info --format '{{json .}}'", "dpkg --print-architecture", "uname -m",
    "runuser -l hostsetup -c \"timeout 20 docker version --format '{{.Server.Version}}'\"",
])
def test_commands_that_only_look_may_be_answered_ahead(command: str) -> None:
    assert read_only(command)


@pytest.mark.parametrize("command", [
    "timeout 60 docker run --rm --network none tiny", "timeout 120 docker pull hello-world", "docker rmi x",
    "echo AAAA | base64 -d | timeout 60 docker load", "curl -sk https://x/", "rm -rf /", "systemctl restart docker",
    "cat /etc/passwd; rm -f /x", "test -e /x\nrm -f /y", "cat /x#;touch /y", "stat /x#|reboot",
    "runuser -l hostsetup -c 'timeout 120 docker pull -q image'", "b=$(mktemp); cat x > \"$b\"",
])
def test_commands_that_change_or_reach_out_always_run_live(command: str) -> None:
    assert not read_only(command)


def test_the_answers_script_reports_status_stdout_and_stderr_of_each_command() -> None:
    commands = ["printf 'a\\nb'", "echo oops >&2; exit 3", "cat", "printf '@@hostsetup-answer 0 0\\nx'", "true"]
    run = subprocess.run(["sh", "-s"], input=answers_script(commands), capture_output=True, text=True, timeout=30)
    answers = parse_answers(commands, run.stdout)
    assert answers == {commands[0]: (0, b"a\nb", b""), commands[1]: (3, b"", b"oops\n"), commands[2]: (0, b"", b""),
                       commands[3]: (0, b"@@hostsetup-answer 0 0\nx", b""), commands[4]: (0, b"", b"")}


def test_a_cut_off_answer_is_left_out() -> None:
    commands = ["echo one", "echo two"]
    run = subprocess.run(["sh", "-s"], input=answers_script(commands), capture_output=True, text=True, timeout=30)
    cut = run.stdout[:run.stdout.rindex("@@hostsetup-answer 1")] + "@@hostsetup-answer 1 0\n"
    assert parse_answers(commands, cut) == {"echo one": (0, b"one\n", b"")}


def test_the_commands_memory_is_kept_per_checks_content_and_survives_a_broken_file(tmp_path, monkeypatch) -> None:
    from hostsetup.run.verify import commands_memory

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    checks = tmp_path / "test_mine.py"
    checks.write_text("def test_x(host): pass\n")
    hosts = [{"checks": [str(checks)]}]
    memory = commands_memory(hosts)
    assert memory.read() == []
    memory.write(["systemctl is-active docker", "getent group docker"])
    assert commands_memory(hosts).read() == ["systemctl is-active docker", "getent group docker"]
    assert (tmp_path / "hostsetup" / "verify-commands.json").stat().st_mode & 0o777 == 0o600
    checks.write_text("def test_y(host): pass\n")      # other checks: their own list
    assert commands_memory(hosts).read() == []
    memory.path.write_text("{not json")
    assert memory.read() == []
    memory.write(["id -Gn a"])
    assert memory.read() == ["id -Gn a"]


def test_answers_serve_the_login_command_but_never_one_run_as_another_user(monkeypatch) -> None:
    from testinfra.backend.paramiko import ParamikoBackend
    from testinfra.host import Host

    from hostsetup.checks.fleet import AnsweredBackend

    ran: list[str] = []

    def live(self, command, *args, **kwargs):  # what the host would say, over SSH
        ran.append(self.get_command(command, *args))
        return self.result(0, b"", b"alice\n", b"")

    monkeypatch.setattr(ParamikoBackend, "run", live)
    backend = AnsweredBackend("paramiko://login@host:22", sudo=True)
    backend.answers, backend.record = {"id -un": (0, b"root\n", b"")}, []
    host = Host(backend)
    assert host.run("id -un").stdout == "root\n" and ran == []
    with host.sudo("alice"):
        assert host.run("id -un").stdout == "alice\n"
    assert len(ran) == 1 and "alice" in ran[0] and backend.record == []
    assert host.run("getent group docker").stdout == "alice\n"     # not answered: live, and recorded
    assert backend.record == ["getent group docker"] and backend.live == 2


def test_a_host_that_cannot_be_reached_reports_it_and_gets_a_junit_file_saying_so(tmp_path) -> None:
    from hostsetup.run.verify import SshOptions, VerifyJob, verify_fleet

    stale = tmp_path / "junit.xml"
    stale.write_text("<testsuites><testsuite><testcase name='old'/></testsuite></testsuites>")
    [report] = verify_fleet([VerifyJob("gone", "root@127.0.0.1:1", {"install": {}}, junit_copy=stale)],
                            SshOptions(connect_timeout=2))
    assert report.status == "failed" and "cannot connect" in report.error
    assert "cannot connect" in stale.read_text() and "old" not in stale.read_text()
