"""One set of feature defaults: a hand-run dbt command and a Dagster run with the default config use the same vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def _dbt_vars_seen(names: list[str], *args: str) -> dict:
    """The values dbt's ``var()`` gives ``names`` in a real ``dbt compile`` with the project's profiles and ``args``."""
    from clv_platform import settings

    sql = "select '{{ tojson({" + ", ".join(f"'{name}': var('{name}')" for name in names) + "}) }}' as seen"
    dbt = Path(sys.executable).parent / "dbt"
    done = subprocess.run(
        [str(dbt), "compile", "--quiet", "--inline", sql, *args],
        cwd=settings.DBT_PROJECT_DIR,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().split("'")[1])


def test_a_hand_run_dbt_uses_the_defaults_of_a_dagster_run(clv_state):
    from clv_platform import settings
    from clv_platform.defs.features.assets import FeatureConfig
    from clv_platform.lib.dbt import vars_args

    dagster_vars = FeatureConfig().dbt_vars()
    # Every var a Dagster run passes is declared in dbt_project.yml, with the value Dagster passes by default.
    declared = yaml.safe_load((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert {name: declared.get(name, "<not declared>") for name in dagster_vars} == dagster_vars
    # And dbt itself sees the same values, whether run by hand or with the --vars of the feature assets.
    by_hand = _dbt_vars_seen(list(dagster_vars))
    assert by_hand == dagster_vars
    assert _dbt_vars_seen(list(dagster_vars), *vars_args(dagster_vars)) == by_hand
