"""The wheel a user installs holds the whole package: every module and template of the source tree.

(``python3 -m hostsetup`` run in the clone imports the source tree, so a package missing from the wheel
shows only where the wheel alone is installed: found by the --local e2e test, whose host has no clone.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import hostsetup

ROOT = Path(hostsetup.__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_and_template(tmp_path: Path) -> None:
    # From a clean copy: a build/ left in the tree by an earlier build would fill the gaps of the package list.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", ".git", "__pycache__",
                                                                ".venv*", ".mypy_cache", ".ruff_cache", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"),
                    str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "wheel").glob("hostsetup-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hostsetup").rglob("*.py")
               if "__pycache__" not in p.parts}
    templates = {"hostsetup/templates/" + p.relative_to(ROOT / "templates").as_posix()
                 for p in (ROOT / "templates").rglob("*.j2")}
    missing = sorted((sources | templates) - names)
    assert not missing, f"not in the wheel: {missing}"
