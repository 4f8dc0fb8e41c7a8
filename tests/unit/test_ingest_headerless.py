"""Logs without a header and with whitespace between fields: columns by position, rows kept or quarantined, never lost.

Also the defaults a log of any age meets: no history start unless set, and the compile cache shared by every state.
"""

from datetime import date, datetime

import pytest

from clv_platform import settings
from clv_platform.ingest.readers import SourceError, iter_source
from clv_platform.ingest.spec import IngestionSpec, PiiSpec, RuleLimits, SourceSpec, SpecError, load_spec
from clv_platform.ingest.validate import TRANSACTIONS, check_columns, validate

# The CDNOW master file's shape: customer, yyyymmdd, items, dollars, right-aligned by runs of spaces.
EARLIEST_DAY = date(1970, 1, 1)  # the first day a log may start when no history_start is set
CDNOW = "00001 19970101  1  11.77\n00002 19970112  1  12.00\n\n00002 19970112\t5  77.00\n  00003 19970102  2  20.76\n"


def _spec(path, **options) -> SourceSpec:
    columns = {"customer_id": 1, "invoice_date": 2, "amount": 4}
    return SourceSpec(kind="files", path=str(path), header=False, delimiter="whitespace", columns=columns, **options)


def _load(spec: SourceSpec):
    frames = list(iter_source(spec, chunk_rows=2))
    return validate(frames, TRANSACTIONS, spec, RuleLimits(), PiiSpec(), None, datetime(2026, 1, 1), EARLIEST_DAY)


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".tsv"])
def test_a_headerless_whitespace_log_reads_by_position_with_its_line_numbers(tmp_path, suffix):
    path = tmp_path / f"cdnow{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + CDNOW.encode())  # a byte-order mark is not part of the first customer id
    frames = list(iter_source(_spec(path), chunk_rows=2))
    assert [list(f.frame.columns[:4]) for f in frames] == [["column_1", "column_2", "column_3", "column_4"]] * 2
    assert [f.rows.tolist() for f in frames] == [[1, 2], [4, 5]]  # line 3 is blank; the first line is a record
    loaded = _load(_spec(path))
    assert loaded.rows_read == 4 and loaded.quarantine.empty
    got = loaded.accepted.sort_values(["customer_id", "unit_price"])
    assert got["customer_id"].tolist() == ["00001", "00002", "00002", "00003"]
    assert got["invoice_date"].dt.date.tolist() == [date(1997, 1, 1), date(1997, 1, 12), date(1997, 1, 12), date(1997, 1, 2)]
    assert got["unit_price"].tolist() == [11.77, 12.0, 77.0, 20.76]


def test_a_record_of_another_width_is_quarantined_with_its_line(tmp_path):
    path = tmp_path / "cdnow.txt"
    path.write_text(CDNOW + "00004 19970105  2  20.00 extra\n00005 19970106\n")
    loaded = _load(_spec(path))
    assert loaded.rows_read == len(loaded.accepted) + loaded.rows_quarantined == 6
    bad = loaded.quarantine.set_index("source_row")
    assert bad.loc[[6, 7], "rule"].tolist() == ["field_count", "field_count"]


def test_a_headerless_comma_file_maps_positions_too(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("c1,2024-03-01,12.50\nc2,2024-03-02,7.00\n")
    spec = SourceSpec(
        kind="files", path=str(path), header=False, columns={"customer_id": "1", "invoice_date": "column_2", "amount": 3}
    )
    assert spec.mapping(TRANSACTIONS.fields) == {"customer_id": "column_1", "invoice_date": "column_2", "amount": "column_3"}
    loaded = _load(spec)
    assert loaded.rows_read == 2 and loaded.accepted["customer_id"].tolist() == ["c1", "c2"]


def test_positions_need_header_false_and_delimiters_are_one_character(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("transactions: {kind: files, path: a.txt,\n  columns: {customer_id: 1, invoice_date: 2, amount: 4}}\n")
    with pytest.raises(SpecError, match="column 1 is a position: positions name columns only with header: false"):
        load_spec(spec)
    spec.write_text("transactions: {kind: files, path: a.txt, delimiter: spaces}\n")
    with pytest.raises(SpecError, match="delimiter must be one character or 'whitespace', got 'spaces'"):
        load_spec(spec)
    spec.write_text("transactions: {kind: files, path: a.txt, header: false, columns: {customer_id: 0}}\n")
    with pytest.raises(SpecError, match="column positions start at 1"):
        load_spec(spec)


def test_a_headerless_log_read_with_a_header_mapping_says_which_options_to_set(tmp_path):
    path = tmp_path / "cdnow.txt"
    path.write_text(CDNOW)
    spec = SourceSpec(kind="files", path=str(path), columns={"customer_id": "cust", "invoice_date": "day", "amount": "total"})
    (frame,) = list(iter_source(spec))
    with pytest.raises(SourceError) as error:
        check_columns(frame, spec, TRANSACTIONS, redact=False)
    message = str(error.value)
    assert "its fields are separated by spaces: set delimiter: whitespace" in message
    assert "the first line is a record, not a header (every field is a number or date): set header: false" in message
    # A real header of another delimiter still gets the delimiter hint alone.
    path.write_text("cust;day;total\nc1;2024-03-01;1\n")
    (frame,) = list(iter_source(spec))
    with pytest.raises(SourceError, match="one field containing a semicolon: wrong delimiter") as error:
        check_columns(frame, spec, TRANSACTIONS, redact=False)
    assert "header: false" not in str(error.value)


def test_no_history_start_by_default_and_the_earliest_day_guards_placeholders(tmp_path):
    assert IngestionSpec().history_start is None and IngestionSpec().first_day == EARLIEST_DAY
    assert IngestionSpec(history_start=date(2011, 1, 1)).first_day == date(2011, 1, 1)
    path = tmp_path / "old.csv"
    path.write_text("customer,day,total\nc1,1989-05-01,10\nc2,2009-12-31,5\nc3,1900-01-01,1\n")
    spec = SourceSpec(kind="files", path=str(path), columns={"customer_id": "customer", "invoice_date": "day", "amount": "total"})
    loaded = _load(spec)
    assert loaded.accepted["customer_id"].tolist() == ["c1", "c2"]
    assert loaded.quarantine[["source_row", "rule"]].values.tolist() == [[4, "timestamp_in_history"]]


def test_the_pytensor_compile_cache_is_the_users_whatever_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = set()
    for state in ("one", "two"):
        monkeypatch.setenv(settings.STATE_DIR_ENV, str(tmp_path / state))
        dirs.add(settings.pytensor_compiledir())
    assert dirs == {(tmp_path / "cache" / "clv_platform" / "pytensor").resolve()}
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert settings.pytensor_compiledir().is_relative_to(settings.Path.home() / ".cache")
