"""The bad-input corpus: every kind of broken input, built here, with its one expected outcome.

An input either cannot be read at all, and raises a one-line ``SourceError`` naming the file, the row,
the column and the rule; or it loads, and then every record read is accepted or quarantined (with
its rule, the source's column name and the offending value), never lost:
``rows_read == len(accepted) + len(quarantine)``.

Rows are numbered as a person sees them in the file: the header is row 1 of a CSV or a sheet, the
first record is row 1 of a Parquet file.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clv_platform.ingest.readers import SourceError, iter_source
from clv_platform.ingest.spec import PiiSpec, RuleLimits, SourceSpec
from clv_platform.ingest.validate import EVENTS, TRANSACTIONS, Validated, validate

LOADED_AT = datetime(2012, 1, 1)
HISTORY_START = date(2010, 1, 1)

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = dict(
    InvoiceNo="536365",
    StockCode="85123A",
    Description="WHITE HEART",
    Quantity="6",
    InvoiceDate="2010-12-01 08:26",
    UnitPrice="2.55",
    CustomerID="17850",
    Country="United Kingdom",
)
EVENTS_HEADER = "event_id,session_id,customer_id,event_type,event_timestamp"


def line(**changes: str) -> str:
    """One UCI Online Retail line: the good line with some fields changed."""
    return ",".join({**GOOD, **changes}.values())


def csv(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def xlsx(*rows: list) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


XLSX_HEADER = HEADER.split(",")
XLSX_GOOD = ["536365", "85123A", "WHITE HEART", 6, datetime(2010, 12, 1, 8, 26), 2.55, 17850, "United Kingdom"]
GZIPPED = gzip.compress(csv(*[line(InvoiceNo=str(n)) for n in range(200)]).encode())


@dataclass
class Fails:
    """The input cannot be read: a SourceError with this rule, row and column, whose message says ``says``."""

    rule: str
    row: int | None
    column: str | None
    says: str


@dataclass
class Loads:
    """The input loads: these rows accepted, these quarantined as ``row: (rule, source column, value)``.

    Rows are numbers when the case has one file, ``"file:row"`` when it has several.
    """

    accepted: list[int | str]
    quarantined: dict[int | str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    values: dict[int | str, dict] = field(default_factory=dict)  # accepted row -> canonical column -> value
    extra_columns: list[str] = field(default_factory=list)
    empty: bool = False


def case(case_id: str, files: dict[str, str | bytes], outcome: Fails | Loads, **spec):
    return pytest.param(files, spec, outcome, id=case_id)


CASES = [
    # --- a clean file, for reference ----------------------------------------------------------------
    case("clean_file", {"a.csv": csv(line(), line(InvoiceNo="536366"))}, Loads(accepted=[2, 3])),
    # --- whole files that cannot be read ---------------------------------------------------------------
    case(
        "wrong_delimiter_semicolon",
        {"a.csv": csv(line().replace(",", ";"), header=HEADER.replace(",", ";"))},
        Fails("required_column", 1, "InvoiceNo", "one field containing a semicolon: wrong delimiter?"),
    ),
    case(
        "tab_separated_file_named_csv",
        {"a.csv": csv(line().replace(",", "\t"), header=HEADER.replace(",", "\t"))},
        Fails("required_column", 1, "InvoiceNo", "one field containing a tab: wrong delimiter?"),
    ),
    case(
        "missing_column",
        {"a.csv": csv(line().removesuffix(",United Kingdom"), header=HEADER.removesuffix(",Country"))},
        Fails("required_column", 1, "Country", "column 'Country': missing (mapped to country)"),
    ),
    case("file_without_header", {"a.csv": line() + "\n"}, Fails("required_column", 1, "InvoiceNo", "found '536365', '85123A'")),
    case("blank_line_before_header", {"a.csv": "\n" + csv(line())}, Fails("required_column", 1, "InvoiceNo", "found no columns")),
    case(
        "duplicate_header_names",
        {"a.csv": csv(line(), header=HEADER.replace("Country", "Quantity"))},
        Fails("unique_columns", 1, "Quantity", "used more than once: Quantity"),
    ),
    case(
        "binary_file_named_csv",
        {"a.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
        Fails("readable_file", None, None, "binary content (NUL bytes)"),
    ),
    case(
        "gzip_truncated_mid_stream",
        {"a.csv.gz": GZIPPED[: len(GZIPPED) // 2]},
        Fails("readable_file", None, None, "corrupt or truncated gzip stream"),
    ),
    case(
        "gzip_bad_checksum",
        {"a.csv.gz": GZIPPED[:-8] + bytes(8)},
        Fails("readable_file", None, None, "corrupt or truncated gzip stream"),
    ),
    case(
        "parquet_corrupt",
        {"a.parquet": b"PAR1 this is not a parquet file PAR1"},
        Fails("readable_file", None, None, "not a readable Parquet file"),
    ),
    case(
        "parquet_truncated",
        {"a.parquet": parquet(pa.table({"InvoiceNo": ["1"] * 50}))[:-10]},
        Fails("readable_file", None, None, "not a readable Parquet file"),
    ),
    case(
        "parquet_duplicate_column_names",
        {"a.parquet": parquet(pa.Table.from_arrays([pa.array(["1"]), pa.array(["2"])], names=["InvoiceNo", "InvoiceNo"]))},
        Fails("unique_columns", None, "InvoiceNo", "used more than once: InvoiceNo"),
    ),
    case(
        "xlsx_that_is_not_a_workbook",
        {"a.xlsx": csv(line()).encode()},
        Fails("readable_file", None, None, "not a readable XLSX workbook"),
    ),
    case(
        "xlsx_duplicate_header_names",
        {"a.xlsx": xlsx(XLSX_HEADER[:7] + ["Quantity"], XLSX_GOOD)},
        Fails("unique_columns", 1, "Quantity", "used more than once: Quantity"),
    ),
    case(
        "xlsx_header_names_equal_after_trimming",
        {"a.xlsx": xlsx(XLSX_HEADER + [" CustomerID "], XLSX_GOOD + [1])},
        Fails("unique_columns", 1, "CustomerID", "used more than once: CustomerID"),
    ),
    case(
        "amount_log_mapping_without_money",
        {"s.csv": "cust,day\nA1,2011-01-05\n"},
        Fails("required_column", None, None, "names no source column for quantity, unit_price"),
        columns={"customer_id": "cust", "invoice_date": "day"},
    ),
    case(
        "events_without_event_type_column",
        {"e.csv": csv("e1,s1,C1,2011-01-01", header=EVENTS_HEADER.replace(",event_type", ""))},
        Fails("required_column", 1, "event_type", "column 'event_type': missing (mapped to event_type)"),
        contract=EVENTS,
    ),
    case("path_that_does_not_exist", {}, Fails("input_present", None, None, "no such file or folder"), path="orders.csv"),
    # --- files with nothing in them ----------------------------------------------------------------------
    case("empty_file", {"a.csv": b""}, Loads(accepted=[], empty=True)),
    case("header_only", {"a.csv": csv()}, Loads(accepted=[], empty=True)),
    case("xlsx_header_only", {"a.xlsx": xlsx(XLSX_HEADER)}, Loads(accepted=[], empty=True)),
    # --- layout: line endings, quoting, field counts ---------------------------------------------------------
    case(
        "truncated_mid_line",
        {"a.csv": csv(line(), line(InvoiceNo="536366"))[:-20]},
        Loads(accepted=[2], quarantined={3: ("field_count", None, "536366,85123A,WHITE HEART,6,2010-12-01 08:26,2.55,1")}),
    ),
    case(
        "truncated_inside_quotes",
        {"a.csv": csv(line()) + '536366,85123A,"WHITE HE'},
        Loads(accepted=[2], quarantined={3: ("field_count", None, "536366,85123A,WHITE HE")}),
    ),
    case(
        "row_with_too_many_fields",
        {"a.csv": csv(line(), line(Country="UK,extra"), line(InvoiceNo="536367"))},
        Loads(accepted=[2, 4], quarantined={3: ("field_count", None, line(Country="UK,extra"))}),
    ),
    case(
        "row_with_too_few_fields",
        {"a.csv": csv(line(), "536366,85123A,6", line(InvoiceNo="536367"))},
        Loads(accepted=[2, 4], quarantined={3: ("field_count", None, "536366,85123A,6")}),
    ),
    case(
        "quoted_field_with_newline",
        {"a.csv": csv(line(Description='"WHITE\nHEART"'), line(CustomerID=""))},
        Loads(
            accepted=[2],
            quarantined={4: ("customer_id_present", "CustomerID", None)},
            values={2: {"description": "WHITE\nHEART"}},
        ),
    ),
    case("utf8_bom", {"a.csv": "\ufeff" + csv(line())}, Loads(accepted=[2], values={2: {"invoice_no": "536365"}})),
    case(
        "crlf_line_endings",
        {"a.csv": csv(line(), line(CustomerID="")).replace("\n", "\r\n")},
        Loads(accepted=[2], quarantined={3: ("customer_id_present", "CustomerID", None)}),
    ),
    case(
        "old_mac_cr_line_endings",
        {"a.csv": csv(line(), line(CustomerID="")).replace("\n", "\r")},
        Loads(accepted=[2], quarantined={3: ("customer_id_present", "CustomerID", None)}),
    ),
    case(
        "blank_lines_between_records",
        {"a.csv": csv(line(), "", "", line(CustomerID=""))},
        Loads(accepted=[2], quarantined={5: ("customer_id_present", "CustomerID", None)}),
    ),
    case(
        "stray_quote_inside_field",
        {"a.csv": csv(line(Description='12" RULER'))},
        Loads(accepted=[2], values={2: {"description": '12" RULER'}}),
    ),
    case(
        "whitespace_around_header_names",
        {"a.csv": csv(line(), header=HEADER.replace("CustomerID", " CustomerID "))},
        Loads(accepted=[2]),
    ),
    case("extra_column", {"a.csv": csv(line() + ",gift", header=HEADER + ",Note")}, Loads(accepted=[2], extra_columns=["Note"])),
    case("tsv_file", {"a.tsv": csv(line(), header=HEADER).replace(",", "\t")}, Loads(accepted=[2])),
    case(
        "gzip_with_a_bad_row",
        {"a.csv.gz": gzip.compress(csv(line(), line(Quantity="six")).encode())},
        Loads(accepted=[2], quarantined={3: ("quantity_integer", "Quantity", "six")}),
    ),
    # --- encodings --------------------------------------------------------------------------------------------
    case(
        "non_utf8_byte_in_description",
        {"a.csv": csv(line(), line(Description="CAF\xc9"), line(InvoiceNo="536367")).encode("latin-1")},
        Loads(accepted=[2, 4], quarantined={3: ("valid_encoding", "Description", "CAF\\xc9")}),
    ),
    case(
        "latin1_file_declared_latin1",
        {"a.csv": csv(line(Description="CAFÉ")).encode("latin-1")},
        Loads(accepted=[2], values={2: {"description": "CAFÉ"}}),
        encoding="latin-1",
    ),
    case(
        "non_utf8_byte_in_extra_header_name",
        {"a.csv": csv(line() + ",x", header=HEADER + ",Pa\xeds").encode("latin-1")},
        Loads(accepted=[2], extra_columns=["Pa\\xeds"]),
    ),
    # --- identifiers ------------------------------------------------------------------------------------------
    case(
        "ids_with_surrounding_whitespace",
        {"a.csv": csv(line(InvoiceNo=" 536365 ", CustomerID="  17850 "))},
        Loads(accepted=[2], values={2: {"customer_id": "17850", "invoice_no": "536365"}}),
    ),
    case(
        "blank_customer_id",
        {"a.csv": csv(line(CustomerID="   "), line(InvoiceNo="536366"))},
        Loads(accepted=[3], quarantined={2: ("customer_id_present", "CustomerID", None)}),
    ),
    case(
        "blank_invoice_number",
        {"a.csv": csv(line(InvoiceNo=""))},
        Loads(accepted=[], quarantined={2: ("invoice_no_present", "InvoiceNo", None)}),
    ),
    # --- quantities -------------------------------------------------------------------------------------------
    case(
        "quantity_text",
        {"a.csv": csv(line(Quantity="six"))},
        Loads(accepted=[], quarantined={2: ("quantity_integer", "Quantity", "six")}),
    ),
    case(
        "quantity_fraction",
        {"a.csv": csv(line(Quantity="3.5"))},
        Loads(accepted=[], quarantined={2: ("quantity_integer", "Quantity", "3.5")}),
    ),
    case(
        "quantity_integral_scientific", {"a.csv": csv(line(Quantity="1e3"))}, Loads(accepted=[2], values={2: {"quantity": 1000}})
    ),
    case(
        "quantity_zero",
        {"a.csv": csv(line(Quantity="0"))},
        Loads(accepted=[], quarantined={2: ("quantity_in_range", "Quantity", "0")}),
    ),
    case(
        "quantity_huge",
        {"a.csv": csv(line(Quantity="99999999"), line(Quantity="-80995"))},
        Loads(accepted=[3], quarantined={2: ("quantity_in_range", "Quantity", "99999999")}, values={3: {"quantity": -80995}}),
    ),
    case(
        "quantity_thousands_separator",
        {"a.csv": csv(line(Quantity='"1,000"'))},
        Loads(accepted=[], quarantined={2: ("quantity_integer", "Quantity", "1,000")}),
    ),
    # --- prices -----------------------------------------------------------------------------------------------
    case(
        "price_text",
        {"a.csv": csv(line(UnitPrice="abc"))},
        Loads(accepted=[], quarantined={2: ("unit_price_numeric", "UnitPrice", "abc")}),
    ),
    case(
        "negative_price",
        {"a.csv": csv(line(UnitPrice="-2.55"))},
        Loads(accepted=[], quarantined={2: ("unit_price_non_negative", "UnitPrice", "-2.55")}),
    ),
    case(
        "negative_price_on_documented_adjustment",
        {"a.csv": csv(line(InvoiceNo="A563185", StockCode="B", Description="Adjust bad debt", UnitPrice="-11062.06"))},
        Loads(accepted=[2], values={2: {"unit_price": -11062.06}}),
    ),
    case(
        "price_nan_and_inf",
        {"a.csv": csv(line(UnitPrice="NaN"), line(UnitPrice="inf"))},
        Loads(
            accepted=[],
            quarantined={2: ("unit_price_numeric", "UnitPrice", "NaN"), 3: ("unit_price_numeric", "UnitPrice", "inf")},
        ),
    ),
    case(
        "price_absurd",
        {"a.csv": csv(line(UnitPrice="1e12"), line(UnitPrice="0"))},
        Loads(accepted=[3], quarantined={2: ("unit_price_in_range", "UnitPrice", "1e12")}),
    ),
    # --- dates ------------------------------------------------------------------------------------------------
    case(
        "date_in_future",
        {"a.csv": csv(line(InvoiceDate="2030-01-01 00:00"))},
        Loads(accepted=[], quarantined={2: ("timestamp_not_in_future", "InvoiceDate", "2030-01-01 00:00")}),
    ),
    case(
        "date_before_history_start",
        {"a.csv": csv(line(InvoiceDate="2009-12-31 23:59"))},
        Loads(accepted=[], quarantined={2: ("timestamp_in_history", "InvoiceDate", "2009-12-31 23:59")}),
    ),
    case(
        "date_impossible",
        {"a.csv": csv(line(InvoiceDate="31/02/2011"), line(InvoiceDate="2011-02-31"))},
        Loads(
            accepted=[],
            quarantined={
                2: ("timestamp_parseable", "InvoiceDate", "31/02/2011"),
                3: ("timestamp_parseable", "InvoiceDate", "2011-02-31"),
            },
        ),
    ),
    case(
        "date_missing",
        {"a.csv": csv(line(InvoiceDate=""))},
        Loads(accepted=[], quarantined={2: ("timestamp_parseable", "InvoiceDate", None)}),
    ),
    case(
        "mixed_date_formats_iso_only",
        {"a.csv": csv(line(), line(InvoiceDate="12/1/2010 8:26"))},
        Loads(accepted=[2], quarantined={3: ("timestamp_parseable", "InvoiceDate", "12/1/2010 8:26")}),
    ),
    case(
        "mixed_date_formats_both_listed",
        {"a.csv": csv(line(), line(InvoiceDate="12/1/2010 8:26"))},
        Loads(
            accepted=[2, 3],
            values={2: {"invoice_date": pd.Timestamp("2010-12-01 08:26")}, 3: {"invoice_date": pd.Timestamp("2010-12-01 08:26")}},
        ),
        timestamp_formats=["%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M"],
    ),
    case(
        "iso_timestamp_with_offset",
        {"a.csv": csv(line(InvoiceDate="2011-06-01T10:00:00+02:00"))},
        Loads(accepted=[2], values={2: {"invoice_date": pd.Timestamp("2011-06-01 08:00")}}),
    ),
    # --- duplicates -------------------------------------------------------------------------------------------
    case(
        "duplicate_line_in_one_file",
        {"a.csv": csv(line(), line(), line(Quantity="7"))},
        Loads(accepted=[2, 4], quarantined={3: ("duplicate_line", None, None)}),
    ),
    case(
        "duplicate_lines_across_two_files",
        {"a.csv": csv(line(), line(InvoiceNo="536366")), "b.csv": csv(line(InvoiceNo="536366"), line(InvoiceNo="536367"))},
        Loads(accepted=["a.csv:2", "a.csv:3", "b.csv:3"], quarantined={"b.csv:2": ("duplicate_line", None, None)}),
    ),
    case("empty_file_next_to_a_good_one", {"a.csv": b"", "b.csv": csv(line())}, Loads(accepted=["b.csv:2"], empty=True)),
    # --- spreadsheets and Parquet: typed cells ------------------------------------------------------------------
    case(
        "xlsx_typed_cells_blank_row_and_bad_rows",
        {
            "a.xlsx": xlsx(
                XLSX_HEADER, XLSX_GOOD, [None] * 8, XLSX_GOOD[:3] + ["six"] + XLSX_GOOD[4:], XLSX_GOOD[:6] + [None, "France"]
            )
        },
        Loads(
            accepted=[2],
            quarantined={4: ("quantity_integer", "Quantity", "six"), 5: ("customer_id_present", "CustomerID", None)},
            values={2: {"customer_id": "17850", "quantity": 6, "invoice_date": pd.Timestamp("2010-12-01 08:26")}},
        ),
    ),
    case(
        "parquet_typed_columns",
        {
            "a.parquet": parquet(
                pa.table(
                    {
                        "InvoiceNo": ["1", "2", "3"],
                        "StockCode": ["a"] * 3,
                        "Description": ["d"] * 3,
                        "Quantity": pa.array([6, 2, 1], pa.int32()),
                        "InvoiceDate": pa.array([date(2010, 12, 1), date(2030, 1, 1), date(2011, 1, 1)]),
                        "UnitPrice": pa.array([Decimal("2.55"), Decimal("1.00"), Decimal("3.00")]),
                        "CustomerID": pa.array([17850, 12346, None], pa.int64()),
                        "Country": ["UK"] * 3,
                    }
                )
            )
        },
        Loads(
            accepted=[1],
            quarantined={
                2: ("timestamp_not_in_future", "InvoiceDate", "2030-01-01"),
                3: ("customer_id_present", "CustomerID", None),
            },
            values={1: {"customer_id": "17850", "unit_price": 2.55}},
        ),
    ),
    case(
        "parquet_timestamp_with_time_zone",
        {
            "a.parquet": parquet(
                pa.table(
                    {
                        "InvoiceNo": ["1"],
                        "StockCode": ["a"],
                        "Description": ["d"],
                        "Quantity": [1],
                        "InvoiceDate": pa.array([datetime(2010, 12, 1, 10)], pa.timestamp("us", tz="Europe/Paris")),
                        "UnitPrice": [1.0],
                        "CustomerID": ["x"],
                        "Country": ["UK"],
                    }
                )
            )
        },
        Loads(accepted=[1], values={1: {"invoice_date": pd.Timestamp("2010-12-01 10:00")}}),
    ),
    # --- a log of customer, date and amount only -------------------------------------------------------------------
    case(
        "amount_log_return_and_bad_amounts",
        {"s.csv": "cust,day,total\nA1,2011-01-05,10.50\nA1,2011-01-06,-4.00\nA2,2011-01-07,abc\nA3,2011-01-07,\n"},
        Loads(
            accepted=[2, 3],
            quarantined={4: ("amount_numeric", "total", "abc"), 5: ("amount_numeric", "total", None)},
            values={
                2: {"quantity": 1, "unit_price": 10.5, "invoice_no": "#A1@20110105T000000"},
                3: {"quantity": -1, "unit_price": 4.0, "invoice_no": "C#A1@20110106T000000"},
            },
        ),
        columns={"customer_id": "cust", "invoice_date": "day", "amount": "total"},
    ),
    # The made-up invoice number of a purchase must not start with C, the cancellation mark, whatever the customer id.
    case(
        "amount_log_customer_ids_starting_with_c",
        {"s.csv": "cust,day,total\nc1,2011-01-05,10.50\nCUST-7,2011-01-06,-4.00\n"},
        Loads(
            accepted=[2, 3],
            values={
                2: {"quantity": 1, "invoice_no": "#c1@20110105T000000"},
                3: {"quantity": -1, "invoice_no": "C#CUST-7@20110106T000000"},
            },
        ),
        columns={"customer_id": "cust", "invoice_date": "day", "amount": "total"},
    ),
    # --- behavioural events ----------------------------------------------------------------------------------------
    case(
        "events_unknown_type_and_duplicate_ids",
        {
            "e.csv": csv(
                "e1,s1,C1,page_view,2011-01-01 10:00",
                "e2,s1,C1,checkout,2011-01-01 10:01",
                "e1,s1,C2,search,2011-01-01 10:02",
                "e1,s1,C1,page_view,2011-01-01 10:00",
                "e3,s1,C1,ADD_TO_CART,2011-01-01 10:03",
                header=EVENTS_HEADER,
            )
        },
        Loads(
            accepted=[2, 6],
            quarantined={
                3: ("event_type_known", "event_type", "checkout"),
                4: ("event_id_unique", "event_id", "e1"),
                5: ("duplicate_line", None, None),
            },
            values={6: {"event_type": "add_to_cart"}},
        ),
        contract=EVENTS,
    ),
]


def _load(
    tmp_path: Path, files: dict[str, str | bytes], spec: dict, pii: PiiSpec | None = None, key: bytes | None = None
) -> Validated:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    spec = dict(spec)
    contract = spec.pop("contract", TRANSACTIONS)
    if contract is TRANSACTIONS and "columns" not in spec:
        spec["preset"] = "online_retail"
    source = SourceSpec(kind="files", path=str(tmp_path / spec.pop("path", "")), **spec)
    return validate(list(iter_source(source)), contract, source, RuleLimits(), pii or PiiSpec(), key, LOADED_AT, HISTORY_START)


def test_the_corpus_has_at_least_thirty_kinds_of_bad_input():
    assert len({p.id for p in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize(("files", "spec", "outcome"), [c for c in CASES if isinstance(c.values[2], Fails)])
def test_unreadable_input_is_a_one_line_error_naming_file_row_column_and_rule(tmp_path, files, spec, outcome):
    with pytest.raises(SourceError) as raised:
        _load(tmp_path, files, spec)
    error, message = raised.value, str(raised.value)
    assert (error.rule, error.row, error.column) == (outcome.rule, outcome.row, outcome.column)
    assert "\n" not in message and message.endswith(f"(rule: {outcome.rule})")
    assert message.startswith(str(tmp_path / (next(iter(files), None) or spec["path"])))
    if outcome.row is not None:
        assert f": row {outcome.row}:" in message
    if outcome.column is not None:
        assert f": column '{outcome.column}':" in message
    assert outcome.says in message


@pytest.mark.parametrize(("files", "spec", "outcome"), [c for c in CASES if isinstance(c.values[2], Loads)])
def test_every_record_read_is_accepted_or_quarantined_with_its_rule(tmp_path, files, spec, outcome):
    result = _load(tmp_path, files, spec)
    many = len(files) > 1

    def where(source: str, row: int) -> int | str:
        return f"{Path(source).name}:{row}" if many else int(row)

    accepted = [where(s, r) for s, r in zip(result.accepted["_source"], result.accepted["_source_row"], strict=True)]
    quarantine = result.quarantine.astype(object).where(result.quarantine.notna(), None)
    quarantined = {where(q.source, q.source_row): (q.rule, q.column_name, q.value) for q in quarantine.itertuples()}
    assert sorted(accepted, key=str) == sorted(outcome.accepted, key=str)
    assert quarantined == outcome.quarantined
    assert result.rows_read == len(result.accepted) + len(result.quarantine) == sum(result.rows_by_source.values())
    assert result.by_rule == dict(Counter(rule for rule, _, _ in outcome.quarantined.values()))
    for row, expected in outcome.values.items():
        got = result.accepted.iloc[accepted.index(row)]
        assert {column: got[column] for column in expected} == expected
    assert sorted(c for columns in result.extra_columns.values() for c in columns) == outcome.extra_columns
    assert bool(result.empty_sources) == outcome.empty


def test_an_unclosed_quote_swallows_the_rest_of_the_file_into_one_quarantined_record(tmp_path):
    later = [line(InvoiceNo="536366"), line(InvoiceNo="536367")]
    result = _load(tmp_path, {"a.csv": csv(line(Description='"OPEN'), *later)}, {})
    assert result.rows_read == len(result.quarantine) == 1 and result.accepted.empty
    swallowed = result.quarantine.iloc[0]
    assert (swallowed.source_row, swallowed.rule) == (2, "field_count")
    assert all(text in swallowed.value for text in later)  # the later lines are kept, not lost


# --- privacy --------------------------------------------------------------------------------------------------

RAW_ID = "48213"
HASHED = PiiSpec(columns={"customer_id": "hmac"})


def test_a_hashed_customer_id_appears_raw_neither_in_accepted_nor_in_quarantine(tmp_path):
    files = {
        "a.csv": csv(
            line(CustomerID=RAW_ID), line(CustomerID=RAW_ID, Quantity="x"), line(CustomerID=RAW_ID, Country="UK,extra")
        ).encode()
        + line(CustomerID=RAW_ID + "\xe9", InvoiceNo="536368").encode("latin-1")
        + b"\n"
    }
    result = _load(tmp_path, files, {}, pii=HASHED, key=b"test-key")

    assert result.accepted["_source_row"].tolist() == [2]
    assert len(result.accepted.customer_id.iloc[0]) == 32
    quarantine = result.quarantine.fillna({"column_name": "-"})
    assert quarantine[["source_row", "rule", "column_name"]].values.tolist() == [
        [3, "quantity_integer", "Quantity"],
        [4, "field_count", "-"],
        [5, "valid_encoding", "CustomerID"],
    ]
    assert result.rows_read == len(result.accepted) + len(result.quarantine)
    stored = result.accepted.astype(str).to_csv() + result.quarantine.astype(str).to_csv()
    assert RAW_ID not in stored
    ids = [json.loads(record)["customer_id"] for record in result.quarantine.record]
    # A record with the wrong number of fields keeps no field: any of them may be the id, shifted.
    assert [i if i is None else bool(re.fullmatch("[0-9a-f]{32}", i)) for i in ids] == [True, None, True]


def test_a_file_without_header_does_not_show_its_first_record_when_ids_are_hashed(tmp_path):
    with pytest.raises(SourceError, match="names not shown") as raised:
        _load(tmp_path, {"a.csv": line(CustomerID=RAW_ID) + "\n"}, {}, pii=HASHED, key=b"test-key")
    assert raised.value.rule == "required_column" and RAW_ID not in str(raised.value)


def test_hashing_without_a_key_is_a_clear_error(tmp_path):
    expected = r"^PII column 'customer_id' is to be hashed but \$CLV_PII_KEY \(the HMAC key\) is not set$"
    with pytest.raises(ValueError, match=expected):
        _load(tmp_path, {"a.csv": csv(line())}, {}, pii=HASHED, key=None)
