"""`pip install .` (not only -e) carries every package and its data under `lictor.`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_packages_packs_and_defaults(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("lictor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("proxy", "rules", "enforcement", "enforcement/pii", "audit", "adapters",
                    "adapters/backends"):
        assert f"lictor/{package}/__init__.py" in names
    for data in ("lictor/proxy/defaults.yaml", "lictor/rules/packs/default/injection.yaml",
                 "lictor/rules/packs/default/pii.yaml", "lictor/rules/packs/default/tools.cedar"):
        assert data in names
    assert not any(n.startswith(("proxy/", "rules/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "lictor = lictor.proxy.cli:main" in text
