"""raw.customers as a pure function: the feed, the rows derived from the stored transactions, the generator's."""

from __future__ import annotations

import duckdb
import pandas as pd

from clv_platform.ingest.customers import customer_table
from clv_platform.ingest.spec import IngestionSpec, SourceSpec


def _warehouse():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(
        """create table raw.transactions as select * from (values
           ('c1', 'France', TIMESTAMP '2025-01-03 10:00:00'), ('c1', 'France', TIMESTAMP '2025-01-01 09:00:00'),
           ('c1', 'Spain', TIMESTAMP '2025-01-05 09:00:00'), ('c2', null, TIMESTAMP '2025-02-01 12:00:00'))
           t(customer_id, country, invoice_date)"""
    )
    return con


def test_without_a_feed_customers_are_derived_from_the_transactions(tmp_path):
    spec = IngestionSpec(transactions=SourceSpec(kind="files", path=str(tmp_path / "t.csv")))
    table = customer_table(spec, None, _warehouse())
    assert table.origin == "derived from raw.transactions" and table.feed_rows_dropped is None
    assert table.customers.to_dict("records") == [
        {
            "customer_id": "c1",
            "country": "France",
            "acquisition_channel": "unknown",
            "signup_date": pd.Timestamp("2025-01-01 09:00"),
        },
        {
            "customer_id": "c2",
            "country": "Unknown",
            "acquisition_channel": "unknown",
            "signup_date": pd.Timestamp("2025-02-01 12:00"),
        },
    ]


def test_the_feed_wins_and_its_gaps_are_filled_from_the_transactions(tmp_path):
    (tmp_path / "customers.csv").write_text(
        "customer_id,country,acquisition_channel,signup_date\nc1,,email,2024-12-01\nc2,Italy,,\n,Italy,email,2024-01-01\n"
    )
    spec = IngestionSpec(
        transactions=SourceSpec(kind="files", path=str(tmp_path / "t.csv")),
        customers=SourceSpec(kind="files", path=str(tmp_path / "customers.csv")),
    )
    table = customer_table(spec, None, _warehouse())
    assert table.origin == "customer feed (files)"
    assert table.feed_rows_dropped == {
        "without_customer_id": 1,
        "repeated_customer_id_kept_last": 0,
        "without_signup_date_or_purchase": 0,
    }
    rows = table.customers.set_index("customer_id")
    assert rows.loc["c1", "country"] == "France" and rows.loc["c1", "signup_date"] == pd.Timestamp("2024-12-01")
    assert rows.loc["c2", "acquisition_channel"] == "unknown" and rows.loc["c2", "signup_date"] == pd.Timestamp(
        "2025-02-01 12:00"
    )
