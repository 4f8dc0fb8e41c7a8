"""The tree stays as ruff wants it (pyproject.toml's [tool.ruff]): run by the suite, so CI runs it too."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    args = [str(RUFF), *command, "--no-cache", *(["--output-format", "concise"] if command == ["check"] else []), "."]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ruff {' '.join(command)} found:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
