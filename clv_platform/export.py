"""Weekly scores as files for analysts: one Parquet file per cutoff in a Hive-style layout, and its manifest.

No Dagster import: ``scoring/clv_scores_export`` is a thin wrapper around these functions.

Layout under the export root (a folder, or ``s3://bucket/prefix``)::

    clv_scores/cutoff_date=2011-12-05/clv_scores.parquet
    clv_scores/cutoff_date=2011-12-05/_manifest.json

``cutoff_date`` is in the path only, the Hive convention: pyarrow refuses a dataset whose files repeat
a partition column, and DuckDB (``read_parquet('<root>/clv_scores/*/*.parquet', hive_partitioning=true)``),
Spark and Athena restore it from the path. Those readers skip names that start with ``_`` or ``.``, so
neither the manifest nor a half-written temporary file is read as data.

A cutoff is exported in place, so exporting it again replaces it. Writers remove the old manifest,
write the Parquet file, then write the manifest: a reader that finds a manifest finds the complete file
it describes (its ``sha256`` says which bytes).

Analysts open these files in spreadsheets (Excel and Power Query read Parquet; a frame read from it is
often saved as CSV), and a text cell such as ``=cmd|' /C calc'!A0`` from a source's customer id would run
as a formula there. Every export a spreadsheet may open goes through :func:`neutralize_formulas`; the
manifest counts the cells it changed (``neutralized_cells``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clv_platform.settings import EXPORT_URI_ENV

DATASET = "clv_scores"
PARTITION_COLUMN = "cutoff_date"
PARQUET_NAME = "clv_scores.parquet"
MANIFEST_NAME = "_manifest.json"
REQUIRED_COLUMNS = ("customer_id", "cutoff_date", "predicted_clv", "value_tier", "model_name", "model_version")

# OWASP's list of the first characters that make a spreadsheet read a cell as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = r"^[=+@\-\t\r]"  # the same characters, as a regex for Arrow (RE2)
INERT_PREFIX = "'"  # a leading apostrophe: the cell is text, shown without it
# Text that is only a number ("-12.5", "+3e4") is read as that number, never run: left as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CREDENTIAL_ERRORS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}


@dataclass(frozen=True)
class ExportLocation:
    """Where exports go: a local folder (``scheme="file"``) or a bucket and key prefix (``scheme="s3"``)."""

    uri: str
    scheme: Literal["file", "s3"]
    folder: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def object_key(self, key: str) -> str:
        """The S3 object key of ``key`` (relative to the export root)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def join(self, key: str) -> str:
        """The full URI (S3) or path (folder) of ``key``, relative to the export root."""
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.object_key(key)}"
        return str(self.folder / key)


def is_formula(value: object) -> bool:
    """Whether a spreadsheet opening ``value`` as a cell would read it as a formula.

    >>> [is_formula(v) for v in ("=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(A1)", "-2+3", "-12.5", "High", -3.0)]
    [True, True, True, True, False, False, False]
    """
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and _PLAIN_NUMBER.fullmatch(value) is None


def _formula_mask(values: pd.Series):
    """Which values are formulas: a regex over the column in Arrow, then :func:`is_formula` on the few it finds."""
    import numpy as np
    import pyarrow.compute as pc

    cells = np.asarray(values, dtype=object)
    try:
        text = pa.array(cells, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers or other objects among the strings
        return np.fromiter((is_formula(value) for value in cells), dtype=bool, count=len(cells))
    starts = pc.match_substring_regex(text, _FORMULA_START).fill_null(False).to_numpy(zero_copy_only=False)
    mask = np.zeros(len(cells), dtype=bool)
    for index in np.flatnonzero(starts):
        mask[index] = is_formula(cells[index])
    return mask


def neutralize_formulas(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``frame`` with every text cell a spreadsheet would run as a formula prefixed with ``'``, and the counts.

    Every column is checked by what it holds, not by its name: each string value of an object, string or
    categorical column that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return becomes
    ``'`` + the value, which spreadsheets show as text. Numbers stay numbers (a negative amount is not
    text), and text that is only a number (``"-12.5"``) is left as it is: a spreadsheet reads it as that
    number and runs nothing. The input frame is not changed.

    Returns
    -------
    tuple[pandas.DataFrame, dict[str, int]]
        The frame to write, and the number of cells changed per column (columns with none left out).

    >>> frame = pd.DataFrame({"customer_id": ["=cmd|' /C calc'!A0", "c2"], "bias": [-0.25, 0.1]})
    >>> safe, counts = neutralize_formulas(frame)
    >>> safe["customer_id"].tolist(), safe["bias"].tolist(), counts
    (["'=cmd|' /C calc'!A0", 'c2'], [-0.25, 0.1], {'customer_id': 1})
    """
    result, counts = frame, {}
    for column in frame.columns:
        values = frame[column]
        if not (
            pd.api.types.is_object_dtype(values)
            or pd.api.types.is_string_dtype(values)
            or isinstance(values.dtype, pd.CategoricalDtype)
        ):
            continue
        formulas = _formula_mask(values)
        if not formulas.any():
            continue
        if result is frame:
            result = frame.copy()
        changed = values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values.copy()
        changed[formulas] = [INERT_PREFIX + value for value in values[formulas]]
        result[column] = changed
        counts[str(column)] = int(formulas.sum())
    return result, counts


def parse_export_uri(uri: str) -> ExportLocation:
    """Parse an export URI: a folder path, ``file:///folder`` or ``s3://bucket/prefix``.

    >>> location = parse_export_uri("s3://analytics/clv/")
    >>> location.bucket, location.prefix
    ('analytics', 'clv')
    >>> location.join("clv_scores/cutoff_date=2011-12-05/clv_scores.parquet")
    's3://analytics/clv/clv_scores/cutoff_date=2011-12-05/clv_scores.parquet'
    """
    text = uri.strip()
    if not text:
        raise ValueError("the export URI is empty: give a folder, file:///folder or s3://bucket/prefix")
    match = _SCHEME.match(text)
    if match is None:
        return ExportLocation(uri=text, scheme="file", folder=Path(text).expanduser().resolve())
    scheme = match.group(1).lower()
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost") or not parsed.path:
            raise ValueError(f"{text!r}: a file URI names a local folder, as file:///path/to/folder")
        return ExportLocation(uri=text, scheme="file", folder=Path(unquote(parsed.path)).resolve())
    if scheme == "s3":
        bucket, _, prefix = text[len(match.group(0)) :].partition("/")
        if not bucket:
            raise ValueError(f"{text!r}: an S3 export URI names a bucket, as s3://bucket/prefix")
        return ExportLocation(uri=text, scheme="s3", bucket=bucket, prefix=prefix.strip("/"))
    raise ValueError(f"{text!r}: unsupported scheme {scheme!r}; use a folder, file:///folder or s3://bucket/prefix")


def partition_path(cutoff_date: date) -> str:
    """The Hive-style folder of one cutoff, relative to the export root.

    >>> partition_path(date(2011, 12, 5))
    'clv_scores/cutoff_date=2011-12-05'
    """
    return f"{DATASET}/{PARTITION_COLUMN}={cutoff_date.isoformat()}"


@dataclass(frozen=True)
class ExportFiles:
    """The two files of one cutoff's export: the Parquet bytes and the manifest describing them."""

    cutoff_date: date
    parquet: bytes
    manifest: dict[str, Any]

    @property
    def parquet_key(self) -> str:
        return f"{partition_path(self.cutoff_date)}/{PARQUET_NAME}"

    @property
    def manifest_key(self) -> str:
        return f"{partition_path(self.cutoff_date)}/{MANIFEST_NAME}"

    @property
    def manifest_bytes(self) -> bytes:
        return (json.dumps(self.manifest, indent=2) + "\n").encode()


def _single_value(scores: pd.DataFrame, column: str, why: str) -> Any:
    if scores[column].isna().any():
        raise ValueError(f"column {column!r} has missing values: every score names its {column}")
    values = scores[column].unique()
    if len(values) != 1:
        shown = ", ".join(sorted(map(str, values))[:5])
        raise ValueError(f"column {column!r} holds {len(values)} values ({shown}); an export holds one: {why}")
    return values[0]


def build_export(scores: pd.DataFrame, exported_at: datetime) -> ExportFiles:
    """The Parquet file and manifest of one cutoff's scores.

    Parameters
    ----------
    scores
        ``scoring.clv_scores`` rows of a single ``cutoff_date`` with their ``value_tier`` from
        ``scoring.value_tiers``, one per customer, all made by one ``model_name`` (and one ``model_version``, or
        two under a canary or A/B rollout: the manifest's ``model_version`` lists them, comma-separated).
        Extra columns are exported too.
    exported_at
        Timezone-aware time recorded in the manifest.

    Returns
    -------
    ExportFiles
        Parquet bytes (every column but ``cutoff_date``, which lives in the path; rows sorted by
        ``customer_id``, so the same scores give the same bytes; text cells that would run as spreadsheet
        formulas prefixed with ``'``, see :func:`neutralize_formulas`) and a manifest with ``dataset,
        cutoff_date, file, row_count, columns, model_name, model_version, bytes, sha256, exported_at,
        neutralized_cells`` (cells prefixed, per column).

    Raises
    ------
    ValueError
        If a required column is missing, there are no rows, ``customer_id`` repeats, or the rows span
        more than one cutoff or model name.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}")
    if scores.empty:
        raise ValueError("scores have no rows: nothing to export")
    if exported_at.tzinfo is None:
        raise ValueError("exported_at must be timezone-aware")
    cutoff = pd.Timestamp(_single_value(scores, PARTITION_COLUMN, "one file per cutoff")).date()
    model_name = str(_single_value(scores, "model_name", "the manifest names the model that made the file"))
    if scores["model_version"].isna().any():
        raise ValueError("column 'model_version' has missing values: every score names its model_version")
    # Under a canary or A/B rollout a cutoff is scored by two versions; each row names its own.
    model_version = ",".join(sorted({str(v) for v in scores["model_version"]}, key=lambda v: (len(v), v)))
    if scores["customer_id"].isna().any() or scores["customer_id"].duplicated().any():
        raise ValueError("column 'customer_id' must be present and unique: one row per customer per cutoff")

    data = scores.drop(columns=[PARTITION_COLUMN]).sort_values("customer_id", kind="stable").reset_index(drop=True)
    data["model_version"] = data["model_version"].astype(str)
    data, neutralized = neutralize_formulas(data)
    if data["customer_id"].duplicated().any():  # "=x" made "'=x" beside a customer already named "'=x"
        repeated = sorted(data.loc[data["customer_id"].duplicated(), "customer_id"].astype(str))[:5]
        raise ValueError(f"column 'customer_id' repeats {', '.join(repeated)} once formulas are made inert")
    # No pandas schema metadata: the file reads the same everywhere and its bytes do not move with pandas.
    table = pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    parquet = sink.getvalue().to_pybytes()

    manifest = {
        "dataset": DATASET,
        "cutoff_date": cutoff.isoformat(),
        "file": PARQUET_NAME,
        "row_count": len(data),
        "columns": list(table.column_names),
        "model_name": model_name,
        "model_version": model_version,
        "bytes": len(parquet),
        "sha256": hashlib.sha256(parquet).hexdigest(),
        "exported_at": exported_at.isoformat(timespec="seconds"),
        "neutralized_cells": neutralized,
    }
    return ExportFiles(cutoff_date=cutoff, parquet=parquet, manifest=manifest)


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_to_folder(location: ExportLocation, files: ExportFiles) -> None:
    """Write one cutoff's export under a local folder, replacing an earlier export of that cutoff."""
    folder = location.folder / partition_path(files.cutoff_date)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    _replace_file(folder / PARQUET_NAME, files.parquet)
    _replace_file(folder / MANIFEST_NAME, files.manifest_bytes)


def write_to_s3(client: Any, location: ExportLocation, files: ExportFiles) -> None:
    """Upload one cutoff's export with a boto3 S3 client, replacing an earlier export of that cutoff.

    Each PUT carries the SHA-256 of its body, so S3 rejects a corrupted upload.
    """

    def put(key: str, body: bytes, content_type: str) -> None:
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        client.put_object(
            Bucket=location.bucket,
            Key=location.object_key(key),
            Body=body,
            ContentType=content_type,
            ChecksumSHA256=checksum,
        )

    client.delete_object(Bucket=location.bucket, Key=location.object_key(files.manifest_key))
    put(files.parquet_key, files.parquet, "application/vnd.apache.parquet")
    put(files.manifest_key, files.manifest_bytes, "application/json")


def describe_write_error(error: BaseException, location: ExportLocation) -> str | None:
    """One line saying why writing to ``location`` failed, or ``None`` for an error this does not know."""
    from botocore import exceptions as botocore_errors

    where = f"Cannot export to {location.uri}"
    message: str | None = None
    if isinstance(error, botocore_errors.ClientError):
        details = error.response.get("Error", {})
        code, text = str(details.get("Code") or "unknown"), str(details.get("Message") or "")
        if code == "NoSuchBucket":
            message = (
                f"{where}: bucket {location.bucket!r} does not exist; create it or point {EXPORT_URI_ENV} at an existing bucket."
            )
        elif code in _CREDENTIAL_ERRORS:
            message = (
                f"{where}: S3 refused the credentials ({code}: {text}); check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and AWS_ENDPOINT_URL."
            )
        elif code in ("AccessDenied", "AllAccessDisabled"):
            message = (
                f"{where}: access denied ({code}: {text}); the credentials need s3:PutObject and "
                "s3:DeleteObject under the prefix."
            )
        else:
            message = f"{where}: S3 answered {code}: {text}"
    elif isinstance(error, (botocore_errors.NoCredentialsError, botocore_errors.PartialCredentialsError)):
        message = f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
    elif isinstance(error, botocore_errors.EndpointConnectionError):
        message = f"{where}: {error}; check AWS_ENDPOINT_URL."
    elif isinstance(error, botocore_errors.BotoCoreError):
        message = f"{where}: {error}"
    elif isinstance(error, OSError) and location.scheme == "file":
        message = f"{where}: {error.strerror or error} ({error.filename})"
    return " ".join(message.split()) if message else None
