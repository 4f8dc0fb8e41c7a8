"""Two dbt builds of the same raw rows give bit-identical features and labels.

DuckDB aggregates in parallel: each thread sums its share of a group's rows and the partial sums
are combined in whatever order the threads finish. Floating-point sums then differ in their last
bits from build to build, which is enough to move a gradient-boosted tree's split points. Money is
summed as DECIMAL and the other sums are of integers, so the order cannot matter.

About 400,000 generated lines (enough for DuckDB to split the aggregates across threads) are
loaded into one warehouse file and copied to a second; both are built with 4 DuckDB threads and
every column of the daily aggregates, the features and the training examples must be equal (==).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_point_in_time import write_raw_frames

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
GENERATOR = {"n_customers": 8_000, "seed": 3}
DUCKDB_THREADS = 4
TABLES = {
    "intermediate.int_customer_days": ["customer_id", "activity_date"],
    "intermediate.int_order_value_caps": ["cutoff_date"],
    "marts.customer_features": ["customer_id", "cutoff_date"],
    "marts.training_examples": ["customer_id", "cutoff_date"],
}


def profile(path: Path) -> str:
    """The project's DuckDB target with more DuckDB threads than this machine has cores."""
    return f"""
clv_platform:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{path}"
      threads: 1
      settings:
        threads: {DUCKDB_THREADS}
"""


def write_generated_raw(path: Path) -> int:
    from clv_platform.datagen import generate
    from clv_platform.ingest.spec import PRESETS

    data = generate(**GENERATOR)
    frames = {
        "transactions": data.transactions.rename(columns={column: name for name, column in PRESETS["online_retail"].items()}),
        "behavioral_events": data.behavioral_events,
        "customers": data.customers,
    }
    write_raw_frames(path, frames)
    return len(frames["transactions"])


def build(root: Path, name: str) -> dict[str, pd.DataFrame]:
    from dbt.cli.main import dbtRunner

    warehouse = root / f"{name}.duckdb"
    profiles = root / f"profiles_{name}"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(profile(warehouse))
    result = dbtRunner().invoke(
        [
            "run",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(profiles),
            "--target-path",
            str(root / "target"),
            "--quiet",
        ]
    )
    if not result.success:
        pytest.fail(f"dbt run on {name} failed: {result.exception or [str(r.message) for r in result.result]}")
    # Same configuration as dbt-duckdb, which keeps its database instance open in-process.
    with duckdb.connect(str(warehouse)) as con:
        return {table: con.execute(f"select * from {table} order by {', '.join(keys)}").df() for table, keys in TABLES.items()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("clv_determinism")
    lines = write_generated_raw(root / "first.duckdb")
    shutil.copy(root / "first.duckdb", root / "second.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        return lines, build(root, "first"), build(root, "second")


def test_the_input_is_big_enough_to_aggregate_in_parallel(builds):
    lines, first, _ = builds
    # Several of DuckDB's 122,880-row row groups, so each thread aggregates a part of the lines.
    assert lines > 3 * 122_880
    assert len(first["marts.training_examples"]) > 5_000


@pytest.mark.parametrize("table", sorted(TABLES))
def test_two_builds_give_bit_identical_tables(builds, table):
    _, first, second = builds
    assert list(first[table].columns) == list(second[table].columns)
    assert len(first[table]) == len(second[table]) > 0
    for column in first[table].columns:
        a, b = first[table][column], second[table][column]
        # ==, not isclose; NaN never occurs (NULLs are compared as missing).
        differs = ~((a == b) | (a.isna() & b.isna()))
        assert not differs.any(), (
            f"{table}.{column} differs on {int(differs.sum())} rows, e.g.\n"
            f"{pd.DataFrame({'first': a[differs], 'second': b[differs]}).head().to_string()}"
        )
