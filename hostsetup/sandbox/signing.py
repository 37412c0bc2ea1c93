"""The mirror's throwaway signing keys: gpg in a private GNUPGHOME, and the apt key that signs Release files."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from hostsetup.sandbox.buildtools import run_tool

# These feed the mirror's recipe hash (hostsetup.sandbox.mirror.make_recipe).
KEY_UID = "hostsetup sandbox mirror (throwaway test key) <sandbox@hostsetup.invalid>"
KEY_ALGO = "ed25519"


class Gpg:
    """gpg in batch mode on one GNUPGHOME; the keys are throwaway, so none has a passphrase."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tool(["gpg", "--homedir", str(self.home), "--batch", "--yes",
                         "--pinentry-mode", "loopback", "--passphrase", "", *args], "gpg")

    def secret_fingerprint(self, *names: str) -> str:
        """The fingerprint of the first secret key (of those matching ``names``, when given)."""
        listing = self.gpg("--with-colons", "--list-secret-keys", *names).stdout
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def export(self, fingerprint: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(self.gpg("--armor", "--export", fingerprint).stdout)

    def stop_agent(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       capture_output=True, check=False)


class Signer(Gpg):
    """A throwaway GPG key in a private GNUPGHOME."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        home.mkdir(mode=0o700, parents=True)
        self.gpg("--quick-gen-key", KEY_UID, KEY_ALGO, "sign", "never")
        self.fingerprint = self.secret_fingerprint().upper()

    def sign_release(self, dist: Path) -> None:
        common = ("--local-user", self.fingerprint, "--digest-algo", "SHA512")
        self.gpg(*common, "--clearsign", "--output", str(dist / "InRelease"),
                 str(dist / "Release"))
        self.gpg(*common, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"),
                 str(dist / "Release"))

    def close(self) -> None:
        self.stop_agent()
        for sock in self.home.glob("S.*"):
            sock.unlink(missing_ok=True)


def gnupg_home(build: Path) -> Path:
    """GNUPGHOME inside the build dir, unless its agent socket path would be too long."""
    home = build / "gnupg"
    if len(str(home)) < 80:
        return home
    return Path(tempfile.mkdtemp(prefix="hs-gpg-")) / "gnupg"
