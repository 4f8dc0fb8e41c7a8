from datetime import datetime

from clv_platform.ingest import table_rules


def test_previous_window_keeps_weekdays_aligned():
    # One day: the same weekday a week earlier. Ten days: shifted by two whole weeks.
    assert table_rules.previous_window(datetime(2024, 3, 9), datetime(2024, 3, 10)) == (datetime(2024, 3, 2), datetime(2024, 3, 3))
    assert table_rules.previous_window(datetime(2024, 3, 1), datetime(2024, 3, 11)) == (datetime(2024, 2, 16), datetime(2024, 2, 26))


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
