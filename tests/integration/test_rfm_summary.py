"""The dbt BTYD core equals pymc-marketing's ``rfm_summary`` on the real UCI Online Retail log.

The log (``../shared/data/online_retail.csv.gz`` beside the checkout) is loaded into
``raw.transactions`` as ingestion would (UCI columns renamed, lines without a CustomerID dropped),
with empty ``raw.customers`` and ``raw.behavioral_events``; ``dbt build --select +customer_features``
runs with capping off at the default cutoff (the day after the last invoice). ``rfm_summary`` then
summarises the same purchase lines (those staging marks ``is_purchase``) with
``observation_period_end`` = that cutoff, and every customer must agree.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_point_in_time import write_raw_frames

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
ONLINE_RETAIL = PROJECT_ROOT / ".." / "shared" / "data" / "online_retail.csv.gz"


def load_online_retail(path: Path) -> pd.DataFrame:
    from clv_platform.ingest.spec import PRESETS

    uci = PRESETS["online_retail"]  # canonical -> UCI column
    frame = pd.read_csv(path, dtype={uci["invoice_no"]: str, uci["stock_code"]: str, uci["customer_id"]: str})
    frame = frame.rename(columns={column: name for name, column in uci.items()})[list(uci)]
    frame = frame[frame["customer_id"].notna()].copy()
    # Integer text; a float-typed export would read "17850.0".
    frame["customer_id"] = frame["customer_id"].str.replace(r"\.0$", "", regex=True)
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"])
    return frame


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"the UCI Online Retail log is not at {ONLINE_RETAIL.resolve()} (shared/data beside the checkout)")
    root = tmp_path_factory.mktemp("clv_rfm")
    path = root / "warehouse.duckdb"
    write_raw_frames(path, {"transactions": load_online_retail(ONLINE_RETAIL)})

    from dbt.cli.main import dbtRunner

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLV_WAREHOUSE_PATH", str(path))
        mp.setenv("DBT_PROFILES_DIR", str(DBT_PROJECT_DIR))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        result = dbtRunner().invoke(
            [
                "build",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--select",
                "+customer_features",
                "--vars",
                "{order_value_cap_quantile: null, training_cutoffs: 0}",
                "--quiet",
            ]
        )
    if not result.success:
        failed = [str(r.message) for r in result.result if r.status not in ("pass", "success")]
        pytest.fail(f"dbt build failed: {result.exception or failed}")
    return path


@pytest.fixture(scope="module")
def both(warehouse):
    from pymc_marketing.clv.utils import rfm_summary

    # Same configuration as dbt-duckdb, which keeps its database instance open in-process.
    with duckdb.connect(str(warehouse)) as con:
        features = con.execute(
            "select customer_id, cutoff_date, frequency, recency, T, monetary_value from marts.customer_features"
        ).df()
        purchases = con.execute(
            "select customer_id, invoiced_at, line_amount from staging.stg_shop__transactions where is_purchase"
        ).df()
    (cutoff,) = features["cutoff_date"].unique()
    expected = rfm_summary(
        purchases,
        customer_id_col="customer_id",
        datetime_col="invoiced_at",
        monetary_value_col="line_amount",
        observation_period_end=pd.Timestamp(cutoff),
    )
    merged = features.merge(expected, on="customer_id", how="outer", suffixes=("", "_pymc"), indicator=True)
    return cutoff, merged


def test_the_cutoff_is_the_day_after_the_last_invoice(both):
    cutoff, _ = both
    assert pd.Timestamp(cutoff) == pd.Timestamp("2011-12-10")


def test_every_customer_agrees_with_rfm_summary(both):
    _, merged = both
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", ["customer_id", "_merge"]]
    assert len(merged) > 4_000  # 4,372 customers in the log; a few have no purchase line
    for column in ("frequency", "recency", "T"):
        mismatched = merged[merged[column].astype("float64") != merged[f"{column}_pymc"].astype("float64")]
        assert mismatched.empty, mismatched[["customer_id", column, f"{column}_pymc"]].head()
    np.testing.assert_allclose(
        merged["monetary_value"].to_numpy(), merged["monetary_value_pymc"].to_numpy(), rtol=1e-9, atol=1e-9
    )
    # Not a vacuous comparison: repeat buyers with real money.
    assert (merged["frequency"] > 0).sum() > 2_500 and merged["monetary_value"].max() > 1_000
