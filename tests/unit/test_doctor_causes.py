"""The real error behind a failed start: the whole current failure is read, every fatal line is
evidence, and what a line is about decides its code (``hostsetup.doctor.journal``, ``causes``).

Every journal line here was printed by a real dockerd, containerd or systemd on a sandbox host
(tests/unit/data/doctor, recorded by tests/tools/record_doctor.py); variants change state only
(times, file contents, unit states) or re-arrange recorded lines.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hostsetup.doctor.causes import DAEMON_CAUSES, blamed_key, classify_line
from hostsetup.doctor.classify import _Rules, classify, codes
from hostsetup.doctor.findings import CODES, RANK, Finding, explain
from hostsetup.doctor.fixes import plan_fixes
from hostsetup.doctor.journal import Line, current_failure, fatal_lines, parse_journal
from hostsetup.doctor.probes import Probes, parse_probes

DATA = Path(__file__).parent / "data" / "doctor"
ENGINES = ["engine20.10", "engine26.1"]
RECORDINGS = sorted(DATA.glob("engine*.txt"))
ROOT_CAUSES = {code for code in CODES if RANK[code] < RANK["START_LIMIT_HIT"]}


def probes(name: str) -> Probes:
    return parse_probes((DATA / f"{name}.txt").read_text())


def find(p: Probes, code: str) -> Finding:
    return next(f for f in classify(p) if f.code == code)


def current_fatals(p: Probes) -> list[str]:
    """The fatal lines the doctor holds current after its rules ran (the state contradicts none of them)."""
    rules = _Rules(p)
    rules.findings()
    return [f.text for f in rules.fatals]


# -- the whole current failure ---------------------------------------------------------------------

def refused_again(p: Probes, seconds: float = 30) -> Probes:
    """The host after a later start request that systemd refused without running dockerd (the start
    limit still holds): the recording's own refusal lines logged once more, later."""
    refusal = [line for line in p.journal_errors
               if line.source == "systemd" and ("Start request repeated" in line.text
                                                 or "service-start-limit-hit" in line.text)]
    assert refusal
    later = [dataclasses.replace(line, time=line.time + seconds) for line in refusal]
    return dataclasses.replace(p, journal_errors=(*p.journal_errors, *later))


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda path: path.stem)
def test_no_start_limit_alone_when_a_reason_was_logged(recording: Path) -> None:
    """On every recording, and on it again after a refused start request: when a current fatal line
    exists, a root cause comes before START_LIMIT_HIT, and that line is evidence of some finding."""
    base = parse_probes(recording.read_text())
    variants = [base]
    if any("Start request repeated" in line.text for line in base.journal_errors):
        variants.append(refused_again(base))
    for p in variants:
        findings = classify(p)
        fatals = current_fatals(p)
        if fatals and "START_LIMIT_HIT" in codes(findings):
            assert findings[0].code in ROOT_CAUSES, (recording.name, codes(findings))
        evidence = "\n".join(e for f in findings for e in f.evidence)
        for text in fatals:
            assert text in evidence, (recording.name, text)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda path: path.stem)
def test_unknown_only_without_any_fatal_line(recording: Path) -> None:
    p = parse_probes(recording.read_text())
    if "UNKNOWN" in codes(classify(p)):
        assert not current_fatals(p), recording.name


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_start_request_keeps_the_reason(engine: str) -> None:
    p = refused_again(probes(f"{engine}-storage-driver"))
    assert codes(classify(p)) == ["STORAGE_DRIVER_FAILED", "START_LIMIT_HIT"]


def test_a_failure_is_read_back_to_the_last_successful_start_only() -> None:
    lines = parse_journal((DATA / "engine26.1-invalid-cidr.txt").read_text().split("@@journal-errors\n")[1]
                          .split("\n@@")[0].splitlines())
    window = current_failure(lines, "docker")
    started = [i for i, line in enumerate(lines) if line.text.startswith("Started docker.service")]
    assert started and window == [line for line in lines[started[-1] + 1:] if line.source != "containerd"]
    assert all(line.source != "containerd" for line in window)


def test_fatal_lines_are_distinct_and_counted() -> None:
    p = probes("engine20.10-binary-missing")
    fatals = fatal_lines(current_failure(list(p.journal_errors), "docker"))
    assert sorted(f.text for f in fatals) == [
        "docker.service: Failed at step EXEC spawning /usr/bin/dockerd: No such file or directory",
        "docker.service: Failed to locate executable /usr/bin/dockerd: No such file or directory",
        "docker.service: Main process exited, code=exited, status=203/EXEC"]
    assert all(f.count >= 2 and f.last > f.time for f in fatals)
    assert [f.time for f in fatals] == sorted(f.time for f in fatals)  # in the order first logged


def test_continuation_lines_join_their_fatal_line() -> None:
    # dockerd prints iptables' advice on lines of its own (moby/moby#37694: the message as users posted it).
    raw = [
        "100.1 h dockerd[7]: failed to start daemon: Error initializing network controller: error obtaining "
        "controller instance: failed to create NAT chain DOCKER: iptables failed: iptables --wait -t nat -N DOCKER: "
        "iptables v1.8.7 (legacy): can't initialize iptables table `nat': Table does not exist (do you need to "
        "insmod?)",
        "100.1 h dockerd[7]: Perhaps iptables or your kernel needs to be upgraded.",
        "100.1 h dockerd[7]:  (exit status 3)",
    ]
    (fatal,) = fatal_lines(parse_journal(raw))
    assert fatal.text.endswith("(do you need to insmod?)")
    assert classify_line(fatal.text, DAEMON_CAUSES, {})[0] == "IPTABLES_FAILED"


def test_logrus_fatal_lines_are_their_message() -> None:
    (fatal,) = fatal_lines([Line('time="2026-12-06T00:00:00Z" level=fatal msg="Error starting daemon: \\"x\\" bad"',
                                 1.0, "dockerd", 5)])
    assert fatal.text == 'Error starting daemon: "x" bad'
    quiet = Line('time="2026-12-06T00:00:00Z" level=error msg="Failed to get event"', 1.0, "dockerd", 5)
    assert fatal_lines([quiet]) == []


# -- what a line is about --------------------------------------------------------------------------

@pytest.mark.parametrize(("engine", "cause", "expected", "said"), [
    ("engine20.10", "storage-driver", ["STORAGE_DRIVER_FAILED", "START_LIMIT_HIT"],
     "failed to start daemon: error initializing graphdriver: prerequisites for driver not satisfied "
     "(wrong filesystem?)"),
    ("engine26.1", "storage-driver", ["STORAGE_DRIVER_FAILED", "START_LIMIT_HIT"],
     "failed to start daemon: error initializing graphdriver: prerequisites for driver not satisfied "
     "(wrong filesystem?): btrfs"),
    ("engine20.10", "invalid-cidr", ["CONFIG_INVALID_VALUE", "START_LIMIT_HIT"],
     "failed to start daemon: Error initializing network controller: invalid CIDR address: 300.0.0.1/24"),
    ("engine26.1", "invalid-cidr", ["CONFIG_INVALID_VALUE", "START_LIMIT_HIT"],
     "failed to start daemon: Error initializing network controller: invalid CIDR address: 300.0.0.1/24"),
    ("engine20.10", "userns-remap", ["USERNS_FAILED", "START_LIMIT_HIT"],
     'Error during uid lookup for "nosuchuser": getent unable to find entry "nosuchuser" in passwd database'),
    ("engine26.1", "userns-remap", ["USERNS_FAILED", "START_LIMIT_HIT"],
     'Error during uid lookup for "nosuchuser": getent unable to find entry "nosuchuser" in passwd database'),
    ("engine20.10", "binary-missing", ["BINARY_MISSING", "START_LIMIT_HIT"],
     "docker.service: Failed to locate executable /usr/bin/dockerd: No such file or directory"),
    ("engine26.1", "binary-missing", ["BINARY_MISSING", "START_LIMIT_HIT"],
     "docker.service: Unable to locate executable '/usr/bin/dockerd': No such file or directory"),
    ("engine20.10", "execstart-flag", ["EXECSTART_INVALID", "START_LIMIT_HIT"], "unknown flag: --no-such-flag"),
    ("engine26.1", "execstart-flag", ["EXECSTART_INVALID", "START_LIMIT_HIT"], "unknown flag: --no-such-flag"),
    ("engine20.10", "iptables-missing", ["IPTABLES_FAILED", "START_LIMIT_HIT"],
     "failed to start daemon: Error initializing network controller: error obtaining controller instance: "
     "failed to create NAT chain DOCKER: Iptables not found"),
    ("engine26.1", "iptables-missing", ["IPTABLES_FAILED", "START_LIMIT_HIT"],
     "failed to start daemon: Error initializing network controller: error obtaining controller instance: "
     'failed to register "bridge" driver: failed to create NAT chain DOCKER: iptables not found'),
    ("engine20.10", "containerd-config", ["CONTAINERD_CONFIG_INVALID", "CONTAINERD_DOWN"],
     "containerd: failed to load TOML: /etc/containerd/config.toml: (2, 2): unexpected token unclosed table key, "
     "was expecting a table key"),
    ("engine26.1", "containerd-config", ["CONTAINERD_CONFIG_INVALID", "CONTAINERD_DOWN"],
     "containerd: failed to load TOML: /etc/containerd/config.toml: (2, 2): unexpected token unclosed table key, "
     "was expecting a table key"),
    ("engine20.10", "second-dockerd", ["OTHER_DOCKERD", "START_LIMIT_HIT"],
     "failed to start daemon: pid file found, ensure docker is not running or delete /var/run/docker.pid"),
    ("engine26.1", "second-dockerd", ["OTHER_DOCKERD", "START_LIMIT_HIT"],
     "failed to start daemon, ensure docker is not running or delete /var/run/docker.pid: process with PID"),
    ("engine20.10", "missing-context", ["CLIENT_CONFIG_INVALID"],
     'Current context "nosuch" is not found on the file system, please check your config file at '
     "/home/hostsetup/.docker/config.json"),
    ("engine26.1", "missing-context", ["CLIENT_CONFIG_INVALID"],
     'Failed to initialize: unable to resolve docker endpoint: context "nosuch": context not found'),
    ("engine20.10", "api-version", ["CLIENT_CONFIG_INVALID"],
     "Error response from daemon: client version 1.0 is too old. Minimum supported API version is 1.12"),
    ("engine26.1", "api-version", ["CLIENT_CONFIG_INVALID"],
     "client version 1.0 is too old. Minimum supported API version is 1.24"),
    ("engine20.10", "tls-verify", ["CLIENT_CONFIG_INVALID"],
     "unable to resolve docker endpoint: open /home/hostsetup/.docker/ca.pem: no such file or directory"),
    ("engine26.1", "tls-verify", ["CLIENT_CONFIG_INVALID"], "/etc/environment:1:DOCKER_TLS_VERIFY=1"),
    ("engine20.10", "rootless-context", ["DOCKER_HOST_ELSEWHERE"],
     "docker context rootless: unix:///run/user/1000/docker.sock (the rootless engine socket of uid 1000)"),
    ("engine26.1", "desktop-context", ["DOCKER_HOST_ELSEWHERE"],
     "unix:///home/hostsetup/.docker/desktop/docker.sock (Docker Desktop's socket)"),
])
def test_recorded_real_errors(engine: str, cause: str, expected: list[str], said: str) -> None:
    findings = classify(probes(f"{engine}-{cause}"))
    assert codes(findings) == expected
    assert said in "\n".join(findings[0].evidence)
    assert all(f.fix for f in findings)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rejected_daemon_json_value_is_named(engine: str) -> None:
    p = probes(f"{engine}-invalid-cidr")
    finding = find(p, "CONFIG_INVALID_VALUE")
    assert finding.key == "bip"
    assert "/etc/docker/daemon.json: \"bip\": '300.0.0.1/24' is the value the engine rejected" in finding.evidence
    assert "IPTABLES_FAILED" not in codes(classify(p))  # the network controller's words are not the firewall's


def test_keys_are_blamed_by_value_or_by_name() -> None:
    config = {"default-address-pools": [{"base": "10.10.0.0/8", "size": 4}], "log-level": "info"}
    # Recorded on both engines (not kept as a file): pools of size 4 refused.
    line = ("failed to start daemon: Error initializing network controller: error obtaining controller instance: "
            "invalid pools size: 4")
    assert blamed_key(line, config) == ("default-address-pools.size", "4")
    assert classify_line(line, DAEMON_CAUSES, config)[:2] == ("CONFIG_INVALID_VALUE", "default-address-pools.size")
    assert blamed_key("level=info msg=x", config) is None
    assert classify_line(line, DAEMON_CAUSES, {})[0] == "BRIDGE_ADDRESS_FAILED"


def test_a_line_no_rule_knows_is_daemon_start_failed_as_logged() -> None:
    p = probes("engine26.1-storage-driver")
    odd = "failed to start daemon: something no rule has heard of"
    lines = [dataclasses.replace(line, text=odd) if "graphdriver" in line.text else line
             for line in p.journal_errors]
    findings = classify(dataclasses.replace(p, journal_errors=tuple(lines), daemon_json='{}'))
    assert codes(findings) == ["DAEMON_START_FAILED", "START_LIMIT_HIT"]
    assert findings[0].evidence[0].startswith(f"dockerd: {odd}")


def test_a_freed_disk_leaves_only_the_start_limit() -> None:
    p = probes("engine20.10-data-root-full")
    freed = dataclasses.replace(p, disks=(dataclasses.replace(p.disks[0], avail_kb=p.disks[0].size_kb // 2),
                                          *p.disks[1:]))
    assert codes(classify(freed)) == ["START_LIMIT_HIT"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_removed_drop_in_and_a_working_iptables_leave_only_the_start_limit(engine: str) -> None:
    p = probes(f"{engine}-execstart-flag")
    svc = p.unit("docker.service")
    fixed = dataclasses.replace(svc, argv=("/usr/bin/dockerd", "-H", "fd://"), drop_ins=())
    assert codes(classify(dataclasses.replace(p, units={**p.units, "docker.service": fixed}))) == ["START_LIMIT_HIT"]
    p = probes(f"{engine}-iptables-missing")
    working = dataclasses.replace(p, system={**p.system, "iptables": "iptables v1.8.9 (nf_tables)",
                                             "iptables-nat": "ok"})
    assert codes(classify(working)) == ["START_LIMIT_HIT"]


def test_a_restored_binary_leaves_only_the_start_limit() -> None:
    p = probes("engine26.1-binary-missing")
    back = dataclasses.replace(p, engine=probes("engine26.1-healthy").engine)
    assert codes(classify(back)) == ["START_LIMIT_HIT"]


def test_storage_driver_evidence_names_the_filesystem() -> None:
    finding = find(probes("engine26.1-storage-driver"), "STORAGE_DRIVER_FAILED")
    assert finding.key == "storage-driver"
    assert any(e.startswith("data-root /var/lib/docker is on ") and "storage-driver 'btrfs'" in e
               for e in finding.evidence)


# -- fixes stay safe ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cause", ["storage-driver", "userns-remap", "invalid-cidr"])
def test_a_daemon_json_choice_is_moved_aside_never_deleted(cause: str) -> None:
    p = probes(f"engine20.10-{cause}")
    plan = plan_fixes(classify(p), p, "20260101T000000")
    assert [s.name for s in plan.steps] == ["move daemon.json aside", "start docker"]
    assert "mv /etc/docker/daemon.json /etc/docker/daemon.json.invalid.20260101T000000" in plan.steps[0].script
    assert all(" rm " not in f" {s.script} " for s in plan.steps)


def test_a_backup_with_the_same_rejected_value_is_not_restored() -> None:
    p = probes("engine20.10-invalid-cidr")
    same = dataclasses.replace(p, backup='{"bip": "300.0.0.1/24"}', backup_path="/var/backups/hostsetup/x")
    assert plan_fixes(classify(same), same, "t").steps[0].name == "move daemon.json aside"
    good = dataclasses.replace(p, backup='{"log-level": "warn"}', backup_path="/var/backups/hostsetup/x")
    assert plan_fixes(classify(good), good, "t").steps[0].name == "restore daemon.json"


@pytest.mark.parametrize("cause", ["binary-missing", "iptables-missing", "second-dockerd", "containerd-config",
                                   "missing-context", "execstart-flag"])
def test_what_a_person_must_decide_is_printed_not_run(cause: str) -> None:
    p = probes(f"engine26.1-{cause}")
    findings = classify(p)
    plan = plan_fixes(findings, p, "t")
    assert findings[0] in plan.manual and findings[0].command
    assert all(s.name != "start containerd" for s in plan.steps)  # it would only fail again


def test_reinstall_commands_follow_the_system() -> None:
    p = probes("engine26.1-binary-missing")
    assert find(p, "BINARY_MISSING").command == "sudo apt-get install --reinstall -y docker-ce"
    el = dataclasses.replace(p, os_ids=("rocky", "rhel", "centos", "fedora"))
    assert find(el, "BINARY_MISSING").command == "sudo yum reinstall -y docker-ce"


@pytest.mark.parametrize(("cause", "variable"), [("api-version", "DOCKER_API_VERSION"),
                                               ("tls-verify", "DOCKER_TLS_VERIFY")])
def test_a_client_variable_is_removed_where_it_is_set(cause: str, variable: str) -> None:
    for engine in ENGINES:
        finding = find(probes(f"{engine}-{cause}"), "CLIENT_CONFIG_INVALID")
        assert finding.command == f"sudo sed -i.bak '/^[^#]*\\({variable}\\)=/d' /etc/environment"


def test_a_missing_context_command_works_on_the_20_10_client() -> None:
    # `docker context use default` alone fails on 20.10 while the current context is missing.
    assert find(probes("engine20.10-missing-context"), "CLIENT_CONFIG_INVALID").command == \
        "DOCKER_CONTEXT=default docker context use default"


# -- doctor --explain --------------------------------------------------------------------------------

def test_every_code_is_explained() -> None:
    for code in CODES:
        lines = explain(code)
        assert lines[0].startswith(f"{code}: ") and lines[1].startswith("  looks for: ")
        assert lines[2].startswith("  fix: ") and all(len(line) > 12 for line in lines)


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--explain", "start_limit_hit"], 0, "START_LIMIT_HIT: systemd gave up"),
    (["--explain", "ALL"], 0, "DAEMON_START_FAILED: "),
    (["--explain", "STORAGE_DRIVER"], 2, "did you mean 'STORAGE_DRIVER_FAILED'?"),
    (["--explain", ""], 2, "is not a finding code"),
    (["--explain"], 2, "--explain needs a value"),
])
def test_explain_through_the_program(args: list[str], code: int, words: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hostsetup", "doctor", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == code and words in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 2:
        assert len(proc.stderr.strip().splitlines()) == 1
