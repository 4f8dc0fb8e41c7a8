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
from typing import BinaryIO, TextIO

import numpy as np
import pandas as pd

from clv_platform.ingest.spec import WHITESPACE, RuleLimits, SourceSpec, positional_name

BAD_LINE = "_bad_line"
# What a folder or an S3 prefix holds as data. Not .txt: a README.txt or notes.txt beside the data
# is common and would fail every load as a CSV without the mapped columns; name a .txt log by its
# path or a glob instead.
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".xlsx")

# Records per frame a file is read in: bounds the memory of parsing whatever the file's size.
CHUNK_ROWS = 250_000
_SURROGATE = re.compile("[\udc80-\udcff]")

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


def read_stream(
    file: BinaryIO, name: str, spec: SourceSpec, max_file_bytes: int | None = None, chunk_rows: int | None = None
) -> Iterator[SourceFrame]:
    """Parse one file from a seekable binary stream, in frames of at most ``chunk_rows`` records.

    ``chunk_rows`` None is :data:`CHUNK_ROWS`; 0 reads the file as one frame.

    Never holds the whole decompressed file: text is decoded and parsed as it is read, Parquet row group
    by row group. A file larger than ``max_file_bytes`` once decompressed is refused with a ``SourceError``.
    """
    limit = RuleLimits().max_file_bytes if max_file_bytes is None else max_file_bytes
    chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    fmt = _format_of(name, spec.format)
    if fmt == "parquet":
        return _read_parquet(file, name, limit, chunk_rows)
    if fmt == "xlsx":
        return _read_xlsx(file, name, spec.sheet, limit, spec.header)
    delimiter = "\t" if name.lower().endswith((".tsv", ".tsv.gz")) and spec.delimiter == "," else spec.delimiter
    return _read_csv(file, name, delimiter, spec.encoding, limit, chunk_rows, spec.header)


def _too_large(name: str, limit: int, what: str = "once decompressed") -> SourceError:
    size = f"{_size(limit)} {what}" if what else _size(limit)
    return SourceError(
        name,
        "file_size_within_limit",
        f"larger than {size}, the limit set by limits.max_file_bytes "
        "in the source config: raise it to read this file, or split the file",
    )


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


class _Limited(io.RawIOBase):
    """The bytes of ``inner`` (a file, or its gzip stream), refused past ``limit`` of them.

    Given an ASCII-compatible ``encoding``, it also refuses binary content (NUL bytes) and notes bytes
    invalid in the encoding as they pass, block by block, so that the text itself need not be searched.
    """

    def __init__(self, inner: BinaryIO, name: str, limit: int, encoding: str | None = None):
        self._inner, self._name, self._limit, self.count = inner, name, limit, 0
        self._decoder = codecs.getincrementaldecoder(encoding)() if encoding else None
        self.undecodable = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._inner.readinto(buffer)
        self.count += n
        if self.count > self._limit:
            raise _too_large(self._name, self._limit)
        if self._decoder is not None and n:
            block = bytes(buffer[:n])
            if b"\x00" in block:
                raise _binary(self._name)
            if not self.undecodable and (not block.isascii() or self._decoder.getstate()[0]):
                try:
                    self._decoder.decode(block)
                except UnicodeDecodeError:
                    self.undecodable = True
        return n


def _corrupt_gzip(name: str, error: Exception) -> SourceError:
    return SourceError(name, "readable_file", f"corrupt or truncated gzip stream ({error})")


def _binary(name: str) -> SourceError:
    return SourceError(name, "readable_file", "binary content (NUL bytes): not a text file")


def _ascii_compatible(encoding: str) -> bool:
    """Whether ASCII text (and NUL) is the same bytes in ``encoding`` (UTF-8, Latin-1, cp1252; not UTF-16)."""
    try:
        return "a,\n\x00".encode(encoding) == b"a,\n\x00"
    except (LookupError, UnicodeError):
        return False


class _Lines:
    """Decoded lines for the csv reader, for encodings whose bytes cannot be checked as read (UTF-16, UTF-32)."""

    def __init__(self, text: TextIO, name: str):
        self._text, self._name = text, name
        self.undecodable = False

    def __iter__(self) -> Iterator[str]:
        for line in self._text:
            if "\x00" in line:
                raise _binary(self._name)
            if not self.undecodable and not line.isascii() and _SURROGATE.search(line):
                self.undecodable = True
            yield line


class _WhitespaceRecords:
    """Records of text whose fields are separated by runs of spaces and tabs (no quoting), read like ``csv.reader``."""

    def __init__(self, lines):
        self._lines, self.line_num = iter(lines), 0

    def __iter__(self) -> _WhitespaceRecords:
        return self

    def __next__(self) -> list[str]:
        line = next(self._lines)
        self.line_num += 1
        return _SPACES.split(line.rstrip("\r\n").strip(" \t"))


_SPACES = re.compile("[ \t]+")


def _read_csv(
    file: BinaryIO, name: str, delimiter: str, encoding: str, limit: int, chunk_rows: int, has_header: bool = True
) -> Iterator[SourceFrame]:
    buffered = file if hasattr(file, "peek") else io.BufferedReader(file)
    gzipped = buffered.peek(2)[:2] == b"\x1f\x8b"
    if not gzipped and buffered.seekable() and buffered.seek(0, io.SEEK_END) > limit:
        raise _too_large(name, limit, "")
    if buffered.seekable():
        buffered.seek(0)
    inner = gzip.GzipFile(fileobj=buffered, mode="rb") if gzipped else buffered
    try:
        head = inner.peek(4096)[:4096]
    except (EOFError, OSError, zlib.error) as error:
        if not gzipped:
            raise
        raise _corrupt_gzip(name, error) from None
    encoding = text_encoding(name, head, encoding)
    checked = _Limited(inner, name, limit, encoding if _ascii_compatible(encoding) else None)
    # Undecodable bytes survive as surrogates; validation quarantines the rows that hold them.
    text = io.TextIOWrapper(
        io.BufferedReader(checked, buffer_size=1 << 20), encoding=encoding, errors="surrogateescape", newline=""
    )
    lines = text if checked._decoder is not None else _Lines(text, name)
    whitespace = delimiter == WHITESPACE
    reader = _WhitespaceRecords(lines) if whitespace else csv.reader(lines, delimiter=delimiter, strict=False)
    joiner = " " if whitespace else delimiter
    previous_end, chunks, header = 0, 0, None
    try:
        if has_header:
            header = next(reader, None)
            if header is None:
                yield SourceFrame(name, pd.DataFrame(), np.array([], dtype=np.int64))
                return
            header = [h.strip() for h in header]
            if header:  # a byte order mark is not part of the first name
                header[0] = header[0].removeprefix("\ufeff").strip()
            _check_unique(name, header)
            previous_end = reader.line_num
        records, rows, bad = [], [], []
        width = len(header) if header is not None else 0

        def chunk() -> SourceFrame:
            frame = pd.DataFrame(records, columns=header, dtype=object)
            frame[BAD_LINE] = pd.Series(bad, dtype=object)
            return SourceFrame(
                name,
                frame,
                np.asarray(rows, dtype=np.int64),
                undecodable=lines.undecodable if isinstance(lines, _Lines) else checked.undecodable,
            )

        for record in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not record or record == [""]:
                continue  # blank line
            if header is None:  # no header: the first record's fields are the columns, named by position
                record[0] = record[0].removeprefix("\ufeff")
                header = [positional_name(i) for i in range(1, len(record) + 1)]
                width = len(header)
            if len(record) != width:
                bad.append(joiner.join(record))
                record = (record + [""] * width)[:width]
            else:
                bad.append(None)
            records.append(record)
            rows.append(start)
            if chunk_rows and len(records) >= chunk_rows:
                yield chunk()
                records, rows, bad, chunks = [], [], [], chunks + 1
        if header is None:  # a file of blank lines
            yield SourceFrame(name, pd.DataFrame(), np.array([], dtype=np.int64))
        elif records or not chunks:
            yield chunk()
    except csv.Error as error:
        raise SourceError(name, "readable_file", str(error), row=previous_end + 1) from None
    except (EOFError, OSError, zlib.error) as error:
        if not gzipped:
            raise
        raise _corrupt_gzip(name, error) from None


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


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
    raise SourceError(
        name,
        "encoding",
        f"the file is {family.upper()} text ({how}), not {declared}: "
        f"set encoding: {suggested} (or encoding: auto) in the source spec",
    )


def _read_parquet(file: BinaryIO, name: str, limit: int, chunk_rows: int) -> Iterator[SourceFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        _check_unique(name, parquet.schema_arrow.names, row=None)
        meta = parquet.metadata
        if sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) > limit:
            raise _too_large(name, limit, "uncompressed")
        batches = parquet.iter_batches(batch_size=chunk_rows or max(meta.num_rows, 1))
        first = 1
        for batch in batches:
            frame = batch.to_pandas()
            yield SourceFrame(name, frame, np.arange(first, first + len(frame), dtype=np.int64))
            first += len(frame)
        if first == 1:
            yield SourceFrame(name, parquet.schema_arrow.empty_table().to_pandas(), np.array([], dtype=np.int64))
    except (pa.ArrowInvalid, OSError) as error:
        raise SourceError(name, "readable_file", f"not a readable Parquet file ({error})") from None


def _check_unique(name: str, header: list[str], row: int | None = 1) -> None:
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise SourceError(
            name, "unique_columns", f"column name(s) used more than once: {', '.join(dupes)}", row=row, column=", ".join(dupes)
        )


def _read_xlsx(file: BinaryIO, name: str, sheet: str | int, limit: int, has_header: bool = True) -> Iterator[SourceFrame]:
    import zipfile

    try:
        # A workbook is a zip: its members' sizes say what it expands to before anything is expanded.
        if sum(member.file_size for member in zipfile.ZipFile(file).infolist()) > limit:
            raise _too_large(name, limit, "once unzipped")
    except zipfile.BadZipFile as error:
        raise SourceError(name, "readable_file", f"not a readable XLSX workbook (BadZipFile: {error})") from None
    file.seek(0)
    try:
        # header=None: pandas would rename a repeated header ('Quantity.1') instead of letting us reject it.
        cells = pd.read_excel(file, sheet_name=sheet, header=None, dtype=object, engine="openpyxl")
    except Exception as error:  # openpyxl raises many types for a broken workbook
        raise SourceError(name, "readable_file", f"not a readable XLSX workbook ({type(error).__name__}: {error})") from None
    if cells.empty:
        yield SourceFrame(name, pd.DataFrame(), np.array([], dtype=np.int64))
        return
    if not has_header:
        frame = cells.set_axis([positional_name(i) for i in range(1, cells.shape[1] + 1)], axis=1)
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    else:
        header = [f"Unnamed: {i}" if pd.isna(c) else str(c).strip() for i, c in enumerate(cells.iloc[0])]
        _check_unique(name, header)
        frame = cells.iloc[1:].set_axis(header, axis=1)
        rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    filled = frame.notna().any(axis=1).to_numpy()  # blank rows are skipped, as blank lines in a CSV
    yield SourceFrame(name, frame[filled].reset_index(drop=True), rows[filled])


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


def iter_s3_object(
    s3_client, bucket: str, key: str, spec: SourceSpec, max_file_bytes: int | None = None, chunk_rows: int | None = None
) -> Iterator[SourceFrame]:
    """One object in frames of at most ``chunk_rows`` records, its body streamed to a local spool file first."""
    import shutil
    import tempfile

    name = f"s3://{bucket}/{key}"
    limit = RuleLimits().max_file_bytes if max_file_bytes is None else max_file_bytes
    obj = s3_client.get_object(Bucket=bucket, Key=key)
    if obj.get("ContentLength", 0) > limit:  # stored bytes never exceed what they expand to
        raise _too_large(name, limit, "as stored")
    # Parquet and XLSX need to seek; the spool keeps small objects in memory and puts large ones on disk.
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        shutil.copyfileobj(obj["Body"], spool, 1 << 20)
        spool.seek(0)
        yield from read_stream(spool, name, spec, limit, chunk_rows)


def read_postgres(
    spec: SourceSpec, timestamp_column: str, start: datetime | None = None, end: datetime | None = None
) -> SourceFrame:
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
        raise SourceError(
            f"postgresql ({spec.dsn_env})", "connection", f"{spec.dsn_env} is not a valid connection string"
        ) from None
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


def iter_source(
    spec: SourceSpec,
    timestamp_column: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    s3_client=None,
    max_file_bytes: int | None = None,
    chunk_rows: int | None = None,
) -> Iterator[SourceFrame]:
    """Every frame of a files, s3 or postgres source (the generator is read by its own asset).

    Files and objects come in frames of at most ``chunk_rows`` records (several per file, each with the
    file's name and its real row numbers); one larger than ``max_file_bytes`` decompressed is refused.
    """
    limit = RuleLimits().max_file_bytes if max_file_bytes is None else max_file_bytes
    if spec.kind == "files":
        for path in list_files(spec.path):
            try:
                file = open(path, "rb")  # noqa: SIM115 - closed below, after the last chunk
            except OSError as error:
                raise SourceError(str(path), "readable_file", error.strerror or str(error)) from None
            with file:
                yield from read_stream(file, str(path), spec, limit, chunk_rows)
    elif spec.kind == "s3":
        if s3_client is None:
            raise ValueError("an s3 source needs an S3 client")
        for obj in list_s3_objects(s3_client, spec.bucket, spec.prefix):
            yield from iter_s3_object(s3_client, spec.bucket, obj["Key"], spec, limit, chunk_rows)
    elif spec.kind == "postgres":
        yield read_postgres(spec, timestamp_column, start, end)
    else:
        raise ValueError(f"iter_source does not read '{spec.kind}' sources")
