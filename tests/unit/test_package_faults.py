"""Package-manager faults, the pure and the local parts: facts of an interrupted dpkg run and of a
held lock (recorded from sandbox hosts), the plan's repair and lock notice, the lock wait and the
full-disk diagnosis really run by ``sh`` here, and the lost connection in a batch's results.

Recorded facts: ``debian12-dpkg-interrupted`` is a fresh Debian 12 host whose ``install`` had dpkg
killed (``kill -9``) while it unpacked containerd.io; ``rocky9-rpmdb-locked`` a fresh rocky9 host
with dnf's rpmdb lock taken by dnf's own lock code (``python3 -c 'import dnf.lock ...'``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostsetup.apply import CONNECTION_LOST, apply_plan, batch_results, batch_script
from hostsetup.facts import HostFacts, parse_facts
from hostsetup.host import packages as pkgcommands
from hostsetup.host.packages import (
    LOCK_GIVE_UP,
    ManagerLocks,
    diagnosed,
    holders_script,
    locked,
    repository_refresh_command,
)
from hostsetup.operations import InstallPackages, Run
from hostsetup.plan import plan_install
from hostsetup.run.fleet import describe_plan
from hostsetup.settings import SettingsError, install_settings
from hostsetup.steps import Step
from tests.unit.test_plan import SYNTHETIC_OS, recorded, sandbox_settings

DATA = Path(__file__).parent / "data" / "facts"


def sh(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout)


# --- facts ----------------------------------------------------------------------------------------

def test_interrupted_dpkg_run_is_seen() -> None:
    facts = recorded("debian12-dpkg-interrupted")
    assert facts.dpkg_interrupted
    assert "containerd.io" not in facts.packages  # iHR: half-installed, reinstall required
    assert facts.lock_holders == ()
    assert not recorded("debian12-converged").dpkg_interrupted


def test_half_installed_package_alone_means_interrupted() -> None:
    """A user without sudo cannot run dpkg --audit while a journal is pending: the status letters say it."""
    text = (DATA / "debian12-dpkg-interrupted.txt").read_text()
    text = text.replace("dpkg-journal\n", "").replace("dpkg-audit\n", "")
    assert parse_facts(text).dpkg_interrupted
    assert not parse_facts(text.replace("containerd.io\t1.6.20-1\tiHR", "containerd.io\t1.6.20-1\tii ")) \
        .dpkg_interrupted


def test_lock_holder_is_read() -> None:
    facts = recorded("rocky9-rpmdb-locked")
    assert facts.lock_holders == ("1117 python3 -c",)


def test_rpm_package_installed_twice_is_a_duplicate() -> None:
    text = (DATA / "debian12-converged.txt").read_text()
    start, end = text.index("@@packages\n"), text.index("@@holds")
    rows = ("docker-ce\t3:20.10.5-1.el9\tii \ndocker-ce\t3:20.10.24-1.el9\tii \n"
            "docker-ce-cli\t1:20.10.24-1.el9\tii \n")
    facts = parse_facts(text[:start] + "@@packages\n" + rows + "\n" + text[end:])
    assert facts.duplicates == {"docker-ce"} and facts.packages["docker-ce"] == "3:20.10.24-1.el9"


# --- the lock wait and holders, run here --------------------------------------------------------

@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[tuple[ManagerLocks, int]]:
    """A process holding an fcntl lock on one file (as apt and dpkg do) and named in a pid file (as dnf)."""
    lock_file, pid_file = tmp_path / "lock", tmp_path / "dnf.pid"
    lock_file.touch()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(lock_file)!r}, 'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True)\n"
        "time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    pid_file.write_text(str(holder.pid))
    try:
        yield ManagerLocks("test", (str(lock_file),), (str(pid_file),)), holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_holders_are_found_by_fcntl_lock_and_by_pid_file(held_lock, tmp_path: Path) -> None:
    locks, pid = held_lock
    name = Path(sys.executable).name
    for only in (ManagerLocks("a", locks.files), ManagerLocks("b", (str(tmp_path / "none"),), locks.pid_files)):
        out = sh(holders_script(only) + "\nhs_lock_holders").stdout
        assert out == f"{pid} {name} -c\n"
    dead = tmp_path / "dead.pid"
    dead.write_text("999999999")  # dnf's rule: a pid file of a process gone is free
    assert sh(holders_script(ManagerLocks("c", (), (str(dead),))) + "\nhs_lock_holders").stdout == ""


def test_locked_command_fails_naming_the_holder_after_the_timeout(held_lock, monkeypatch) -> None:
    locks, pid = held_lock
    monkeypatch.setitem(pkgcommands.LOCKS, "apt-get", locks)
    started = time.monotonic()
    result = sh(locked("apt-get", "echo ran", 2))
    assert 2 <= time.monotonic() - started < 10
    assert result.returncode == LOCK_GIVE_UP and "ran" not in result.stdout
    assert result.stderr == (f"hostsetup: the test lock is still held by {pid} {Path(sys.executable).name} -c "
                             "after 2 s: let it finish (or stop it), then rerun\n")


def test_locked_command_runs_once_the_lock_is_free(held_lock, monkeypatch) -> None:
    locks, pid = held_lock
    # the fcntl lock only: a killed holder stays a zombie (its /proc entry) until the fixture reaps it
    monkeypatch.setitem(pkgcommands.LOCKS, "apt-get", ManagerLocks("test", locks.files))
    subprocess.Popen(["sh", "-c", f"sleep 1.5; kill {pid}"])
    started = time.monotonic()
    result = sh(locked("apt-get", "echo ran", 20))
    assert result.returncode == 0 and result.stdout == "ran\n" and result.stderr == ""
    assert 1 <= time.monotonic() - started < 10  # it waited for the holder to go


def test_locked_runs_at_once_without_holders() -> None:
    result = sh(locked("dnf", "echo ran", 0))
    assert (result.returncode, result.stdout, result.stderr) == (0, "ran\n", "")


# --- the full disk ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "dpkg: error processing archive /var/cache/apt/archives/x.deb (--unpack):\r\n cannot copy extracted data for "
    "'./usr/libexec/docker/cli-plugins/docker-buildx' to '/usr/libexec/docker/cli-plugins/docker-buildx.dpkg-new': "
    "failed to write (No space left on device)",
    "  installing package docker-compose-plugin-2.26.1-1.el9.x86_64 needs 64MB more space on the "
    "/usr/libexec/docker/cli-plugins filesystem",
])
def test_full_disk_is_named_last(line: str) -> None:
    result = sh(diagnosed(f"printf '%s\\n' {subprocess.list2cmdline([line])} >&2 && echo more && false"))
    assert result.returncode != 0
    last = result.stderr.splitlines()[-1]
    assert last.startswith("hostsetup: the disk is full: ") and "/usr/libexec/docker/cli-plugins" in last
    assert last.endswith("; free space there, then rerun install") and "\r" not in last


def test_diagnosis_keeps_success_and_other_failures_as_they_are() -> None:
    ok = sh(diagnosed("echo fine"))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "fine\n")
    failed = sh(diagnosed("echo 'E: Unable to locate package x' >&2 && false"))
    assert failed.returncode == 1 and failed.stderr == "E: Unable to locate package x\n"


def test_install_command_is_valid_sh() -> None:
    op = InstallPackages("apt-get", ("docker-ce",), "/etc/apt/sources.list.d/docker.sources", lock_timeout=7)
    script = op.install_command(None)
    assert sh(f"sh -n -c {subprocess.list2cmdline([script])}").returncode == 0
    assert "DPkg::Lock::Timeout=7" in script and "\nhs_wait_lock && { " in script


def test_a_lock_that_stays_fails_the_command_also_where_its_status_is_tested(held_lock, monkeypatch) -> None:
    """Inside ``if ! { ...; }`` (apply's proof of a refresh) the failed wait must fail the list, not
    exit the script past its rollback, and never run an ``||`` fallback of the command."""
    locks, _ = held_lock
    monkeypatch.setitem(pkgcommands.LOCKS, "dnf", locks)
    script = locked("dnf", "(echo install; false) || echo downgrade && echo relock", 0)
    result = sh(f"if ! {{ {script}; }}; then echo 'proof failed, put back'; fi; echo after")
    assert result.stdout == "proof failed, put back\nafter\n", result


# --- planning ---------------------------------------------------------------------------------------

def test_interrupted_dpkg_is_repaired_before_any_package_step() -> None:
    facts = recorded("debian12-dpkg-interrupted")
    plan = plan_install(facts, sandbox_settings(recorded("debian12-converged")))
    assert plan.steps[0].name == "repair" and plan.steps[0].changes
    (repair,) = plan.steps[0].operations
    assert isinstance(repair, Run) and repair.waits_for_lock
    assert repair.command.endswith("\nhs_wait_lock && { dpkg --configure -a && DEBIAN_FRONTEND=noninteractive "
                                   "apt-get install -f -y -q -o DPkg::Lock::Timeout=120\n}")
    text = "\n".join(describe_plan(plan))
    assert "change   repair         finish the interrupted dpkg transaction" in text
    assert "wait up to 120 s for the dpkg/apt lock (then fail naming its holder)\n      $ dpkg --configure -a" in text


def test_repository_only_refresh_waits_before_writing() -> None:
    """Nothing to install: the refresh proves the new repository file; the wait comes before the write,
    and the refresh is the plain command apply's RepositoryGuard recognises as that proof."""
    facts = recorded("debian12-converged")
    plan = plan_install(facts, sandbox_settings(facts, mirror="https://mirrors.aliyun.com/docker-ce", lock_timeout=4))
    (repository,) = plan.changes
    wait, _write, refresh = repository.operations
    assert isinstance(wait, Run) and wait.waits_for_lock and wait.command.endswith("\nhs_wait_lock")
    assert wait.describe() == ["wait up to 4 s for the dpkg/apt lock (then fail naming its holder)"]
    assert isinstance(refresh, Run) and refresh.command == repository_refresh_command(
        "apt-get", "/etc/apt/sources.list.d/docker.sources")


def test_converged_host_with_an_interrupted_dpkg_plans_only_the_repair() -> None:
    facts = dataclasses.replace(recorded("debian12-converged"), dpkg_interrupted=True)
    plan = plan_install(facts, sandbox_settings(facts))
    assert [s.name for s in plan.changes] == ["repair"]


def test_rpm_duplicates_are_removed_first() -> None:
    facts = dataclasses.replace(recorded("debian12-bare"), os_release=SYNTHETIC_OS["rocky9"],
                                duplicates=frozenset({"docker-ce", "libfoo"}))
    plan = plan_install(facts, install_settings({}))
    assert plan.steps[0].name == "repair" and "docker-ce" in plan.steps[0].summary
    assert "libfoo" not in plan.steps[0].summary  # only the packages hostsetup manages
    (repair,) = plan.steps[0].operations
    assert isinstance(repair, Run)
    assert repair.command.endswith("dnf remove -y --setopt=exit_on_lock=True --duplicates\n}")
    # a dpkg flag on an rpm host means nothing there
    assert plan_install(dataclasses.replace(facts, duplicates=frozenset(), dpkg_interrupted=True),
                        install_settings({})).steps[0].name == "conflicts"


def test_held_lock_gives_the_first_package_step_a_notice() -> None:
    facts = dataclasses.replace(recorded("debian12-bare"), lock_holders=("812 apt-get install", "830 dpkg --unpack"))
    plan = plan_install(facts, install_settings({"lock_timeout": "9"}))
    noticed = [s for s in plan.steps if s.notice]
    assert [s.name for s in noticed] == ["packages"]  # key and repository only write files
    assert noticed[0].notice == ("the dpkg/apt lock is held by 812 apt-get install, 830 dpkg --unpack: "
                                 "waiting for it (up to 9 s)")
    ops = noticed[0].operations
    assert isinstance(ops[0], InstallPackages) and ops[0].lock_timeout == 9


def test_held_lock_on_a_converged_host_changes_nothing() -> None:
    facts = dataclasses.replace(recorded("debian12-converged"), lock_holders=("812 apt-get install",))
    plan = plan_install(facts, sandbox_settings(facts))
    assert plan.empty and not any(s.notice for s in plan.steps)


def test_every_package_manager_command_waits_for_the_lock() -> None:
    facts = recorded("debian12-docker-io")
    plan = plan_install(facts, install_settings({"lock_timeout": 5}))
    runs = [op for s in plan.steps for op in s.operations if isinstance(op, Run)
            and ("apt-get" in op.command or "dpkg" in op.command)]
    assert runs and all(op.waits_for_lock and "DPkg::Lock::Timeout=5" in op.command for op in runs)


@pytest.mark.parametrize("value", ["abc", "-1", "601", "1.5", "²", True])
def test_lock_timeout_setting_is_checked(value: object) -> None:
    with pytest.raises(SettingsError, match=r"install\.lock_timeout"):
        install_settings({"lock_timeout": value})


def test_lock_timeout_default_and_env_string() -> None:
    assert install_settings({}).lock_timeout == 120
    assert install_settings({"lock_timeout": " 3 "}).lock_timeout == 3


# --- applying: a lost connection, the live notice ---------------------------------------------

def test_lost_connection_is_said_and_blames_the_running_step() -> None:
    steps = [Step("repository", "write it"), Step("packages", "install docker-ce"), Step("service", "start")]
    out = sh(batch_script([(steps[0], "true")])).stdout  # the session died while packages ran
    results = batch_results(steps, out, "debconf: delaying package configuration", lost=True)
    assert [r.status for r in results] == ["changed", "failed", "skipped"]
    assert results[1].summary == "install docker-ce"  # its own summary, not "an earlier step failed"
    assert results[1].error == CONNECTION_LOST.format(step="packages")
    assert results[1].error.startswith("the SSH connection was lost (no exit status) during step packages")


class FakeResult:
    def __init__(self, stdout: str, exited: int) -> None:
        self.stdout, self.stderr, self.exited = stdout, "", exited

    @property
    def ok(self) -> bool:
        return self.exited == 0


class FakeRemote:
    """Runs each root script with sh here; ``lose`` cuts the session like a killed sshd."""

    def __init__(self, lose: bool = False) -> None:
        self.lose = lose
        self.scripts: list[str] = []

    def root(self, script: str, timeout: float | None = None) -> FakeResult:
        self.scripts.append(script)
        done = sh(script)
        if self.lose:  # what came before the first step's end marker, and no exit status
            return FakeResult(done.stdout.split("@@hostsetup-step done")[0], -1)
        return FakeResult(done.stdout, done.returncode)


def test_notice_is_shown_before_the_step_runs_and_the_loss_reported() -> None:
    from hostsetup.distros import resolve_platform
    from hostsetup.steps import Plan

    platform = resolve_platform(SYNTHETIC_OS["rocky9"])
    plan = Plan(platform, (Step("packages", "install", (Run("true"),), notice="waiting for the lock held by 1 x"),))
    remote = FakeRemote(lose=True)
    seen: list[tuple[str, str, int]] = []
    results = apply_plan(remote, plan, lambda r: seen.append((r.status, r.summary, len(remote.scripts))))  # type: ignore[arg-type]
    assert seen[0] == ("waiting", "waiting for the lock held by 1 x", 0)  # before any script ran
    assert results[0].status == "failed" and results[0].error == CONNECTION_LOST.format(step="packages")


def test_converged_host_still_plans_nothing_with_the_new_facts() -> None:
    for name in ("debian12-converged", "debian13-converged"):
        facts: HostFacts = recorded(name)
        assert not facts.dpkg_interrupted and facts.lock_holders == () and facts.duplicates == frozenset()
        assert plan_install(facts, sandbox_settings(facts)).empty



def test_facts_command_line_does_not_look_like_a_package_transaction() -> None:
    """The facts script travels as a command line (seen in ps): a search for a package manager at
    work (``pgrep -f 'apt-get .* update'``, by a person, a monitor or a test) must not find it."""
    import re

    from hostsetup.facts import facts_script

    line = facts_script(("hostsetup",)).replace("\n", " ")
    assert not re.search(r"(apt-get|dnf|yum) .*(update|makecache|install)", line)
