"""The dbt models give the same marts on Spark (dbt-spark, local session) as on DuckDB.

The dirty hand-made raw rows of ``test_point_in_time`` (duplicates, cancellations, postage, zero
prices, guests, events on both sides of each cutoff) are loaded into a temporary DuckDB file and
into Spark tables in database ``raw``; ``dbt build`` (models, data tests, unit tests) runs on both
targets with the same --vars (order-value capping on), then the marts, the caps and the daily
aggregates are compared row by row. Then the next day's rows arrive and a plain ``dbt run`` (the
daily aggregates incremental: delete+insert on DuckDB, insert_overwrite of partitions on Spark)
must again give the same tables on both engines.

On Spark, ``dbt build`` runs every model and unit test but only the data tests whose SQL differs: every
singular test, every distinct SQL argument (``expression_is_true``), one instance of each other generic test
per set of argument names. The others would compile to the same SQL on other columns of marts that are
compared row by row with DuckDB's, where every data test runs; each Spark query costs seconds.

dbt-spark's ``method: session`` calls ``SparkSession.builder.enableHiveSupport()...getOrCreate()``,
so dbt runs in this process and reuses the session the test starts with the profile's own
``server_side_parameters``. All Spark state (warehouse, Derby metastore, derby.log) lives under
``CLV_SPARK_DIR`` in a temporary directory.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import jinja2
import pandas as pd
import pytest
import yaml
from test_point_in_time import DBT_VARS, A, B, base_customers, base_events, base_transactions, line, write_raw

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
MARTS = {
    "marts.customer_features": ["customer_id", "cutoff_date"],
    "marts.training_examples": ["customer_id", "cutoff_date"],
    "intermediate.int_order_value_caps": ["cutoff_date"],
    "intermediate.int_customer_days": ["customer_id", "activity_date"],
}
DATE_COLUMNS = {"cutoff_date", "first_purchase_date", "last_purchase_date", "activity_date"}
# Money is summed exactly on both engines (DECIMAL), then turned into DOUBLE by the same operations:
# these columns must be equal, not close. DuckDB's fetchdf gives a DECIMAL as the nearest float64,
# Spark's toPandas a decimal.Decimal; as floats both are the double nearest the same exact value.
MONEY_COLUMNS = {
    "gross_purchase_value",
    "cancelled_value",
    "net_value",
    "monetary_value",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "spend_trend_90d_365d",
    "basket_value_mean",
    "return_rate",
    "spend_share_90d",
    "future_revenue",
}
# Capping on, at a quantile that interpolates between orders (percentile_cont on both engines).
PARITY_VARS = DBT_VARS.replace("order_value_cap_quantile: null", "order_value_cap_quantile: 0.9")


def later_transactions() -> list[dict]:
    """The base rows after a day of trading: B1 repriced inside the incremental lookback, a new day."""
    return [{**r, "unit_price": 13.0} if r["invoice_no"] == "B1" else r for r in base_transactions()] + [
        line("A20", dt.datetime(2011, 7, 2, 9), 1, 3.0, A),
        line("B20", dt.datetime(2011, 7, 2, 10), 2, 4.0, B, country="France"),
    ]


# Spark column types of the raw tables, matching test_point_in_time.RAW_DDL. timestamp_ntz keeps
# the naive datetimes as written (like DuckDB's timestamp) whatever the machine's time zone; the
# profile's session time zone (UTC) then turns them into the same wall-clock timestamps in staging.
RAW_SPARK_SCHEMAS = {
    "transactions": "invoice_no string, stock_code string, description string, quantity bigint, "
    "invoice_date timestamp_ntz, unit_price double, customer_id string, country string",
    "behavioral_events": "event_id string, session_id string, customer_id string, "
    "event_type string, event_timestamp timestamp_ntz",
    "customers": "customer_id string, country string, acquisition_channel string, signup_date timestamp_ntz",
}


def spark_profile_parameters() -> dict[str, str]:
    """The ``spark`` target's server_side_parameters, rendered like dbt renders env_var()."""
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    parameters = profile["clv_platform"]["outputs"]["spark"]["server_side_parameters"]

    def env_var(name: str, default: str | None = None) -> str:
        value = os.environ.get(name, default)
        if value is None:
            raise KeyError(f"env var {name} is required by profiles.yml")
        return value

    return {key: jinja2.Template(str(value)).render(env_var=env_var) for key, value in parameters.items()}


# Generic test arguments that are SQL text: each distinct one must parse on Spark.
SQL_ARGUMENTS = ("expression",)


def repeated_data_tests(manifest: Path) -> list[str]:
    """Names of the generic data tests that repeat another one's SQL on other columns or models.

    Kept: the first (by name) of each generic test per set of argument names and SQL arguments'
    values; singular tests are never repeats.
    """
    nodes = json.loads(manifest.read_text())["nodes"].values()
    seen, repeats = set(), []
    for node in sorted(nodes, key=lambda n: n["name"]):
        generic = node.get("test_metadata")
        if node["resource_type"] != "test" or not generic:
            continue
        arguments = {k: v for k, v in generic["kwargs"].items() if k not in ("model", "column_name")}
        key = (
            generic["name"],
            tuple(sorted(arguments)),
            tuple(str(arguments.get(k)) for k in SQL_ARGUMENTS),
            node["config"].get("where"),
        )
        if key in seen:
            repeats.append(node["name"])
        seen.add(key)
    return repeats


def dbt_build(target: str, root: Path, command: str = "build", exclude: list[str] = ()) -> set[str]:
    """Run ``dbt <command>`` on ``target``; the names of the data tests it ran (all passed)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            command,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--target",
            target,
            "--target-path",
            str(root / f"target_{target}"),
            "--vars",
            PARITY_VARS,
            "--quiet",
            *(["--exclude", *exclude] if exclude else []),
        ]
    )
    if not result.success:
        failed = result.exception or [
            f"{r.node.name}: {r.status} {r.message or ''}" for r in result.result if str(r.status) not in ("pass", "success")
        ]
        pytest.fail(f"dbt build --target {target} failed: {failed}")
    return {r.node.name for r in result.result if r.node.resource_type == "test"}


def normalized(frame: pd.DataFrame, keys: list[str]) -> list[dict]:
    """Rows as plain dicts sorted by key: lower-case column names, dates as datetime.date."""
    frame = frame.rename(columns=str.lower)
    for column in DATE_COLUMNS & set(frame.columns):
        frame[column] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[column]]
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return sorted(records, key=lambda r: tuple(r[k] for k in keys))


def assert_same_value(column: str, expected, actual, exact: bool = False) -> None:
    if isinstance(expected, (float, Decimal)) or isinstance(actual, (float, Decimal)):
        assert expected is not None and actual is not None, column
        if exact:
            assert float(expected) == float(actual), f"{column}: {expected!r} != {actual!r}"
        else:
            assert math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12), f"{column}: {expected} != {actual}"
    elif isinstance(expected, dt.date):
        assert isinstance(actual, dt.date) and actual == expected, f"{column}: {expected!r} != {actual!r}"
    else:
        assert expected == actual, f"{column}: {expected!r} != {actual!r}"


@pytest.fixture(scope="module")
def marts(tmp_path_factory) -> dict[str, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("clv_spark_parity")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        mp.setenv("CLV_HOME", str(root))
        mp.setenv("CLV_SPARK_DIR", str(root / "spark"))
        mp.setenv("CLV_WAREHOUSE_PATH", str(root / "warehouse.duckdb"))
        mp.setenv("DBT_PROFILES_DIR", str(DBT_PROJECT_DIR))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        transactions, events, customers = base_transactions(), base_events(), base_customers()

        # DuckDB: the platform's default warehouse. A full build, then an incremental run on the
        # rows of the next day.
        def duckdb_tables() -> dict[str, pd.DataFrame]:
            with duckdb.connect(str(root / "warehouse.duckdb")) as con:
                return {name: con.execute(f"select * from {name}").df() for name in MARTS}

        write_raw(root / "warehouse.duckdb", transactions, events, customers)
        duck_tests = dbt_build("duckdb", root)
        duck = duckdb_tables()
        repeats = repeated_data_tests(root / "target_duckdb" / "manifest.json")
        write_raw(root / "warehouse.duckdb", later_transactions(), events, customers)
        dbt_build("duckdb", root, command="run")
        duck_incremental = duckdb_tables()

        # Spark: the session dbt-spark will reuse, configured exactly as the profile configures it.
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master("local[2]").appName("clv-spark-parity").enableHiveSupport()
        for key, value in spark_profile_parameters().items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        try:
            spark.sql("create database if not exists raw")

            def write_spark_raw(transactions) -> None:
                raw = {"transactions": transactions, "behavioral_events": events, "customers": customers}
                for table, rows in raw.items():
                    frame = spark.createDataFrame(rows, schema=RAW_SPARK_SCHEMAS[table])
                    frame.write.mode("overwrite").saveAsTable(f"raw.{table}")

            write_spark_raw(transactions)
            spark_tests = dbt_build("spark", root, exclude=repeats)
            on_spark = {name: spark.table(name).toPandas() for name in MARTS}
            write_spark_raw(later_transactions())
            dbt_build("spark", root, command="run")
            on_spark_incremental = {name: spark.table(name).toPandas() for name in MARTS}
        finally:
            spark.stop()
        yield {
            "full": {"duckdb": duck, "spark": on_spark},
            "incremental": {"duckdb": duck_incremental, "spark": on_spark_incremental},
            "data_tests": {"duckdb": duck_tests, "spark": spark_tests, "repeats": set(repeats)},
        }


@pytest.mark.parametrize("build", ["full", "incremental"])
@pytest.mark.parametrize("mart", sorted(MARTS))
def test_spark_marts_equal_duckdb_marts(marts, mart, build):
    keys = MARTS[mart]
    duck, spark = marts[build]["duckdb"][mart], marts[build]["spark"][mart]
    # Spark stores a partition column last (int_customer_days is partitioned by activity_date).
    assert sorted(c.lower() for c in spark.columns) == sorted(c.lower() for c in duck.columns)
    assert len(duck) > 0
    expected_rows, actual_rows = normalized(duck, keys), normalized(spark, keys)
    assert [tuple(r[k] for k in keys) for r in actual_rows] == [tuple(r[k] for k in keys) for r in expected_rows]
    for expected, actual in zip(expected_rows, actual_rows, strict=True):
        for column, value in expected.items():
            assert_same_value(
                f"{mart}.{column} at {[expected[k] for k in keys]}", value, actual[column], exact=column in MONEY_COLUMNS
            )


def test_the_incremental_run_saw_the_new_day_and_the_cap_applied(marts):
    days = marts["incremental"]["duckdb"]["intermediate.int_customer_days"]
    new_day = days[days.activity_date == pd.Timestamp("2011-07-02")]
    assert sorted(new_day.customer_id) == [A, B]
    caps = marts["full"]["duckdb"]["intermediate.int_order_value_caps"]
    assert caps.cap_value.notna().all() and caps.orders_capped.sum() > 0


def test_money_is_an_exact_decimal_on_spark_too(marts):
    days = marts["full"]["spark"]["intermediate.int_customer_days"]
    for column in ("gross_purchase_value", "cancelled_value", "net_value"):
        assert all(isinstance(value, Decimal) and value.as_tuple().exponent == -4 for value in days[column]), column


def test_spark_ran_every_data_test_but_the_repeats(marts):
    ran = marts["data_tests"]
    assert ran["spark"] == ran["duckdb"] - ran["repeats"]
    # Singular tests, every SQL expression and each generic test ran on Spark too.
    for kind in (
        "assert_",
        "expression_is_true_",
        "accepted_range_",
        "accepted_values_",
        "not_null_",
        "unique_",
        "unique_combination_of_columns_",
        "feature_columns_not_null_",
    ):
        assert any(name.startswith(kind) for name in ran["spark"]), kind
    # Each distinct SQL expression ran on Spark; a skipped one repeats the same SQL on another model.
    expressions = {n for n in ran["duckdb"] if n.startswith("expression_is_true_")}
    assert expressions - ran["repeats"] <= ran["spark"]
