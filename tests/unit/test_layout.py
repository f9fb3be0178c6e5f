"""Guards on the repository layout that nothing else would catch."""

from __future__ import annotations

import operator
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_operator_folder_is_not_a_package() -> None:
    # A package named `operator` would shadow the standard library's module.
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert Path(operator.__file__).parent != ROOT / "operator"


def test_cli_entry_points_start() -> None:
    for name in ("vmgitops", "kubectl-vmgitops"):
        exe = Path(sys.executable).parent / name
        out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
        assert "run" in out.stdout
