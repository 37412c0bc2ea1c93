"""Fingerprints computed by hostsetup equal those gpg itself reports."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hostsetup.openpgp import KeyFormatError, dearmor, normalize_fingerprint, primary_fingerprints

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


def make_key(home: Path, algo: str, uid: str) -> tuple[bytes, str]:
    env = {**os.environ, "GNUPGHOME": str(home)}
    home.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, algo, "sign", "never"],
                   env=env, check=True, capture_output=True)
    armored = subprocess.run(["gpg", "--armor", "--export", uid], env=env, check=True,
                             capture_output=True).stdout
    colons = subprocess.run(["gpg", "--with-colons", "--fingerprint", uid], env=env, check=True,
                            capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr"))
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    return armored, fpr


@pytest.mark.parametrize("algo", ["rsa2048", "ed25519"])
def test_fingerprint_matches_gpg(tmp_path: Path, algo: str) -> None:
    armored, expected = make_key(tmp_path / "g", algo, f"test-{algo} <t@example.invalid>")
    assert primary_fingerprints(armored) == [expected]
    assert primary_fingerprints(dearmor(armored)) == [expected]  # binary keyring form


def test_two_keys_in_one_file(tmp_path: Path) -> None:
    first, fp1 = make_key(tmp_path / "a", "ed25519", "a <a@example.invalid>")
    second, fp2 = make_key(tmp_path / "b", "ed25519", "b <b@example.invalid>")
    assert primary_fingerprints(dearmor(first) + dearmor(second)) == [fp1, fp2]


def test_garbage_is_rejected() -> None:
    with pytest.raises(KeyFormatError):
        primary_fingerprints(b"<html>not found</html>")


def test_normalize_fingerprint() -> None:
    assert normalize_fingerprint("9DC8 5822 9FC7 DD38 854A  E2D8 8D81 803C 0EBF CD88") == \
        "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    with pytest.raises(ValueError):
        normalize_fingerprint("0EBFCD88")


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_truncated_packet_is_a_key_format_error(tmp_path: Path, cut: int) -> None:
    armored, _ = make_key(tmp_path / "g", "ed25519", "t <t@example.invalid>")
    binary = dearmor(armored)
    with pytest.raises(KeyFormatError):
        primary_fingerprints(binary[:cut])
    with pytest.raises(KeyFormatError):  # a new-format header whose length field is cut off
        primary_fingerprints(bytes([0xC6, 0xFF, 0x00]))


def test_key_file_with_the_expected_key_and_another_is_refused(tmp_path: Path) -> None:
    from hostsetup.openpgp import key_file_problem

    good, fp_good = make_key(tmp_path / "a", "ed25519", "docker <d@example.invalid>")
    evil, fp_evil = make_key(tmp_path / "b", "ed25519", "Attacker <x@example.invalid>")
    assert key_file_problem(good, [fp_good]) is None
    both = key_file_problem(dearmor(good) + dearmor(evil), [fp_good])
    assert both is not None and fp_evil in both and "besides the expected one" in both
    other = key_file_problem(evil, [fp_good])
    assert other is not None and fp_evil in other and "expected" in other
    assert "not an OpenPGP key" in (key_file_problem(b"<html>404</html>", [fp_good]) or "")


def test_every_armor_block_of_a_file_is_read(tmp_path: Path) -> None:
    first, fp1 = make_key(tmp_path / "a", "ed25519", "a <a@example.invalid>")
    second, fp2 = make_key(tmp_path / "b", "ed25519", "b <b@example.invalid>")
    assert primary_fingerprints(first + b"\n" + second) == [fp1, fp2]
