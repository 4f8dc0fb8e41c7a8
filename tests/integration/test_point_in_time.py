"""Point-in-time correctness of the dbt features and labels, on a real DuckDB warehouse.

Hand-made raw rows sit exactly on both sides of each cutoff (one second before, exactly at the
midnight) with ``cutoff_date=2011-07-01``, ``horizon_days=30``, two training cutoffs 30 days apart:

    scoring cutoff  SC  = 2011-07-01   features read [.., SC)
    training cutoff TC1 = 2011-06-01   features read [.., TC1), label reads [TC1, SC)
    training cutoff TC2 = 2011-05-02   features read [.., TC2), label reads [TC2, TC1)

The same warehouse file and dbt target dir are reused by every scenario so dbt parses once.
"""

from __future__ import annotations

import statistics
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clv_platform.ml.features import ATTRIBUTE_COLUMNS
from clv_platform.ml.features import FEATURE_COLUMNS as MODEL_FEATURE_COLUMNS

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

SC = datetime(2011, 7, 1)
TC1 = datetime(2011, 6, 1)
TC2 = datetime(2011, 5, 2)
ONE_SECOND_BEFORE_SC = datetime(2011, 6, 30, 23, 59, 59)  # also TC1 + horizon - 1s
ONE_SECOND_BEFORE_TC1 = datetime(2011, 5, 31, 23, 59, 59)  # also TC2 + horizon - 1s
# Capping off: the hand-computed values below are the logged ones (test_order_value_caps... caps).
DBT_VARS = (
    "{cutoff_date: '2011-07-01', horizon_days: 30, training_cutoffs: 2, cutoff_spacing_days: 30, order_value_cap_quantile: null}"
)
# Quantile 1: each cutoff's cap is the largest order (purchase day) strictly before it.
CAP_AT_MAX_VARS = DBT_VARS.replace("order_value_cap_quantile: null", "order_value_cap_quantile: 1")

FEATURE_COLUMNS = ["customer_id", "cutoff_date", *MODEL_FEATURE_COLUMNS, *ATTRIBUTE_COLUMNS]
LABEL_COLUMNS = ["horizon_days", "future_revenue", "future_purchase_days"]

A, B, C, D, E, F = "12345", "22222", "33333", "44444", "55555", "66666"


def line(invoice_no, invoiced_at, quantity, unit_price, customer_id, stock_code="85123A", country="United Kingdom"):
    return {
        "invoice_no": invoice_no,
        "stock_code": stock_code,
        "description": f"ITEM {stock_code}",
        "quantity": quantity,
        "invoice_date": invoiced_at,
        "unit_price": unit_price,
        "customer_id": customer_id,
        "country": country,
    }


def event(event_id, session_id, customer_id, event_type, at):
    return {
        "event_id": event_id,
        "session_id": session_id,
        "customer_id": customer_id,
        "event_type": event_type,
        "event_timestamp": at,
    }


def base_transactions() -> list[dict]:
    """Dirty on purpose: an exact duplicate, cancellations, postage, zero prices, guests."""
    a1 = line("A1", datetime(2011, 3, 1, 10), 2, 5.0, A)
    ca3 = line("CA3", datetime(2011, 4, 12, 9), -1, 2.5, A)
    return [
        a1,
        dict(a1),  # exact duplicate line: counted once
        line("A2", datetime(2011, 4, 10, 12), 4, 2.5, A),
        line("A2", datetime(2011, 4, 10, 12), 1, 20.0, A, stock_code="22423"),
        line("A2", datetime(2011, 4, 10, 12), 1, 15.0, A, stock_code="POST"),  # postage: not a product
        line("A2", datetime(2011, 4, 10, 12), 3, 0.0, A, stock_code="22139"),  # free line
        ca3,
        dict(ca3),  # duplicated cancellation: counted once
        line("A3", datetime(2011, 5, 1, 23, 59, 59), 1, 4.0, A),  # TC2 - 1s
        line("A4", ONE_SECOND_BEFORE_TC1, 1, 50.0, A),
        line("A5", TC1, 2, 20.0, A),
        line("A6", ONE_SECOND_BEFORE_SC, 1, 8.0, A),
        line("A7", SC, 1, 1000.0, A),
        line("B1", ONE_SECOND_BEFORE_SC, 1, 12.5, B, country="France"),
        line("B2", SC, 1, 99.0, B, country="France"),
        line("K0", datetime(2011, 5, 1, 10), 2, 0.0, C),  # zero price: not a purchase
        line("K1", TC1, 1, 7.0, C),
        line("D1", datetime(2011, 1, 10, 10), 1, 100.0, D),
        line("CD2", TC1, -1, 150.0, D),  # cancellation exactly at TC1
        line("E1", datetime(2011, 2, 15, 10), 1, 30.0, E),
        line("F1", datetime(2011, 4, 1, 10), 1, 15.0, F, stock_code="POST"),  # only postage
        line("G1", datetime(2011, 6, 15, 10), 100, 50.0, None),  # guests
        line("G2", ONE_SECOND_BEFORE_SC, 100, 50.0, None),
    ]


def base_events() -> list[dict]:
    return [
        event("ev1", "s1", A, "page_view", ONE_SECOND_BEFORE_SC),
        event("ev2", "s1", A, "add_to_cart", ONE_SECOND_BEFORE_SC),
        event("ev3", "s2", A, "add_to_cart", SC),
        event("ev4", "s3", A, "search", datetime(2011, 4, 2)),  # SC - 90 days exactly
        event("ev5", "s4", A, "page_view", datetime(2011, 4, 1, 23, 59, 59)),  # SC - 90 days - 1s
        event("ev6", "s5", A, "add_to_cart", ONE_SECOND_BEFORE_TC1),
        event("ev7", "s6", A, "add_to_cart", TC1),
    ]


def base_customers() -> list[dict]:
    return [
        {
            "customer_id": A,
            "country": "United Kingdom",
            "acquisition_channel": "organic",
            "signup_date": datetime(2011, 1, 1, 15),
        },
        # Signed up after the scoring cutoff: the signup must not leak into tenure.
        {"customer_id": E, "country": "Norway", "acquisition_channel": "email", "signup_date": datetime(2011, 8, 1)},
    ]


RAW_DDL = {
    "transactions": "invoice_no varchar, stock_code varchar, description varchar, quantity bigint, "
    "invoice_date timestamp, unit_price double, customer_id varchar, country varchar",
    "behavioral_events": "event_id varchar, session_id varchar, customer_id varchar, "
    "event_type varchar, event_timestamp timestamp",
    "customers": "customer_id varchar, country varchar, acquisition_channel varchar, signup_date timestamp",
}


def write_raw(path: Path, transactions, events, customers) -> None:
    """The raw tables of ``path`` replaced by these rows (lists of dicts)."""
    tables = {"transactions": transactions, "behavioral_events": events, "customers": customers}
    write_raw_frames(path, {table: pd.DataFrame(rows) for table, rows in tables.items() if rows})


def write_raw_frames(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Every raw table of ``RAW_DDL`` in ``path`` (new or replaced), filled from the data frames given (empty otherwise).

    The frames hold at least the table's columns.
    """
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw")
        for table, ddl in RAW_DDL.items():
            con.execute(f"create or replace table raw.{table} ({ddl})")
            if table in frames:
                columns = ", ".join(c.split()[0] for c in ddl.split(", "))
                con.register("frame", frames[table])
                con.execute(f"insert into raw.{table} select {columns} from frame")
                con.unregister("frame")


class Warehouse:
    """One DuckDB file and one dbt target dir, rebuilt per scenario."""

    def __init__(self, root: Path):
        self.path = root / "warehouse.duckdb"
        from dbt.cli.main import dbtRunner

        self.runner = dbtRunner()

    def materialize(
        self, command: str, transactions, events, customers, dbt_vars: str = DBT_VARS, full_refresh: bool = True
    ) -> dict[str, pd.DataFrame]:
        write_raw(self.path, transactions, events, customers)
        # --full-refresh: the incremental daily aggregates rebuild from each scenario's raw rows.
        result = self.runner.invoke(
            [command, "--project-dir", str(DBT_PROJECT_DIR), "--vars", dbt_vars, "--quiet"]
            + (["--full-refresh"] if full_refresh else [])
        )
        if not result.success:
            failed = result.exception or [
                f"{r.node.name}: {r.status} {r.message or ''}" for r in result.result if str(r.status) not in ("pass", "success")
            ]
            pytest.fail(f"dbt {command} failed: {failed}")
        # Same configuration as dbt-duckdb, which keeps its database instance open in-process.
        with duckdb.connect(str(self.path)) as con:
            return {
                name: con.execute(f"select * from {name}").df()
                for name in (
                    "intermediate.int_cutoffs",
                    "intermediate.int_order_value_caps",
                    "staging.stg_shop__transactions",
                    "intermediate.int_customer_days",
                    "intermediate.int_customer_session_days",
                    "marts.customer_features",
                    "marts.training_examples",
                )
            }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("clv_dbt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLV_WAREHOUSE_PATH", str(root / "warehouse.duckdb"))
        mp.setenv("DBT_PROFILES_DIR", str(DBT_PROJECT_DIR))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        yield Warehouse(root)


@pytest.fixture(scope="module")
def baseline(warehouse):
    """`dbt build` (models, data tests, unit tests) on the dirty base rows."""
    return warehouse.materialize("build", base_transactions(), base_events(), base_customers())


def by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["customer_id", "cutoff_date"]).reset_index(drop=True)


def row(frame: pd.DataFrame, customer_id: str, cutoff: datetime) -> dict:
    match = frame[(frame.customer_id == customer_id) & (frame.cutoff_date == pd.Timestamp(cutoff))]
    assert len(match) == 1, f"expected one row for {customer_id} at {cutoff:%Y-%m-%d}, got {len(match)}"
    return match.iloc[0].to_dict()


def assert_values(actual: dict, expected: dict) -> None:
    for column, value in expected.items():
        if isinstance(value, float):
            assert actual[column] == pytest.approx(value), column
        elif isinstance(value, date):
            assert pd.Timestamp(actual[column]) == pd.Timestamp(value), column
        else:
            assert actual[column] == value, column


def test_build_passes_on_dirty_data_and_dedupes_exact_duplicates(baseline):
    staged = baseline["staging.stg_shop__transactions"]
    assert len(staged) == len(base_transactions()) - 2
    cutoffs = baseline["intermediate.int_cutoffs"].sort_values("cutoff_index")
    assert [(d.date(), k) for d, k in zip(cutoffs.cutoff_date, cutoffs.cutoff_kind, strict=True)] == [
        (SC.date(), "scoring"),
        (TC1.date(), "training"),
        (TC2.date(), "training"),
    ]
    assert list(baseline["marts.customer_features"].columns) == FEATURE_COLUMNS
    assert list(baseline["marts.training_examples"].columns) == FEATURE_COLUMNS + LABEL_COLUMNS


def test_scoring_features_match_hand_computed_values(baseline):
    features = baseline["marts.customer_features"]
    # F only bought postage; guests have no id; everyone else purchased before SC.
    assert sorted(features.customer_id) == [A, B, C, D, E]
    assert set(features.cutoff_date) == {pd.Timestamp(SC)}

    # A: purchase days 03-01, 04-10, 05-01, 05-31, 06-01, 06-30; A7 at SC itself is ignored.
    assert_values(
        row(features, A, SC),
        {
            "frequency": 5,
            "recency": 121,
            "T": 122,
            "monetary_value": (30 + 4 + 50 + 40 + 8) / 5,  # first day (10.0) excluded; postage/free ignored
            "orders_30d": 2,
            "spend_30d": 48.0,  # A5 at 06-01 00:00 (= SC - 30 days) is in, A7 is out
            "orders_90d": 5,
            "spend_90d": 30 - 2.5 + 4 + 50 + 40 + 8,
            "orders_365d": 6,
            "spend_365d": 10 + 30 - 2.5 + 4 + 50 + 40 + 8,
            "sessions_90d": 4,  # s1, s3 (at SC - 90 days exactly), s5, s6; not s2 (at SC), s4 (a second early)
            "add_to_cart_90d": 3,
            "tenure_days": 181,
            "country": "United Kingdom",
            "acquisition_channel": "organic",
            "first_purchase_date": date(2011, 3, 1),
            "last_purchase_date": date(2011, 6, 30),
            # Purchase lines: A1 (2 items), A2 x2 (4 + 1 items, two products), A3, A4, A5 (2 items), A6.
            "items_30d": 3,
            "items_90d": 10,
            "items_365d": 12,
            "distinct_products_30d": 1,
            "distinct_products_90d": 2,
            "distinct_products_365d": 2,
            "distinct_products": 2,
            "product_diversity": 2 / 7,
            "orders_trend_90d_365d": (5 / 90) / (6 / 365),
            "spend_trend_90d_365d": (129.5 / 90) / (139.5 / 365),
            "purchase_gap_mean_days": 121 / 5,
            "purchase_gap_stddev_days": statistics.stdev([40, 21, 30, 1, 29]),
            "basket_value_mean": 142 / 6,
            "basket_items_mean": 2.0,
            "return_rate": 2.5 / 142,
            "spend_share_90d": 132 / 142,
            # Every session has a single timestamp; each add-to-cart day (05-31, 06-01, 06-30) is a purchase day.
            "session_seconds_mean_90d": 0.0,
            "page_views_90d": 1,
            "searches_90d": 1,
            "cart_to_purchase_90d": 1.0,
            "country_customer_share": 3 / 5,
            "channel_organic_search": 0,
            "channel_email": 0,
        },
    )
    # B: one purchase a second before SC; B2 exactly at SC is ignored. Unknown in raw.customers.
    assert_values(
        row(features, B, SC),
        {
            "frequency": 0,
            "recency": 0,
            "T": 1,
            "monetary_value": 0.0,
            "orders_30d": 1,
            "spend_30d": 12.5,
            "spend_365d": 12.5,
            "sessions_90d": 0,
            "add_to_cart_90d": 0,
            "tenure_days": 1,
            "country": "France",
            "acquisition_channel": "unknown",
        },
    )
    # C: the zero-price line is not a purchase; first purchase exactly at TC1.
    assert_values(
        row(features, C, SC),
        {
            "frequency": 0,
            "T": 30,
            "orders_30d": 1,
            "spend_30d": 7.0,
            "first_purchase_date": date(2011, 6, 1),
        },
    )
    # D: a cancellation larger than the purchase makes the window spend negative.
    assert_values(
        row(features, D, SC),
        {
            "frequency": 0,
            "T": 172,
            "orders_30d": 0,
            "spend_30d": -150.0,
            "spend_365d": -50.0,
        },
    )
    # E: signup recorded after the cutoff is ignored; tenure starts at the first purchase.
    assert_values(
        row(features, E, SC),
        {
            "T": 136,
            "tenure_days": 136,
            "country": "Norway",
            "acquisition_channel": "email",
            "channel_email": 1,
            "country_customer_share": 1 / 5,
        },
    )


def test_training_features_and_labels_match_hand_computed_values(baseline):
    examples = baseline["marts.training_examples"]
    # B and C first purchase at or after TC1; F never purchased.
    assert sorted(zip(examples.customer_id, examples.cutoff_date.dt.date, strict=True)) == sorted(
        (c, t.date()) for c in (A, D, E) for t in (TC1, TC2)
    )
    assert set(examples.horizon_days) == {30}

    assert_values(
        row(examples, A, TC1),
        {
            "frequency": 3,
            "recency": 91,
            "T": 92,
            "monetary_value": (30 + 4 + 50) / 3,
            "orders_30d": 1,
            "spend_30d": 50.0,
            "orders_90d": 3,
            "spend_90d": 30 - 2.5 + 4 + 50,
            "orders_365d": 4,
            "spend_365d": 10 + 30 - 2.5 + 4 + 50,
            "sessions_90d": 3,
            "add_to_cart_90d": 1,  # s3, s4, s5; ev7 exactly at TC1 is out
            "tenure_days": 151,
            "last_purchase_date": date(2011, 5, 31),
            # Label [TC1, SC): A5 at TC1 and A6 a second before SC count; A7 at SC does not.
            "future_revenue": 40.0 + 8.0,
            "future_purchase_days": 2,
        },
    )
    assert_values(
        row(examples, A, TC2),
        {
            "frequency": 2,
            "recency": 61,
            "T": 62,
            "monetary_value": (30 + 4) / 2,
            "orders_30d": 2,
            "spend_30d": 30 - 2.5 + 4,
            "orders_90d": 3,
            "spend_90d": 10 + 30 - 2.5 + 4,
            "sessions_90d": 2,
            "add_to_cart_90d": 0,
            "tenure_days": 121,
            # Label [TC2, TC1): A4 a second before TC1 counts; A5 exactly at TC1 does not.
            "future_revenue": 50.0,
            "future_purchase_days": 1,
        },
    )
    # D's cancellation exactly at TC1 lands in the TC1 label, which is floored at 0.
    assert_values(row(examples, D, TC1), {"T": 142, "future_revenue": 0.0, "future_purchase_days": 0})
    assert_values(row(examples, D, TC2), {"T": 112, "future_revenue": 0.0})
    assert_values(row(examples, E, TC1), {"tenure_days": 106, "future_revenue": 0.0})


def test_rows_at_or_after_the_scoring_cutoff_change_nothing(warehouse, baseline):
    transactions = [r for r in base_transactions() if r["invoice_no"] not in ("A7", "B2")]
    transactions += [
        line("A7", SC, 1, 5.0, A),
        line("A8", SC, 1, 777.0, A),
        line("CA9", datetime(2011, 7, 5), -1, 20.0, A, stock_code="22423"),
        line("Z1", SC, 3, 10.0, "99999"),
        line("B3", datetime(2011, 8, 1), 1, 12.5, B, country="France"),
    ]
    events = [e for e in base_events() if e["event_id"] != "ev3"]
    events += [
        event("ev8", "s8", A, "add_to_cart", SC),
        event("ev9", "s9", "99999", "page_view", datetime(2011, 7, 2)),
    ]
    customers = base_customers() + [
        {"customer_id": "99999", "country": "Spain", "acquisition_channel": "email", "signup_date": SC},
    ]
    changed = warehouse.materialize("run", transactions, events, customers)

    for mart in ("marts.customer_features", "marts.training_examples"):
        pd.testing.assert_frame_equal(by_key(changed[mart]), by_key(baseline[mart]))


def test_rows_in_the_label_window_change_labels_but_not_training_features(warehouse, baseline):
    transactions = base_transactions() + [
        line("A10", TC1, 1, 100.0, A),  # same day as A5: one more order, not one more purchase day
        line("CA11", ONE_SECOND_BEFORE_SC, -1, 30.0, A, stock_code="22423"),
        line("Y1", TC1, 1, 60.0, "77777"),
    ]
    events = base_events() + [event("ev10", "s10", A, "add_to_cart", TC1)]
    changed = warehouse.materialize("run", transactions, events, base_customers())

    before, after = by_key(baseline["marts.training_examples"]), by_key(changed["marts.training_examples"])
    pd.testing.assert_frame_equal(after[FEATURE_COLUMNS], before[FEATURE_COLUMNS])
    assert_values(row(after, A, TC1), {"future_revenue": 48.0 + 100.0 - 30.0, "future_purchase_days": 2})
    assert_values(row(after, A, TC2), {"future_revenue": 50.0})

    # The scoring cutoff sees those rows.
    scoring = changed["marts.customer_features"]
    assert_values(
        row(scoring, A, SC),
        {
            "orders_30d": 3,
            "spend_30d": 48.0 + 100.0 - 30.0,
            "add_to_cart_90d": 4,
        },
    )
    assert_values(row(scoring, "77777", SC), {"frequency": 0, "T": 30})


def test_order_value_caps_read_only_orders_before_each_cutoff(warehouse):
    """Quantile 1 makes each cap the largest order before its cutoff, so every planted order shows.

    D's 500 a second before TC1 sets TC1's cap but not TC2's (100, D's January order); A's 10,000
    exactly at TC1 is in TC1's label window, capped there at 500, and sets only SC's cap.
    """
    transactions = base_transactions() + [
        line("D9", ONE_SECOND_BEFORE_TC1, 1, 500.0, D),
        line("A9", TC1, 1, 10_000.0, A),
    ]
    marts = warehouse.materialize("build", transactions, base_events(), base_customers(), CAP_AT_MAX_VARS)

    caps = marts["intermediate.int_order_value_caps"].set_index(marts["intermediate.int_order_value_caps"].cutoff_date.dt.date)
    assert caps.cap_value.to_dict() == {SC.date(): 10_040.0, TC1.date(): 500.0, TC2.date(): 100.0}
    assert caps.orders_capped.to_dict() == {SC.date(): 0, TC1.date(): 0, TC2.date(): 0}
    # TC1: A's 10,040 day; TC2: D's 500 day. A7 (1000) on SC is under SC's cap.
    assert caps.label_orders_capped.to_dict() == {SC.date(): 0, TC1.date(): 1, TC2.date(): 1}

    examples = marts["marts.training_examples"]
    assert_values(row(examples, A, TC1), {"future_revenue": 500.0 + 8.0, "monetary_value": (30 + 4 + 50) / 3})
    assert_values(row(examples, D, TC2), {"future_revenue": 100.0})
    assert_values(row(examples, D, TC1), {"frequency": 1, "monetary_value": 500.0, "basket_value_mean": 300.0})
    # The scoring cutoff's cap is the 10,040 day itself: nothing before SC is capped.
    assert_values(row(marts["marts.customer_features"], A, SC), {"monetary_value": (30 + 4 + 50 + 10_040 + 8) / 5})


def test_incremental_run_rebuilds_only_the_recent_days(warehouse):
    """The daily aggregates rebuild from incremental_lookback_days (3) before their latest day (SC).

    After a full build, raw changes in three places: a new purchase on SC + 1 day, B1 (06-30, inside
    the lookback) repriced, and A1 (03-01, long before it) repriced. A plain run picks up the first
    two and leaves 03-01 as built, which is what "only new partitions" means; a full refresh would
    pick up all three.
    """
    warehouse.materialize("run", base_transactions(), base_events(), base_customers())
    transactions = [
        {**r, "unit_price": 7.0} if r["invoice_no"] == "A1" else {**r, "unit_price": 13.0} if r["invoice_no"] == "B1" else r
        for r in base_transactions()
    ] + [line("A20", datetime(2011, 7, 2, 9), 1, 3.0, A)]
    changed = warehouse.materialize("run", transactions, base_events(), base_customers(), full_refresh=False)
    days = changed["intermediate.int_customer_days"].set_index(["customer_id", "activity_date"]).gross_purchase_value
    assert days[(A, pd.Timestamp("2011-07-02"))] == 3.0
    assert days[(B, pd.Timestamp("2011-06-30"))] == 13.0
    assert days[(A, pd.Timestamp("2011-03-01"))] == 10.0  # 2 x 5.0 as first built, not 2 x 7.0

    refreshed = warehouse.materialize("run", transactions, base_events(), base_customers())
    days = refreshed["intermediate.int_customer_days"].set_index(["customer_id", "activity_date"]).gross_purchase_value
    assert days[(A, pd.Timestamp("2011-03-01"))] == 14.0


def test_incremental_run_builds_the_session_days_earlier_cutoffs_read(warehouse):
    """Session days start 90 days before the earliest cutoff; when cutoffs are added, a plain run fills the days before.

    A scoring-only build keeps the events from SC - 90 days (2011-04-02) on: ev5, one second before,
    has no row. A plain (incremental) run with the two training cutoffs then reads from TC2 - 90
    days (2011-02-01): it builds 2011-02-01 .. 2011-04-01 as well, and every table equals a full build.
    """
    scoring_only = DBT_VARS.replace("training_cutoffs: 2", "training_cutoffs: 0")
    first = warehouse.materialize("run", base_transactions(), base_events(), base_customers(), scoring_only)
    assert first["intermediate.int_customer_session_days"].activity_date.min() == pd.Timestamp("2011-04-02")

    incremental = warehouse.materialize("run", base_transactions(), base_events(), base_customers(), full_refresh=False)
    full = warehouse.materialize("run", base_transactions(), base_events(), base_customers())
    session_days = incremental["intermediate.int_customer_session_days"]
    assert pd.Timestamp("2011-04-01") in set(session_days.activity_date)  # ev5's day, filled in
    keys = {
        "intermediate.int_customer_session_days": ["customer_id", "session_id", "activity_date"],
        "marts.customer_features": ["customer_id", "cutoff_date"],
        "marts.training_examples": ["customer_id", "cutoff_date"],
    }
    for table, key in keys.items():
        pd.testing.assert_frame_equal(
            incremental[table].sort_values(key).reset_index(drop=True),
            full[table].sort_values(key).reset_index(drop=True),
            check_exact=True,
            obj=table,
        )
    assert row(full["marts.training_examples"], A, TC2)["sessions_90d"] == 2  # s3 and s4 (ev4, ev5)
