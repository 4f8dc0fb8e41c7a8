"""Writing score-like tables by cutoff: history kept, a cutoff replaced whole, the schema following the code."""

from datetime import date

import duckdb
import pandas as pd
import pytest

from clv_platform.lib.warehouse import replace_cutoff_rows

JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)


def rows(cutoff, customers, **columns) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": customers, "cutoff_date": [cutoff] * len(customers), **columns})


def test_a_cutoff_is_replaced_and_the_others_stay():
    con = duckdb.connect()
    assert replace_cutoff_rows(con, "scoring.t", rows(JAN, ["a", "b"], x=[1.0, 2.0]), JAN) == 2
    assert replace_cutoff_rows(con, "scoring.t", rows(FEB, ["a"], x=[3.0]), FEB) == 1
    assert replace_cutoff_rows(con, "scoring.t", rows(FEB, ["b", "c"], x=[4.0, 5.0]), FEB) == 2
    assert con.execute("select customer_id, cutoff_date, x from scoring.t order by 2, 1").fetchall() == [
        ("a", JAN, 1.0),
        ("b", JAN, 2.0),
        ("b", FEB, 4.0),
        ("c", FEB, 5.0),
    ]


def test_the_table_follows_the_columns_the_code_writes():
    # An older release wrote value_tier into the scores; the current one writes model_version instead.
    con = duckdb.connect()
    replace_cutoff_rows(con, "scoring.t", rows(JAN, ["a"], x=[1.0], value_tier=["High"]), JAN)
    replace_cutoff_rows(con, "scoring.t", rows(FEB, ["a"], x=[2.0], model_version=["7"]), FEB)
    assert [row[0] for row in con.execute("describe scoring.t").fetchall()] == [
        "customer_id",
        "cutoff_date",
        "x",
        "model_version",
    ]
    assert con.execute("select cutoff_date, x, model_version from scoring.t order by 1").fetchall() == [
        (JAN, 1.0, None),
        (FEB, 2.0, "7"),
    ]


def test_a_failed_write_leaves_the_table_as_it_was():
    con = duckdb.connect()
    replace_cutoff_rows(con, "scoring.t", rows(JAN, ["a"], x=[1.0]), JAN)
    with pytest.raises(duckdb.ConversionException):
        replace_cutoff_rows(con, "scoring.t", rows("not a date", ["a"], x=[2.0], extra=[1]), "not a date")
    assert [row[0] for row in con.execute("describe scoring.t").fetchall()] == ["customer_id", "cutoff_date", "x"]
    assert con.execute("select cutoff_date, x from scoring.t").fetchall() == [(JAN, 1.0)]
