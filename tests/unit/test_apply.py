"""Batched steps: the shell script really runs (locally) and its markers give per-step results."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from invoke.runners import Result

from hostsetup import rollback
from hostsetup.apply import RepositoryGuard, apply_plan, batch_results, batch_script, step_script
from hostsetup.distros import parse_os_release, resolve_platform
from hostsetup.downloads import curl_failure, failed_download
from hostsetup.host import files as scripts
from hostsetup.operations import InstallPackages, RemoveFiles, Run, WriteFile
from hostsetup.steps import Plan, Step


def run_batch(steps: list[tuple[Step, str]]) -> tuple[str, int]:
    proc = subprocess.run(["sh", "-c", batch_script(steps)], capture_output=True, text=True, timeout=30)
    return proc.stdout, proc.returncode


def test_all_steps_done() -> None:
    steps = [Step("a", "first"), Step("b", "second")]
    out, code = run_batch([(steps[0], "echo one"), (steps[1], "sleep 0.2; echo two")])
    assert code == 0
    results = batch_results(steps, out, "")
    assert [r.status for r in results] == ["changed", "changed"]
    assert results[1].seconds >= 0.19


def test_failure_names_the_step_and_skips_the_rest() -> None:
    steps = [Step("a", "ok"), Step("b", "breaks"), Step("c", "never")]
    out, code = run_batch([(steps[0], "true"), (steps[1], "true\nfalse\necho not reached"), (steps[2], "true")])
    assert code == 1 and "not reached" not in out
    results = batch_results(steps, out, "boom")
    assert [r.status for r in results] == ["changed", "failed", "skipped"]
    assert results[1].error == "boom"


def test_lost_session_blames_the_first_unfinished_step() -> None:
    steps = [Step("a", "ok"), Step("b", "cut off")]
    out, _ = run_batch([(steps[0], "true")])  # b never ran: the session died
    results = batch_results(steps, out, "connection lost")
    assert [r.status for r in results] == ["changed", "failed"]


def test_program_output_that_looks_like_a_marker_is_ignored() -> None:
    steps = [Step("a", "noisy")]
    out, code = run_batch([(steps[0], "echo '@@hostsetup-step done zzz'; echo @@end")])
    assert code == 0 and [r.status for r in batch_results(steps, out, "")] == ["changed"]


# --- the repository configuration is put back when its refresh fails ---------------------

APT_INDEX_404 = """\
Ign:1 https://download.docker.com/linux/debian bookworm InRelease
Err:2 https://download.docker.com/linux/debian bookworm Release
  404  Not Found [IP: 172.20.0.2 443]
Reading package lists...
E: The repository 'https://download.docker.com/linux/debian bookworm Release' does not have a Release file.
"""
APT_PACKAGE_404 = """\
Err:4 https://download.docker.com/linux/debian bookworm/stable amd64 docker-ce amd64 5:20.10.24-1~debian.12~bookworm
  404  Not Found [IP: 172.20.0.2 443]
Fetched 91.7 MB in 2s (54.8 MB/s)
E: Failed to fetch https://download.docker.com/linux/debian/dists/bookworm/pool/stable/amd64/docker-ce_20.10.24-1%7edebian.12%7ebookworm_amd64.deb  404  Not Found [IP: 172.20.0.2 443]
E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?
"""  # noqa: E501 (apt's own line)
DNF_INDEX_404 = """\
Errors during downloading metadata for repository 'docker-ce-stable':
  - Status code: 404 for https://download.docker.com/linux/centos/9/x86_64/stable/repodata/repomd.xml (IP: 172.20.0.2)
Error: Failed to download metadata for repo 'docker-ce-stable': Cannot download repomd.xml: All mirrors were tried
"""
DNF_PACKAGE_404 = """\
[MIRROR] docker-ce-20.10.24-1.el9.x86_64.rpm: Status code: 404 for https://download.docker.com/linux/centos/9/x86_64/stable/Packages/docker-ce-20.10.24-1.el9.x86_64.rpm (IP: 172.20.0.2)
[FAILED] docker-ce-20.10.24-1.el9.x86_64.rpm: No more mirrors to try - All mirrors were already tried without success
Error: Error downloading packages:
  docker-ce-3:20.10.24-1.el9.x86_64: Cannot download, all mirrors were already tried without success
"""  # noqa: E501 (dnf's own line)


@pytest.mark.parametrize(("output", "url", "reason"), [
    (APT_INDEX_404, "https://download.docker.com/linux/debian/dists/bookworm/Release", "404 Not Found"),
    (APT_PACKAGE_404, "https://download.docker.com/linux/debian/dists/bookworm/pool/stable/amd64/"
                      "docker-ce_20.10.24-1%7edebian.12%7ebookworm_amd64.deb", "404 Not Found"),
    (DNF_INDEX_404, "https://download.docker.com/linux/centos/9/x86_64/stable/repodata/repomd.xml", "404 Not Found"),
    (DNF_PACKAGE_404, "https://download.docker.com/linux/centos/9/x86_64/stable/Packages/"
                      "docker-ce-20.10.24-1.el9.x86_64.rpm", "404 Not Found"),
    ("Curl error (6): Couldn't resolve host name for https://m.example/repodata/repomd.xml [Could not resolve]",
     "https://m.example/repodata/repomd.xml", "Couldn't resolve host name"),
])
def test_the_failed_download_is_read_from_apt_and_dnf(output: str, url: str, reason: str) -> None:
    assert failed_download(output) == (url, reason)
    assert failed_download("Reading package lists...\nE: Sub-process /usr/bin/dpkg returned an error code (1)") is None


def test_curl_failures() -> None:
    assert curl_failure("curl: (22) The requested URL returned error: 404\n") == "404 Not Found"
    assert curl_failure("curl: (6) Could not resolve host: x.invalid\n") == \
        "Could not resolve host: x.invalid (curl error 6)"
    assert curl_failure("") is None


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A repository file, key and legacy file under ``tmp_path``; backups and copies there too."""
    monkeypatch.setattr(rollback, "ROLLBACK_DIR", str(tmp_path / "rollback"))
    monkeypatch.setattr(scripts, "BACKUP_DIR", str(tmp_path / "backups"))
    return {"repo": tmp_path / "etc" / "docker.sources", "key": tmp_path / "keys" / "docker.asc",
            "legacy": tmp_path / "etc" / "docker.list", "other": tmp_path / "etc" / "other.sources",
            "rollback": tmp_path / "rollback"}


def guard_for(layout: dict[str, Path], refresh: str) -> RepositoryGuard:
    return RepositoryGuard(str(layout["repo"]), str(layout["key"]),
                           frozenset(str(layout[n]) for n in ("repo", "key", "legacy")), refresh)


def run_plan(steps: list[Step], guard: RepositoryGuard) -> tuple[list[str], Result]:
    scripts_ = [(step, step_script(step, guard)) for step in steps]
    assert all(script is not None for _, script in scripts_)
    proc = subprocess.run(["sh", "-s"], input=batch_script([(s, t or "") for s, t in scripts_]),
                          capture_output=True, text=True, timeout=30)
    result = Result(stdout=proc.stdout, stderr=proc.stderr, exited=proc.returncode)
    results = batch_results(steps, proc.stdout, "" if proc.returncode == 0 else "failed")
    return [r.status for r in results], result


def repository_steps(layout: dict[str, Path], refresh: str, old_repo: str | None) -> list[Step]:
    return [
        Step("key", "install the key", (WriteFile(str(layout["key"]), "NEW KEY\n", None, mode="0644"),)),
        Step("repository", "write it", (WriteFile(str(layout["repo"]), "NEW SOURCE\n", old_repo),
                                        RemoveFiles((str(layout["legacy"]),)), Run(refresh))),
    ]


def test_a_failed_refresh_puts_the_repository_file_and_key_back(layout: dict[str, Path]) -> None:
    layout["repo"].parent.mkdir(parents=True)
    layout["repo"].write_text("OLD SOURCE\n")
    layout["repo"].chmod(0o640)
    layout["legacy"].write_bytes(b"\x99\x01binary legacy key\n")
    layout["other"].write_text("the host's own source\n")
    refresh = f"printf '{APT_INDEX_404}'; false"
    guard = guard_for(layout, refresh)
    statuses, result = run_plan(repository_steps(layout, refresh, "OLD SOURCE\n"), guard)
    assert statuses == ["changed", "failed"] and result.exited == 1
    assert layout["repo"].read_text() == "OLD SOURCE\n" and oct(layout["repo"].stat().st_mode & 0o777) == "0o640"
    assert layout["legacy"].read_bytes() == b"\x99\x01binary legacy key\n"  # byte-exact, binary too
    assert not layout["key"].exists()            # it was new: removed
    assert layout["other"].read_text() == "the host's own source\n"
    assert not layout["rollback"].exists()
    assert sorted(p.name for p in layout["repo"].parent.iterdir()) == ["docker.list", "docker.sources", "other.sources"]
    message = guard.failure(Step("repository", "write it"), result)
    assert message == ("refreshing the repository's index failed: https://download.docker.com/linux/debian/dists/"
                       f"bookworm/Release answered 404 Not Found; the repository file, the key and {layout['legacy']} "
                       "were put back as they were")


def test_a_refresh_that_works_keeps_the_new_files(layout: dict[str, Path]) -> None:
    guard = guard_for(layout, "true")
    statuses, _ = run_plan(repository_steps(layout, "true", None), guard)
    assert statuses == ["changed", "changed"]
    assert layout["repo"].read_text() == "NEW SOURCE\n" and layout["key"].read_text() == "NEW KEY\n"
    assert not layout["rollback"].exists() and guard.kept == []


def test_the_refresh_inside_the_package_step_is_the_proof_and_a_file_written_twice_goes_back_to_its_first_state(
        layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InstallPackages, "refresh_command", lambda op: f"printf '{DNF_INDEX_404}'; false")
    guard = guard_for(layout, "never-run")
    steps = [Step("repository", "write it", (WriteFile(str(layout["repo"]), "FIRST\n"),
                                             WriteFile(str(layout["repo"]), "SECOND\n"))),
             Step("packages", "install", (InstallPackages("dnf", ("docker-ce",), str(layout["repo"])),))]
    statuses, result = run_plan(steps, guard)
    assert statuses == ["changed", "failed"]
    assert not layout["repo"].exists() and not layout["rollback"].exists()
    assert guard.failure(steps[1], result) == (
        "refreshing the repository's index failed: https://download.docker.com/linux/centos/9/x86_64/stable/repodata/"
        "repomd.xml answered 404 Not Found; the repository file was put back as it was")


def test_copies_left_by_a_run_that_was_cut_off_never_go_back(layout: dict[str, Path]) -> None:
    layout["rollback"].mkdir()
    guard = guard_for(layout, "false")
    stale = layout["rollback"] / rollback._slot(str(layout["repo"]))[len(str(layout["rollback"])) + 1:]
    stale.write_text("FROM A RUN LONG AGO\n")
    layout["repo"].parent.mkdir(parents=True)
    layout["repo"].write_text("NOW\n")
    statuses, _ = run_plan([Step("repository", "w", (WriteFile(str(layout["repo"]), "NEW\n", "NOW\n"), Run("false")))],
                           guard)
    assert statuses == ["failed"] and layout["repo"].read_text() == "NOW\n"


def test_a_package_download_failure_names_the_url_and_keeps_the_proven_repository() -> None:
    guard = RepositoryGuard("/r", "/k", frozenset({"/r", "/k"}), "refresh")
    step = Step("packages", "install", (InstallPackages("apt-get", ("docker-ce",), "/r"),))
    message = guard.failure(step, Result(stdout="", stderr=APT_PACKAGE_404, exited=100))
    assert message.startswith("downloading https://download.docker.com/linux/debian/dists/bookworm/pool/stable/amd64/"
                              "docker-ce_20.10.24-1%7edebian.12%7ebookworm_amd64.deb failed: 404 Not Found; ")
    assert "no package was changed" in message and "\n" not in message


class LocalRemote:
    """Root scripts run here, in ``sh`` (the paths they touch are all under a test's tmp_path)."""

    def __init__(self) -> None:
        self.sessions = 0

    def root(self, script: str, timeout: float | None = None) -> Result:
        self.sessions += 1
        proc = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=30)
        return Result(stdout=proc.stdout, stderr=proc.stderr, exited=proc.returncode)


@pytest.mark.parametrize(("refresh", "statuses"), [
    ("true", ["changed", "changed", "ok"]),
    (f"printf '{APT_INDEX_404}'; false", ["reverted", "failed", "ok"]),   # ok: nothing to do there
])
def test_apply_reports_the_steps_whose_files_were_put_back_as_reverted(
        layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, refresh: str, statuses: list[str]) -> None:
    monkeypatch.setattr(RepositoryGuard, "for_platform", classmethod(lambda cls, platform: guard_for(layout, refresh)))
    platform = resolve_platform(parse_os_release('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'))
    steps = (*repository_steps(layout, refresh, None), Step("group", "docker group exists"))
    seen: list[str] = []
    results = apply_plan(LocalRemote(), Plan(platform, steps), lambda r: seen.append(r.status))  # type: ignore[arg-type]
    assert [r.status for r in results] == statuses
    assert sorted(seen) == sorted(statuses)  # shown as they are: a step put back is never shown as changed
    assert layout["key"].exists() == layout["repo"].exists() == (statuses[0] == "changed")
    if statuses[0] == "reverted":
        assert results[0].summary == "install the key (put back as it was)"
        assert results[1].error.endswith(
            f"the repository file, the key and {layout['legacy']} were put back as they were")
    assert not layout["rollback"].exists()
