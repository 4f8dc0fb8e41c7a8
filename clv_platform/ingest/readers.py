"""Read a source as delivered: files (CSV, gzip, Parquet, XLSX), S3 objects, PostgreSQL, the generator.

A reader returns :class:`SourceFrame` objects: the records with the source's own column names,
text formats as strings, and the row number of every record in its file (the header is row 1),
so that every later error and quarantine entry can name file, row and column. A record with the
wrong number of fields is kept (its raw line in ``_bad_line``) so that validation quarantines it
instead of losing it. Whole-file failures raise :class:`SourceError`, a one-line message.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from clv_platform.ingest.spec import SourceSpec

BAD_LINE = "_bad_line"
# What a folder or an S3 prefix holds as data. Not .txt: a README.txt or notes.txt beside the data
# is common and would fail every load as a CSV without the mapped columns; name a .txt log by its
# path or a glob instead.
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".xlsx")

csv.field_size_limit(sys.maxsize)


class SourceError(ValueError):
    """An input that cannot be read at all; the message names source, row, column and rule."""

    def __init__(self, source: str, rule: str, message: str, row: int | None = None, column: str | None = None):
        self.source, self.rule, self.row, self.column = source, rule, row, column
        where = "".join([f": row {row}" if row is not None else "", f": column '{column}'" if column else ""])
        message = " ".join(message.split())  # one line, whatever the underlying library said
        super().__init__(f"{source}{where}: {message} (rule: {rule})")


@dataclass
class SourceFrame:
    """Records of one file, object or query, with the source's column names."""

    name: str
    frame: pd.DataFrame
    rows: np.ndarray  # row number of each record in the source (1-based, header = 1 for text and xlsx)
    undecodable: bool = False  # text with bytes invalid in the declared encoding (kept as surrogates)

    def __len__(self) -> int:
        return len(self.frame)


def _format_of(name: str, declared: str) -> str:
    if declared != "auto":
        return declared
    lowered = name.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith(".xlsx"):
        return "xlsx"
    return "csv"


def read_bytes(data: bytes, name: str, spec: SourceSpec) -> SourceFrame:
    """Parse one file's bytes by its format (``spec.format`` or the name's suffix)."""
    fmt = _format_of(name, spec.format)
    if fmt == "parquet":
        return _read_parquet(data, name)
    if fmt == "xlsx":
        return _read_xlsx(data, name, spec.sheet)
    return _read_csv(data, name, spec.delimiter if not name.lower().endswith((".tsv", ".tsv.gz")) else "\t", spec.encoding)


def _read_csv(data: bytes, name: str, delimiter: str, encoding: str) -> SourceFrame:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise SourceError(name, "readable_file", f"corrupt or truncated gzip stream ({error})") from None
    encoding = text_encoding(name, data[:4096], encoding)
    # Undecodable bytes survive as surrogates; validation quarantines the rows that hold them.
    text = data.decode(encoding, errors="surrogateescape")
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise SourceError(name, "readable_file", "binary content (NUL bytes): not a text file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise SourceError(name, "readable_file", str(error), row=1) from None
    if header is None:
        return SourceFrame(name, pd.DataFrame(), np.array([], dtype=np.int64))
    header = [h.strip() for h in header]
    _check_unique(name, header)
    records, rows, bad = [], [], []
    width, previous_end = len(header), reader.line_num
    try:
        for record in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not record or record == [""]:
                continue  # blank line
            if len(record) != width:
                bad.append(delimiter.join(record))
                record = (record + [""] * width)[:width]
            else:
                bad.append(None)
            records.append(record)
            rows.append(start)
    except csv.Error as error:
        raise SourceError(name, "readable_file", str(error), row=previous_end + 1) from None
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame[BAD_LINE] = pd.Series(bad, dtype=object)
    undecodable = not text.isascii() and re.search("[\udc80-\udcff]", text) is not None
    return SourceFrame(name, frame, np.asarray(rows, dtype=np.int64), undecodable=undecodable)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def sniff_encoding(head: bytes) -> str | None:
    """The Unicode encoding a file's first bytes show: its byte-order mark, or the NUL bytes that mostly-ASCII
    text has in UTF-16 or UTF-32 (every second or every 2nd-4th byte); None when they show neither.

    >>> sniff_encoding("InvoiceNo,Quantity".encode("utf-16")), sniff_encoding("InvoiceNo".encode("utf-16-be"))
    ('utf-16-le', 'utf-16-be')
    """
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    head = head[: len(head) - len(head) % 4]
    if len(head) < 8 or b"\x00" not in head:
        return None
    lanes = [head[i::4].count(0) / (len(head) // 4) for i in range(4)]  # share of NUL bytes at each offset mod 4
    nul, text = (lambda *i: all(lanes[k] > 0.9 for k in i)), (lambda *i: all(lanes[k] < 0.1 for k in i))
    if nul(1, 2, 3) and text(0):
        return "utf-32-le"
    if nul(0, 1, 2) and text(3):
        return "utf-32-be"
    if nul(1, 3) and text(0, 2):
        return "utf-16-le"
    if nul(0, 2) and text(1, 3):
        return "utf-16-be"
    return None


def text_encoding(name: str, head: bytes, declared: str) -> str:
    """The encoding to decode a text file with: the declared one, or the sniffed one for ``encoding: auto``.

    Raises :class:`SourceError` when the file is UTF-16 or UTF-32 and the spec declares another encoding:
    decoded as UTF-8 it would be NUL bytes between letters, and no header would match.
    """
    sniffed = sniff_encoding(head)
    if declared == "auto":
        return sniffed or "utf-8"
    if sniffed is None or sniffed == "utf-8-sig":
        return declared
    family = sniffed[:6]
    if codecs.lookup(declared).name.startswith(family):
        # 'utf-16' alone: the byte order the file shows (without a mark Python would assume the machine's).
        return sniffed if codecs.lookup(declared).name == family else declared
    bom = head.startswith(tuple(b for b, _ in _BOMS))
    suggested = family if bom else sniffed  # without a byte-order mark the byte order must be named
    how = "by its byte-order mark" if bom else "NUL bytes between its characters"
    raise SourceError(name, "encoding", f"the file is {family.upper()} text ({how}), not {declared}: "
                                        f"set encoding: {suggested} (or encoding: auto) in the source spec")


def _read_parquet(data: bytes, name: str) -> SourceFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        _check_unique(name, file.schema_arrow.names, row=None)
        table = file.read()
    except (pa.ArrowInvalid, OSError) as error:
        raise SourceError(name, "readable_file", f"not a readable Parquet file ({error})") from None
    frame = table.to_pandas()
    return SourceFrame(name, frame, np.arange(1, len(frame) + 1, dtype=np.int64))


def _check_unique(name: str, header: list[str], row: int | None = 1) -> None:
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise SourceError(name, "unique_columns", f"column name(s) used more than once: {', '.join(dupes)}",
                          row=row, column=", ".join(dupes))


def _read_xlsx(data: bytes, name: str, sheet: str | int) -> SourceFrame:
    try:
        # header=None: pandas would rename a repeated header ('Quantity.1') instead of letting us reject it.
        cells = pd.read_excel(io.BytesIO(data), sheet_name=sheet, header=None, dtype=object, engine="openpyxl")
    except Exception as error:  # openpyxl raises many types for a broken workbook
        raise SourceError(name, "readable_file", f"not a readable XLSX workbook ({type(error).__name__}: {error})") from None
    if cells.empty:
        return SourceFrame(name, pd.DataFrame(), np.array([], dtype=np.int64))
    header = [f"Unnamed: {i}" if pd.isna(c) else str(c).strip() for i, c in enumerate(cells.iloc[0])]
    _check_unique(name, header)
    frame = cells.iloc[1:].set_axis(header, axis=1)
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    filled = frame.notna().any(axis=1).to_numpy()  # blank rows are skipped, as blank lines in a CSV
    return SourceFrame(name, frame[filled].reset_index(drop=True), rows[filled])


def _is_data_file(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def list_files(path: str) -> list[Path]:
    """The files a ``files`` source names: one file, the data files of a folder, or a glob's matches."""
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        return sorted(p for p in Path(expanded).iterdir() if p.is_file() and _is_data_file(p.name))
    if glob.has_magic(expanded):
        return sorted(Path(p) for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
    if os.path.isfile(expanded):
        return [Path(expanded)]
    raise SourceError(path, "input_present", "no such file or folder")


def list_s3_objects(s3_client, bucket: str, prefix: str) -> list[dict]:
    """Data objects under ``s3://bucket/prefix``: dicts with Key, Size, ETag, LastModified."""
    objects = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        objects += [o for o in page.get("Contents", []) if _is_data_file(o["Key"])]
    return sorted(objects, key=lambda o: o["Key"])


def read_s3_object(s3_client, bucket: str, key: str, spec: SourceSpec) -> SourceFrame:
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return read_bytes(body, f"s3://{bucket}/{key}", spec)


def read_postgres(spec: SourceSpec, timestamp_column: str, start: datetime | None = None, end: datetime | None = None) -> SourceFrame:
    """Rows of a table or query, only those with ``start <= timestamp < end`` when given (incremental reads).

    Columns keep PostgreSQL's types as psycopg loads them, except ``numeric``, which arrives as float
    (as from Parquet) rather than ``Decimal``. The session runs in UTC, the platform's clock for
    zone-aware values: a ``timestamptz`` column is windowed by UTC days whatever the server's time zone.
    Errors never repeat the DSN's password.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.numeric import FloatLoader

    dsn = os.environ.get(spec.dsn_env)
    if not dsn:
        raise SourceError(f"postgresql ({spec.dsn_env})", "connection", f"environment variable {spec.dsn_env} is not set")
    try:
        password = str(conninfo_to_dict(dsn).get("password") or "")
    except psycopg.Error:
        # libpq's parse errors quote pieces of the string, which may be the password.
        raise SourceError(f"postgresql ({spec.dsn_env})", "connection",
                          f"{spec.dsn_env} is not a valid connection string") from None
    if spec.table:
        parts = [sql.Identifier(p) for p in spec.table.split(".")]
        relation = sql.SQL(".").join(parts)
        name = f"postgresql:{spec.table}"
    else:
        # The newline ends a trailing "-- comment"; a trailing ';' would end the statement.
        relation = sql.SQL("({}\n) as source_query").format(sql.SQL(spec.query.strip().rstrip(";")))
        name = "postgresql:query"
    ts = sql.Identifier(timestamp_column)
    # Bounds are literals, not parameters: with parameters psycopg would read a '%' in the query as one.
    conditions = [sql.SQL("{} >= {}").format(ts, sql.Literal(start))] if start is not None else []
    conditions += [sql.SQL("{} < {}").format(ts, sql.Literal(end))] if end is not None else []
    where = sql.SQL(" where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL("select * from {}{} order by {}").format(relation, where, ts)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as con:
            # A source is read, never written: the server refuses any write in a read-only transaction,
            # whatever the spec's query does (a data-modifying CTE, nextval(), a function that writes).
            con.read_only = True
            with con.cursor() as cur:
                cur.adapters.register_loader("numeric", FloatLoader)
                # Naive bounds are compared with a timestamptz column in the session's zone.
                cur.execute("set time zone 'UTC'")
                # Prepared (the extended protocol): the server refuses a string of more than one statement.
                cur.execute(statement, prepare=True)
                columns = [d.name for d in cur.description]
                frame = pd.DataFrame(cur.fetchall(), columns=columns)
            con.rollback()
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = message.replace(password, "***") if password else message
        rule = _postgres_rule(error, message)
        if rule == "read_only_query":
            message = f"the query must be one statement that only reads ({message})"
        raise SourceError(name, rule, message) from None
    return SourceFrame(name, frame, np.arange(1, len(frame) + 1, dtype=np.int64))


def _postgres_rule(error, message: str) -> str:
    """The rule a PostgreSQL error breaks, by its SQLSTATE: a missing table or column, a query that writes or is
    not one statement, another error of the query, else the connection."""
    state = getattr(error, "sqlstate", None) or ""
    if state == "42P01":
        return "source_table"
    if state == "42703":
        return "source_column"
    # 25006: a write in the read-only transaction; the server's words for a second statement in a prepared one.
    if state == "25006" or "multiple commands" in message:
        return "read_only_query"
    if state[:2] in ("42", "22", "0A", "2B", "55"):  # syntax, access, data, unsupported feature, object state
        return "source_query"
    return "connection"


def iter_source(spec: SourceSpec, timestamp_column: str | None = None, start: datetime | None = None,
                end: datetime | None = None, s3_client=None) -> Iterator[SourceFrame]:
    """Every frame of a files, s3 or postgres source (the generator is read by its own asset)."""
    if spec.kind == "files":
        for path in list_files(spec.path):
            try:
                data = path.read_bytes()
            except OSError as error:
                raise SourceError(str(path), "readable_file", error.strerror or str(error)) from None
            yield read_bytes(data, str(path), spec)
    elif spec.kind == "s3":
        if s3_client is None:
            raise ValueError("an s3 source needs an S3 client")
        for obj in list_s3_objects(s3_client, spec.bucket, spec.prefix):
            yield read_s3_object(s3_client, spec.bucket, obj["Key"], spec)
    elif spec.kind == "postgres":
        yield read_postgres(spec, timestamp_column, start, end)
    else:
        raise ValueError(f"iter_source does not read '{spec.kind}' sources")
