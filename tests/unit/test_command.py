"""The command type: values quoted once, in one pass; secrets masked wherever a command is shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostsetup import secrets
from hostsetup.doctor.probes import probe_script
from hostsetup.facts import facts_script
from hostsetup.host.command import Masked, Payload, Raw, command, join, words


def test_a_value_is_quoted_once_and_never_searched_again() -> None:
    made = command("echo @USER@ && echo @GROUP@", USER="@GROUP@", GROUP="a b")
    assert made.text == "echo @GROUP@ && echo 'a b'"
    assert subprocess.run(["sh", "-c", made.text], capture_output=True, text=True).stdout == "@GROUP@\na b\n"


def test_a_missing_or_unused_value_is_a_mistake() -> None:
    with pytest.raises(KeyError, match="@B@"):
        command("@A@ @B@", A="x")
    with pytest.raises(KeyError, match="no marker for C"):
        command("@A@", A="x", C="y")


def test_doctor_for_a_user_named_like_a_marker_checks_that_user() -> None:
    script = probe_script("UNITS")
    assert "T=UNITS;" in script and "docker.service docker.socket" not in script.split("\n")[3]


def test_facts_for_users_and_files_named_like_markers_stay_as_given() -> None:
    script = facts_script(users=("UNITS", "PACKAGES"), files=("/etc/USERS",))
    assert "for u in UNITS PACKAGES; do printf" in script and "/etc/USERS" in script


def test_a_secret_runs_but_is_never_shown() -> None:
    made = command("curl -u @WHO@ @URL@", WHO=Masked("me:pa ss"), URL="https://x")
    assert made.text == "curl -u 'me:pa ss' https://x"
    assert made.shown == str(made) == "curl -u *** https://x"
    assert secrets.mask("said me:pa ss") == "said ***"   # registered: masked anywhere else too


def test_a_payload_is_written_byte_exact_and_shown_as_a_here_document(tmp_path: Path) -> None:
    content = "it's \"quoted\"\nHOSTSETUP_EOF\nno final newline"
    made = join((command("@DATA@ > @PATH@", DATA=Payload(content), PATH=str(tmp_path / "f")), "echo done"))
    subprocess.run(["sh", "-ec", made.text], check=True)
    assert (tmp_path / "f").read_text() == content
    assert made.shown.splitlines() == [f"cat <<'HOSTSETUP_EOF_1' > {tmp_path / 'f'}", "it's \"quoted\"",
                                       "HOSTSETUP_EOF", "no final newline", "HOSTSETUP_EOF_1", "echo done"]
    hidden = command("@P@ | login", P=Payload("hunter22", secret=True))
    assert "hunter22" not in hidden.shown and "hunter22" not in hidden.text


def test_words_quote_strings_and_keep_parts() -> None:
    assert words("a b", Raw('"$x"'), 3).text == "'a b' \"$x\" 3"


def test_a_payload_holding_credentials_is_masked_in_its_encoded_form_too() -> None:
    content = '{"proxies": {"http-proxy": "http://user:pr0xy-pass@proxy:3128"}}\n'
    made = command("@DATA@ > /etc/docker/daemon.json", DATA=Payload(content))
    assert "pr0xy-pass" not in made.shown and "user:***@proxy" in made.shown
    shown_text = secrets.mask(f"failed: {made.text}")
    assert shown_text == f"failed: printf %s {secrets.MASK} | base64 -d > /etc/docker/daemon.json"
