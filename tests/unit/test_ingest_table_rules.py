from datetime import datetime

from clv_platform.ingest import table_rules


def test_previous_window_keeps_weekdays_aligned():
    # One day: the same weekday a week earlier. Ten days: shifted by two whole weeks.
    assert table_rules.previous_window(datetime(2024, 3, 9), datetime(2024, 3, 10)) == (
        datetime(2024, 3, 2),
        datetime(2024, 3, 3),
    )
    assert table_rules.previous_window(datetime(2024, 3, 1), datetime(2024, 3, 11)) == (
        datetime(2024, 2, 16),
        datetime(2024, 2, 26),
    )


def test_quarantine_share_limit_is_inclusive():
    assert table_rules.quarantine_share(100, 50, 0.5)[0] is True
    passed, description, meta = table_rules.quarantine_share(100, 51, 0.5)
    assert passed is False and "51.0% of the rows were quarantined" in description and meta["quarantined_share"] == 0.51
    assert table_rules.quarantine_share(0, 0, 0.5)[0] is True


def test_ratio_change_fails_both_ways_and_passes_without_history():
    assert table_rules.ratio_change("volume", 100.0, 10.0, 10.0, "rows")[0] is True
    assert table_rules.ratio_change("volume", 101.0, 10.0, 10.0, "rows")[0] is False
    assert table_rules.ratio_change("volume", 0.9, 10.0, 10.0, "rows")[0] is False
    passed, description, _ = table_rules.ratio_change("volume", 5.0, None, 10.0, "rows")
    assert passed is True and "no previous window" in description


def test_new_categories_share():
    known = {"United Kingdom", "France"}
    assert table_rules.new_categories("country", {"United Kingdom": 95, "Peru": 5}, known, 0.05)[0] is True
    passed, description, meta = table_rules.new_categories("country", {"United Kingdom": 94, "Peru": 6}, known, 0.05)
    assert passed is False and meta["new_values"] == ["Peru"] and "6.0%" in description
    assert table_rules.new_categories("country", {"Peru": 6}, set(), 0.05)[0] is True


def test_staged_verdicts_judge_the_staged_rows_against_the_published_history():
    import duckdb

    from clv_platform.ingest.spec import RuleLimits

    con = duckdb.connect()
    con.execute("create schema raw; create schema raw_staging")
    lines = "(invoice_no varchar, quantity bigint, unit_price double, invoice_date timestamp, country varchar)"
    for table in ("raw.transactions", "raw_staging.transactions"):
        con.execute(f"create table {table} {lines}")
    con.execute("create table raw_staging.transactions_quarantine (source_row bigint)")
    # Published: the week before, two orders of 10 and 30 (mean 20), from the UK; this day's old version from Peru.
    con.execute("""insert into raw.transactions values ('a', 1, 10, '2024-03-02 10:00', 'UK'),
                   ('b', 2, 15, '2024-03-02 11:00', 'UK'), ('old', 1, 5, '2024-03-09 10:00', 'Peru')""")
    # Staged: orders of 50 and 70 (mean 60, 3x), a return left out of order values, one line without a country.
    con.execute("""insert into raw_staging.transactions values ('c', 5, 10, '2024-03-09 10:00', 'UK'),
                   ('d', 7, 10, '2024-03-09 11:00', 'Peru'), ('C1', -1, 10, '2024-03-09 12:00', 'UK'),
                   ('e', 1, 60, '2024-03-09 13:00', null)""")
    con.execute("insert into raw_staging.transactions_quarantine values (7), (8), (9), (10), (11)")
    verdicts = table_rules.staged_transaction_verdicts(
        con,
        "raw_staging.transactions",
        "raw_staging.transactions_quarantine",
        "raw.transactions",
        datetime(2024, 3, 9),
        datetime(2024, 3, 10),
        RuleLimits(max_order_value_ratio=2.9),
    )
    share, volume, value, countries = (
        verdicts[k]
        for k in ("quarantine_share_within_limit", "volume_change_within_limit", "mean_order_value_stable", "countries_stable")
    )
    assert share[0] is False and share[2]["rows_in_scope"] == 9 and share[2]["rows_quarantined"] == 5
    assert volume[0] is True and volume[2]["current_lines_per_day"] == 4 and volume[2]["previous_lines_per_day"] == 2
    assert value[0] is False and value[2]["current_order_value"] == 60 and value[2]["previous_order_value"] == 20
    # Known countries are those outside the window: Peru, only in the day being replaced, is new.
    assert countries[0] is False and countries[2]["new_values"] == ["Peru"] and countries[2]["new_share"] == round(1 / 3, 6)
