"""Files are read in bounded chunks: never the whole decompressed file in memory, and one past the
configured size (``limits.max_file_bytes``) is refused with one line naming the file and the rule."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from datetime import date, datetime

import pandas as pd
import pytest

from clv_platform.ingest.readers import SourceError, iter_source
from clv_platform.ingest.spec import PiiSpec, RuleLimits, SourceSpec
from clv_platform.ingest.validate import EVENTS, TRANSACTIONS, SeenRows, validate

HEADER = b"invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"
LINE = b"536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"


def _load(spec: SourceSpec, contract=TRANSACTIONS, **read):
    return validate(
        list(iter_source(spec, **read)), contract, spec, RuleLimits(), PiiSpec(), None, datetime(2026, 1, 1), date(2000, 1, 1)
    )


def _load_chunk_by_chunk(spec: SourceSpec, contract=TRANSACTIONS, chunk_rows: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each chunk validated on its own, as raw_daily stages them, the cross-row rules remembered across chunks."""
    seen = SeenRows()
    parts = [
        validate([chunk], contract, spec, RuleLimits(), PiiSpec(), None, datetime(2026, 1, 1), date(2000, 1, 1), seen)
        for chunk in iter_source(spec, chunk_rows=chunk_rows)
    ]
    return (
        pd.concat([p.accepted for p in parts], ignore_index=True),
        pd.concat([p.quarantine for p in parts], ignore_index=True),
    )


def test_gzip_bomb_is_refused_past_the_limit_without_expanding_it(tmp_path, gzip_bomb):
    bomb = gzip_bomb(tmp_path / "orders.csv.gz", expands_to=1 << 30)
    assert bomb.stat().st_size < 8 << 20  # a 1 GiB file in a few MB
    spec = SourceSpec(kind="files", path=str(bomb), preset="canonical")
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as refused:
            for _ in iter_source(spec, max_file_bytes=4 << 20, chunk_rows=2_000):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert message == (
        f"{bomb}: larger than 4.0 MiB once decompressed, the limit set by limits.max_file_bytes in the source "
        "config: raise it to read this file, or split the file (rule: file_size_within_limit)"
    )
    assert refused.value.rule == "file_size_within_limit" and "\n" not in message
    # Streamed: what was allocated at once is of the order of the limit, not of the 1 GiB the file expands to.
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB allocated while refusing"


def test_every_format_is_refused_past_the_limit(tmp_path):
    plain = tmp_path / "orders.csv"
    plain.write_bytes(HEADER + LINE * 100)
    # Distinct values: Parquet's dictionary encoding would store repeated ones once.
    frame = pd.DataFrame({"invoice_no": [str(i) for i in range(1000)], "description": [f"{i:0200d}" for i in range(1000)]})
    frame.to_parquet(tmp_path / "orders.parquet", compression="gzip")
    with zipfile.ZipFile(tmp_path / "orders.xlsx", "w", zipfile.ZIP_DEFLATED) as workbook:
        workbook.writestr("xl/worksheets/sheet1.xml", b" " * 100_000)  # a zip bomb's shape: small stored, large unzipped
    for name, what in (
        ("orders.csv", "larger than 5.9 KiB,"),
        ("orders.parquet", "uncompressed"),
        ("orders.xlsx", "once unzipped"),
    ):
        assert (tmp_path / name).stat().st_size < 100_000
        with pytest.raises(SourceError) as refused:
            list(iter_source(SourceSpec(kind="files", path=str(tmp_path / name)), max_file_bytes=6_000))
        assert refused.value.rule == "file_size_within_limit" and what in str(refused.value)
        assert str(refused.value).startswith(f"{tmp_path / name}: ")


CSV = (
    "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"  # row 1
    "1,A,plain,1,2024-03-01 10:00:00,2.0,c1,UK\n"  # 2
    "1,A,plain,1,2024-03-01 10:00:00,2.0,c1,UK\n"  # 3: duplicate of 2
    "\n"  # 4: blank
    '2,B,"two\nlines",1,2024-03-01 11:00:00,3.0,c2,UK\n'  # 5-6
    "3,C,short,1\n"  # 7: wrong field count
    "4,D,no customer,1,2024-03-01 12:00:00,4.0,,UK\n"  # 8
    "5,E,bad \xff byte,1,2024-03-01 13:00:00,5.0,c3,UK\n"  # 9: not UTF-8 once encoded as latin-1
    '2,B,"two\nlines",1,2024-03-01 11:00:00,3.0,c2,UK\n'  # 10-11: duplicate of 5, two chunks later
    "6,F,last,2,2024-03-01 14:00:00,6.0,c4,UK\n"  # 12
)


@pytest.mark.parametrize("compressed", [False, True])
def test_chunks_name_the_files_real_rows_and_load_the_same_as_one_frame(tmp_path, compressed):
    data = CSV.encode("latin-1")
    path = tmp_path / ("orders.csv.gz" if compressed else "orders.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    spec = SourceSpec(kind="files", path=str(path), preset="canonical")

    chunks = list(iter_source(spec, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 2, 2] and {c.name for c in chunks} == {str(path)}
    assert [row for c in chunks for row in c.rows] == [2, 3, 5, 7, 8, 9, 10, 12]

    whole, chunked = _load(spec, chunk_rows=0), _load(spec, chunk_rows=2)
    pd.testing.assert_frame_equal(chunked.accepted, whole.accepted)
    pd.testing.assert_frame_equal(chunked.quarantine, whole.quarantine)
    assert chunked.rows_by_source == whole.rows_by_source == {str(path): 8}
    # Rules across chunks (duplicates) and within them, each at the file's own row.
    assert dict(zip(chunked.quarantine["source_row"], chunked.quarantine["rule"], strict=True)) == {
        3: "duplicate_line",
        7: "field_count",
        8: "customer_id_present",
        9: "valid_encoding",
        10: "duplicate_line",
    }
    assert sorted(chunked.accepted["_source_row"]) == [2, 5, 12]

    accepted, quarantine = _load_chunk_by_chunk(spec)
    pd.testing.assert_frame_equal(accepted, whole.accepted)
    pd.testing.assert_frame_equal(quarantine, whole.quarantine)


def test_event_ids_are_unique_across_chunks(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "event_id,session_id,customer_id,event_type,event_timestamp\n"
        + "".join(f"e{i},s1,c1,page_view,2024-03-01 10:{i:02d}:00\n" for i in range(5))
        + "e1,s2,c2,search,2024-03-01 11:00:00\n"  # row 7: an id of chunk 1 again
        + "e0,s1,c1,page_view,2024-03-01 10:00:00\n"
    )  # row 8: a line of chunk 1 again
    spec = SourceSpec(kind="files", path=str(path))
    loaded = _load(spec, EVENTS, chunk_rows=2)
    assert loaded.quarantine[["source_row", "rule"]].values.tolist() == [[7, "event_id_unique"], [8, "duplicate_line"]]
    assert len(loaded.accepted) == 5
    accepted, quarantine = _load_chunk_by_chunk(spec, EVENTS)
    pd.testing.assert_frame_equal(accepted, loaded.accepted)
    pd.testing.assert_frame_equal(quarantine, loaded.quarantine)


def test_a_truncated_gzip_is_one_line(tmp_path):
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress(HEADER + LINE * 50_000)[:-5000])
    with pytest.raises(SourceError) as refused:
        list(iter_source(SourceSpec(kind="files", path=str(path)), chunk_rows=1000))
    assert str(refused.value).startswith(f"{path}: corrupt or truncated gzip stream (") and refused.value.rule == "readable_file"


def test_binary_content_is_refused(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(HEADER + LINE * 3 + b"\x00\x01\x02" + LINE)
    with pytest.raises(SourceError, match=r"binary content \(NUL bytes\): not a text file \(rule: readable_file\)"):
        list(iter_source(SourceSpec(kind="files", path=str(path))))


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + LINE)
    [frame] = iter_source(SourceSpec(kind="files", path=str(path)))
    assert frame.frame.columns[0] == "invoice_no"


def test_parquet_is_read_by_row_groups_with_its_row_numbers(tmp_path):
    frame = pd.DataFrame({"invoice_no": [str(i) for i in range(10)], "quantity": range(10)})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, row_group_size=4)
    (tmp_path / "orders.parquet").write_bytes(buffer.getvalue())
    chunks = list(iter_source(SourceSpec(kind="files", path=str(tmp_path / "orders.parquet")), chunk_rows=3))
    assert max(len(c) for c in chunks) <= 3
    assert [r for c in chunks for r in c.rows] == list(range(1, 11))
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in chunks], ignore_index=True), frame)
