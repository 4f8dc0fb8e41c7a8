"""The dbt models and macros pass the SQL linter (sqlfluff, configured in dbt_project/.sqlfluff), without a dbt compile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
SQLFLUFF = Path(sys.executable).parent / "sqlfluff"


def _lint(*paths: str) -> tuple[int, list[dict]]:
    config = DBT_PROJECT_DIR / ".sqlfluff"
    result = subprocess.run(
        [str(SQLFLUFF), "lint", *paths, "--config", str(config), "--format", "json", "--nofail", "--processes", "2"],
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return len(json.loads(result.stdout)), json.loads(result.stdout)


def _findings(files: list[dict]) -> list[str]:
    return [
        f"{file['filepath']}:{v['start_line_no']}:{v['start_line_pos']}: {v['code']} {v['description']}"
        for file in files
        for v in file["violations"]
    ]


def test_the_dbt_models_and_macros_are_lint_clean():
    linted, files = _lint("models", "macros")
    # Every file templated and read (a templating failure is a TMP finding).
    assert linted == sum(len(list((DBT_PROJECT_DIR / folder).rglob("*.sql"))) for folder in ("models", "macros"))
    findings = _findings(files)
    assert not findings, "sqlfluff findings (fix them; `sqlfluff fix models macros` in dbt_project/ fixes most):\n" + "\n".join(
        findings
    )


def test_the_linter_reports_what_it_is_configured_to_catch(tmp_path):
    """The configuration is live: a model using dbt's builtins and the project's macros is templated, and an
    uppercase keyword and doubled spaces in it are findings."""
    model = tmp_path / "probe.sql"
    model.write_text(
        "SELECT customer_id,\n"
        "    {{ dbt.datediff('signup_date', 'signup_date', 'day') }} as days,\n"
        "    {{ is_non_product_stock_code('country') }} as flag\n"
        "from {{ source('raw', 'customers') }}\n"
        "where customer_id   is not null and signup_date < '{{ var('cutoff_date') }}'\n"
    )
    _, files = _lint(str(model))
    codes = {v["code"] for file in files for v in file["violations"]}
    assert {"CP01", "LT01"} <= codes and "TMP" not in codes, _findings(files)
