"""The layering holds: pyproject's import-linter contracts pass, and each one catches the import it forbids."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(project: Path) -> subprocess.CompletedProcess:
    # import-linter finds the root package from the working directory first: the copy below, not the checkout.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=project, capture_output=True, text=True, timeout=300)


def test_the_checkout_keeps_every_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "broken"),
    [
        ("ml/drift.py", "import dagster", "pure-layers-no-dagster", "clv_platform.ml is not allowed to import dagster"),
        # Indirectly: ingest/ through a module outside the contracts, made to import Dagster below.
        (
            "ingest/table_rules.py",
            "import clv_platform.lineage",
            "pure-layers-no-dagster",
            "clv_platform.ingest is not allowed to import dagster_dbt",
        ),
        (
            "lib/runs.py",
            "from clv_platform.defs import jobs",
            "layers",
            "clv_platform.lib is not allowed to import clv_platform.defs",
        ),
        (
            "ml/scoring.py",
            "from clv_platform.lib import warehouse",
            "layers",
            "clv_platform.ml is not allowed to import clv_platform.lib",
        ),
        (
            "defs/features/assets.py",
            "from clv_platform.defs.training import assets",
            "stages-flow-one-way",
            "clv_platform.defs.features is not allowed to import clv_platform.defs.training",
        ),
        (
            "ml/drift.py",
            "import clv_platform.datagen.generator",
            "layers",
            "clv_platform.ml is not allowed to import clv_platform.datagen",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract, broken):
    shutil.copytree(ROOT / "clv_platform", tmp_path / "clv_platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "clv_platform" / module).open("a") as file:
        file.write(f"\n{line}\n")
    with (tmp_path / "clv_platform" / "lineage.py").open("a") as file:
        file.write("\nimport dagster_dbt\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout
    # Only the contract named breaks: the others do not depend on the same line.
    assert result.stdout.count(" BROKEN") == 1
    single = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--contract", contract], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 1, single.stdout


# Dagster's private modules change without notice; the one use Dagster leaves no public way around, with its reason.
PRIVATE_IMPORTS_ALLOWED = {("lib/runs.py", "dagster._core.launcher")}


def _private_imports(package: Path) -> set[tuple[str, str]]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                top, _, rest = name.partition(".")
                if top.startswith("dagster") and (rest.startswith("_") or "._" in f".{rest}"):
                    found.add((path.relative_to(package).as_posix(), name))
    return found


def test_no_private_dagster_module_is_imported_but_the_allowed_one():
    assert _private_imports(ROOT / "clv_platform") == PRIVATE_IMPORTS_ALLOWED


def test_the_scan_finds_a_private_import(tmp_path):
    (tmp_path / "a.py").write_text("import dagster._core.storage.tags\nfrom dagster_dbt._x import y\nfrom dagster import asset\n")
    assert _private_imports(tmp_path) == {("a.py", "dagster._core.storage.tags"), ("a.py", "dagster_dbt._x")}
