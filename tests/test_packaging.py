"""`pip install .` (not only -e) carries every package and its data under `lictor.`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_packages_packs_and_defaults(tmp_path: Path) -> None:
    # Build from a clean copy: a stale build/ folder in a working tree would hide a file
    # missing from the sources (it did once).
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "var", "*.egg-info", "__pycache__", "results"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("lictor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("proxy", "rules", "enforcement", "enforcement/pii", "audit", "adapters",
                    "adapters/backends"):
        assert f"lictor/{package}/__init__.py" in names
    for pack in ("default", "owasp-agentic", "examples"):
        packed = {n for n in names if n.startswith(f"lictor/rules/packs/{pack}/")}
        shipped = {f"lictor/rules/packs/{pack}/{p.name}"
                   for p in (ROOT / "rules" / "packs" / pack).iterdir()
                   if p.suffix in (".yaml", ".cedar")}
        assert shipped and shipped <= packed, shipped - packed
    assert "lictor/proxy/defaults.yaml" in names
    assert not any(n.startswith(("proxy/", "rules/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "lictor = lictor.proxy.cli:main" in text
