"""What a user reads when a file is almost right: a header in other case or spacing, UTF-16, bytes of another
encoding, US-style dates, whole-record rules; and what the spec's privacy keeps out of every one of those words."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from clv_platform.ingest.landing import landed_days
from clv_platform.ingest.readers import SourceError, iter_source, sniff_encoding
from clv_platform.ingest.spec import IngestionSpec, PiiSpec, RuleLimits, SourceSpec, load_spec
from clv_platform.ingest.validate import TRANSACTIONS, Validated, describe_quarantined, validate

LOADED_AT = datetime(2012, 1, 1)
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINE = "536365,85123A,WHITE HEART,6,2010-12-01 08:26,2.55,17850,United Kingdom"


def _load(tmp_path: Path, content: str | bytes, pii: PiiSpec | None = None, key: bytes | None = None, **spec) -> Validated:
    path = tmp_path / "a.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    source = SourceSpec(kind="files", path=str(path), preset="online_retail", **spec)
    return validate(
        list(iter_source(source)), TRANSACTIONS, source, RuleLimits(), pii or PiiSpec(), key, LOADED_AT, date(2010, 1, 1)
    )


# --- header names ----------------------------------------------------------------------------------------------


def test_header_names_match_whatever_their_case_and_spaces(tmp_path):
    header = "invoiceno,STOCKCODE,Description , quantity,Invoice Date,unit price,customer id,country"
    result = _load(tmp_path, f"{header}\n{LINE}\n")
    assert result.rows_read == len(result.accepted) == 1 and result.quarantine.empty
    assert result.accepted[["invoice_no", "customer_id", "unit_price"]].iloc[0].tolist() == ["536365", "17850", 2.55]
    assert result.extra_columns == {}


def test_the_landing_zone_dates_a_file_whose_header_differs_in_case(tmp_path):
    (tmp_path / "a.csv").write_text(f"{HEADER.lower()}\n{LINE}\n")
    spec = IngestionSpec(transactions=SourceSpec(kind="files", path=str(tmp_path / "a.csv"), preset="online_retail"))
    frames = iter_source(spec.transactions)
    assert landed_days(frames, spec, LOADED_AT) == (date(2010, 12, 1), date(2010, 12, 1))


def test_two_columns_matching_one_name_are_an_error_naming_both(tmp_path):
    header = HEADER.replace("CustomerID", "customerid") + ",CUSTOMER ID"
    with pytest.raises(SourceError) as raised:
        _load(tmp_path, f"{header}\n{LINE},17851\n")
    assert (raised.value.rule, raised.value.row, raised.value.column) == ("ambiguous_column", 1, "CustomerID")
    assert str(raised.value) == (
        f"{tmp_path / 'a.csv'}: row 1: column 'CustomerID': 'customerid' and 'CUSTOMER ID' match it "
        "when case and spaces are ignored: rename one, or map the exact name in the source spec "
        "(rule: ambiguous_column)"
    )


def test_an_exact_name_wins_over_one_that_differs_in_case(tmp_path):
    result = _load(tmp_path, f"{HEADER},customerid\n{LINE},99999\n")
    assert result.accepted["customer_id"].tolist() == ["17850"]
    assert result.extra_columns == {str(tmp_path / "a.csv"): ["customerid"]}


# --- encodings ---------------------------------------------------------------------------------------------------

TEXT = f"{HEADER}\n{LINE.replace('WHITE HEART', 'CAFÉ CRÈME')}\n"


@pytest.mark.parametrize(
    ("codec", "says"),
    [
        ("utf-16", "the file is UTF-16 text (by its byte-order mark), not utf-8: set encoding: utf-16 (or encoding: auto)"),
        ("utf-16-le", "the file is UTF-16 text (NUL bytes between its characters), not utf-8: set encoding: utf-16-le"),
        ("utf-16-be", "the file is UTF-16 text (NUL bytes between its characters), not utf-8: set encoding: utf-16-be"),
        ("utf-32", "the file is UTF-32 text (by its byte-order mark), not utf-8: set encoding: utf-32 (or encoding: auto)"),
    ],
)
def test_a_utf16_or_utf32_file_read_as_utf8_is_named_with_the_setting_to_use(tmp_path, codec, says):
    with pytest.raises(SourceError) as raised:
        _load(tmp_path, TEXT.encode(codec))
    message = str(raised.value)
    assert raised.value.rule == "encoding" and says in message and "binary" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("codec", "declared"),
    [
        ("utf-16", "utf-16"),
        ("utf-16-be", "utf-16"),
        ("utf-16", "auto"),
        ("utf-16-be", "auto"),
        ("utf-32", "auto"),
        ("utf-8-sig", "auto"),
        ("utf-8", "auto"),
    ],
)
def test_a_unicode_file_loads_with_its_encoding_declared_or_auto(tmp_path, codec, declared):
    result = _load(tmp_path, TEXT.encode(codec), encoding=declared)
    assert result.accepted["description"].tolist() == ["CAFÉ CRÈME"] and result.quarantine.empty


def test_plain_binary_is_still_not_text(tmp_path):
    assert sniff_encoding(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") is None
    with pytest.raises(SourceError, match="binary content"):
        _load(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_bytes_of_another_encoding_are_quarantined_naming_the_declared_one_and_what_to_set(tmp_path):
    result = _load(tmp_path, f"{HEADER}\n{LINE}\n".encode() + LINE.replace("WHITE HEART", "CAFÉ").encode("cp1252") + b"\n")
    (row,) = result.quarantine.to_dict("records")
    assert (row["rule"], row["column_name"]) == ("valid_encoding", "Description")
    assert row["message"] == (
        "bytes that are not valid in the file's encoding: 'CAF\\\\xc9' (the file is read as utf-8; if it "
        "has another encoding, name it in the source spec, e.g. encoding: cp1252 or encoding: latin-1)"
    )


def test_an_unknown_encoding_in_the_spec_is_one_line(tmp_path):
    (tmp_path / "source.yaml").write_text("transactions: {kind: files, path: a.csv, encoding: utf-9}\n")
    with pytest.raises(ValueError) as raised:
        load_spec(tmp_path / "source.yaml")
    assert "unknown encoding 'utf-9'" in str(raised.value) and "\n" not in str(raised.value)


# --- timestamps --------------------------------------------------------------------------------------------------

US_LINES = [LINE.replace("2010-12-01 08:26", stamp) for stamp in ("12/1/2010 8:26", "12/13/2010 17:05", "1/2/2011 9:00")]


def test_us_style_dates_are_quarantined_naming_the_format_and_the_setting(tmp_path):
    result = _load(tmp_path, "\n".join([HEADER, *US_LINES]) + "\n")
    assert result.accepted.empty and set(result.quarantine["rule"]) == {"timestamp_parseable"}
    first = result.quarantine.iloc[0]
    assert first["message"] == (
        "timestamp is missing or not in an accepted format: '12/1/2010 8:26' (most timestamps look like "
        "'%m/%d/%Y %H:%M': add timestamp_formats: ['%m/%d/%Y %H:%M'] to the source spec)"
    )
    fixed = _load(tmp_path, "\n".join([HEADER, *US_LINES]) + "\n", timestamp_formats=["%m/%d/%Y %H:%M"])
    assert len(fixed.accepted) == 3 and fixed.quarantine.empty


def test_dates_ambiguous_between_month_and_day_first_name_both(tmp_path):
    result = _load(tmp_path, "\n".join([HEADER, US_LINES[0], US_LINES[2]]) + "\n")
    assert result.quarantine.iloc[0]["message"].endswith(
        "add timestamp_formats: ['%m/%d/%Y %H:%M'] to the source spec (or ['%d/%m/%Y %H:%M'], which reads them as well))"
    )


def test_a_few_bad_timestamps_get_no_format_hint(tmp_path):
    result = _load(tmp_path, "\n".join([HEADER, LINE, LINE.replace("536365", "536366"), US_LINES[0]]) + "\n")
    assert result.quarantine["message"].tolist() == ["timestamp is missing or not in an accepted format: '12/1/2010 8:26'"]


# --- whole-record rules ------------------------------------------------------------------------------------------


def test_whole_record_rules_name_no_column(tmp_path):
    result = _load(tmp_path, "\n".join([HEADER, LINE, LINE, LINE + ",extra"]) + "\n")
    rows = result.quarantine.to_dict("records")
    assert [(r["rule"], r["column_name"]) for r in rows] == [("duplicate_line", None), ("field_count", None)]
    lines = [describe_quarantined(r) for r in rows]
    assert lines[0] == f"{tmp_path / 'a.csv'}: row 3: exact duplicate of an earlier line (rule: duplicate_line)"
    assert all("column" not in line and "nan" not in line and "None" not in line for line in lines)


# --- privacy: nothing of a dropped or hashed field in anything about a bad line ----------------------------------

PII_SPECS = {
    "hmac_and_drop": {"customer_id": "hmac", "description": "drop", "country": "drop"},
    "drop_only": {"description": "drop", "country": "drop"},
    "hmac_only": {"customer_id": "hmac", "stock_code": "hmac"},
}


@pytest.mark.parametrize("pii", PII_SPECS.values(), ids=PII_SPECS.keys())
def test_no_text_of_a_dropped_or_hashed_field_is_kept_for_any_kind_of_bad_line(tmp_path, pii_bad_lines, pii):
    bad = pii_bad_lines(pii)
    path = tmp_path / "a.csv"
    path.write_bytes(bad.content)
    source = SourceSpec(kind="files", path=str(path), preset="online_retail")
    key = b"test-key" if "hmac" in pii.values() else None
    result = validate(
        list(iter_source(source)), TRANSACTIONS, source, RuleLimits(), PiiSpec(columns=pii), key, LOADED_AT, date(2010, 1, 1)
    )
    assert result.rows_read == bad.records == len(result.accepted) + len(result.quarantine)
    assert set(bad.rules) <= set(result.quarantine["rule"])
    stored = result.accepted.astype(str).to_csv() + result.quarantine.astype(str).to_csv()
    stored += "".join(describe_quarantined(row) for row in result.quarantine.to_dict("records"))
    assert bad.sentinel not in stored and bad.sentinel.encode() not in stored.encode("utf-8", "surrogateescape")
    field_count = result.quarantine[result.quarantine["rule"] == "field_count"]
    assert field_count["value"].isna().all()
    assert set(field_count["message"]) == {
        "record has the wrong number of fields (the line is not shown: the spec hashes or drops PII)"
    }
    assert all(set(json.loads(r).values()) == {None} for r in field_count["record"])


def test_a_misaligned_customer_feed_line_keeps_no_raw_id_in_another_column(tmp_path):
    import pandas as pd

    from clv_platform.ingest.customers import customer_feed

    # The country left out: the hashed id's raw value would land under 'country'.
    (tmp_path / "customers.csv").write_text(
        "signup_date,country,customer_id,acquisition_channel\n2011-01-01,France,C1,email\n2011-01-02,ZQXS-C2,email\n"
    )
    spec = IngestionSpec(
        transactions=SourceSpec(kind="files", path=str(tmp_path / "t.csv")),
        customers=SourceSpec(kind="files", path=str(tmp_path / "customers.csv")),
        pii=PiiSpec(columns={"customer_id": "hmac"}),
    )
    derived = pd.DataFrame(columns=["customer_id", "country", "acquisition_channel", "signup_date"])
    customers, dropped = customer_feed(spec, b"test-key", derived)
    assert "ZQXS" not in customers.astype(str).to_csv()
    assert len(customers) == 1 and dropped["without_customer_id"] == 1
