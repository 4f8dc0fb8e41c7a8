"""What to ingest and how: the source spec, read from a YAML file, with no code change.

``CLV_SOURCE_CONFIG`` names the file; without it the built-in generator is the source. Example::

    transactions:
      kind: files                      # generator | files | s3 | postgres
      path: data/orders/*.csv.gz       # a file, a folder or a glob
      preset: online_retail            # online_retail | online_retail_ii | canonical
    behavioral_events:                 # optional: no events table means no behaviour features
      kind: files
      path: data/events.parquet
    pii:
      key_env: CLV_PII_KEY             # the HMAC key is read from this variable, never from the file
      columns: {customer_id: hmac, description: drop}
    limits:                            # thresholds of the row and table rules (RuleLimits), e.g.
      max_file_bytes: 8589934592       # refuse a file past 8 GiB once decompressed (default 4 GiB)

Any other log loads through ``columns`` (canonical name -> the log's column), e.g. a log of only
customer, date and amount::

    transactions: {kind: files, path: sales.csv,
                   columns: {customer_id: cust, invoice_date: day, amount: total}}

A file without a header names its columns by position (1 is the first; ``column_1`` is the same), e.g. the
whitespace-separated ``customer yyyymmdd count amount`` shape of the CDNOW benchmark::

    transactions: {kind: files, path: CDNOW_master.txt, header: false, delimiter: whitespace,
                   columns: {customer_id: 1, invoice_date: 2, amount: 4}}
"""

from __future__ import annotations

import codecs
import os
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from clv_platform.raw_tables import BEHAVIORAL_EVENTS, CUSTOMERS, TRANSACTIONS

SOURCE_CONFIG_ENV = "CLV_SOURCE_CONFIG"

# Canonical columns of each raw table (clv_platform.raw_tables); a mapping names the log's column for each one it has.
TRANSACTION_FIELDS = TRANSACTIONS.field_names
EVENT_FIELDS = BEHAVIORAL_EVENTS.field_names
CUSTOMER_FIELDS = CUSTOMERS.field_names

PRESETS: dict[str, dict[str, str]] = {
    # UCI Online Retail (Chen et al. 2012).
    "online_retail": {
        "invoice_no": "InvoiceNo",
        "stock_code": "StockCode",
        "description": "Description",
        "quantity": "Quantity",
        "invoice_date": "InvoiceDate",
        "unit_price": "UnitPrice",
        "customer_id": "CustomerID",
        "country": "Country",
    },
    # UCI Online Retail II (2009-2011).
    "online_retail_ii": {
        "invoice_no": "Invoice",
        "stock_code": "StockCode",
        "description": "Description",
        "quantity": "Quantity",
        "invoice_date": "InvoiceDate",
        "unit_price": "Price",
        "customer_id": "Customer ID",
        "country": "Country",
    },
    # The warehouse's own names (raw.transactions as exported).
    "canonical": {name: name for name in TRANSACTION_FIELDS},
}


WHITESPACE = "whitespace"
# The first day of the partitions when no history_start is set. Earlier dates are placeholders (spreadsheets'
# day zero, 1900-01-01), not purchases: they are quarantined rather than stretching the history by decades.
EARLIEST_DAY = date(1970, 1, 1)


def positional_name(position: int) -> str:
    """The name of the column at 1-based ``position`` of a file without a header."""
    return f"column_{position}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeneratorOptions(_Strict):
    """The built-in realistic e-commerce dataset (deterministic by seed)."""

    n_customers: int = Field(default=5_000, description="Customers to simulate.")
    years: int = Field(default=3, description="Length of the history in years.")
    end_date: str = Field(default="2025-12-31", description="Last day of the history (YYYY-MM-DD).")
    seed: int = Field(default=42, description="Random seed; the same seed gives the same data.")
    spend_multiplier: float = Field(default=1.0, description="Scales every customer's spend (drift drills).")
    purchase_rate_multiplier: float = Field(default=1.0, description="Scales purchase rates (drift drills).")


class SourceSpec(_Strict):
    """Where one raw table comes from and how its columns map to the canonical ones."""

    kind: Literal["generator", "files", "s3", "postgres"] = "generator"
    # files: one file, a folder (every .csv, .csv.gz, .tsv, .tsv.gz, .parquet, .pq, .xlsx in it; not .txt) or a glob.
    path: str | None = None
    # s3: every object under s3://bucket/prefix (suffixes as for folders).
    bucket: str | None = None
    prefix: str = ""
    # postgres: a table or a query; the connection string comes from the environment variable.
    dsn_env: str = "CLV_POSTGRES_DSN"
    table: str | None = None
    query: str | None = None
    # File format; auto decides by suffix (.csv, .csv.gz, .tsv, .parquet, .xlsx).
    format: Literal["auto", "csv", "parquet", "xlsx"] = "auto"
    preset: Literal["online_retail", "online_retail_ii", "canonical"] | None = None
    columns: dict[str, str | int] = Field(
        default_factory=dict, description="canonical name -> column in the source (its 1-based position without a header)"
    )
    # Accepted timestamp formats, tried in order (strptime codes); empty means ISO 8601 only.
    timestamp_formats: list[str] = Field(default_factory=list)
    # One character, or 'whitespace': fields separated by runs of spaces and tabs, without quoting.
    delimiter: str = ","
    # false: the first line is a record; columns are column_1, column_2, ... and the mapping may give positions.
    header: bool = True
    # A Python codec name, or auto: UTF-8, or UTF-16/32 when the file's byte-order mark or NUL bytes say so.
    encoding: str = "utf-8"
    sheet: str | int = 0

    @model_validator(mode="after")
    def _where(self) -> SourceSpec:
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown encoding '{self.encoding}' (e.g. utf-8, cp1252, latin-1, utf-16, auto)") from None
        if self.delimiter != WHITESPACE and len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character or '{WHITESPACE}', got {self.delimiter!r}")
        self.columns = {name: self._column_name(column) for name, column in self.columns.items()}
        needs = {"files": ("path",), "s3": ("bucket",)}.get(self.kind, ())
        for field in needs:
            if not getattr(self, field):
                raise ValueError(f"a '{self.kind}' source needs '{field}'")
        if self.kind == "postgres" and bool(self.table) == bool(self.query):
            raise ValueError("a 'postgres' source needs exactly one of 'table' or 'query'")
        return self

    def _column_name(self, column: str | int) -> str:
        """A mapped column as the reader names it: a position (``2``, ``"2"``) of a file without a header is ``column_2``."""
        position = column if isinstance(column, int) else int(column) if str(column).strip().isdigit() else None
        if position is None:
            return column
        if self.header:
            if isinstance(column, int):
                raise ValueError(f"column {column} is a position: positions name columns only with header: false")
            return column
        if position < 1:
            raise ValueError(f"column positions start at 1, got {position}")
        return positional_name(position)

    @property
    def location(self) -> str:
        """Where the rows come from, for messages: the path, s3://bucket/prefix, the table, or the kind."""
        if self.kind == "files":
            return self.path
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}"
        return self.table or f"{self.kind} source"

    def mapping(self, fields: tuple[str, ...]) -> dict[str, str]:
        """canonical -> source column, the preset overlaid by ``columns``; identity when neither is given."""
        base = dict(PRESETS[self.preset]) if self.preset else {}
        if not self.preset and not self.columns:
            base = {name: name for name in fields}
        base.update(self.columns)
        unknown = sorted(set(base) - set(fields) - {"amount"})
        if unknown:
            raise ValueError(f"unknown canonical column(s) in mapping: {', '.join(unknown)}; known: {', '.join(fields)}, amount")
        return {k: v for k, v in base.items() if k in fields or k == "amount"}


class PiiSpec(_Strict):
    """Per-column privacy: ``hmac`` keeps joins working without the raw value; ``drop`` removes it."""

    key_env: str = "CLV_PII_KEY"
    columns: dict[str, Literal["hmac", "drop"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _droppable(self) -> PiiSpec:
        required = {"customer_id", "invoice_date", "event_timestamp", "quantity", "unit_price"}
        bad = sorted(c for c, how in self.columns.items() if how == "drop" and c in required)
        if bad:
            raise ValueError(f"cannot drop required column(s) {', '.join(bad)}: use hmac for identifiers")
        return self


class RuleLimits(_Strict):
    """Thresholds of the row and table rules (see clv_platform.ingest.rules)."""

    max_abs_quantity: int = Field(default=1_000_000, description="Largest plausible |quantity| on one line (items).")
    max_unit_price: float = Field(default=100_000.0, description="Largest plausible unit price (currency).")
    adjustment_stock_codes: list[str] = Field(
        default_factory=lambda: ["B"], description="Stock codes of documented adjustments, allowed a negative price."
    )
    max_quarantine_share: float = Field(default=0.5, description="Largest share of rows a load may quarantine.")
    max_volume_ratio: float = Field(default=10.0, description="Largest daily-volume change vs the previous window, either way.")
    max_order_value_ratio: float = Field(default=3.0, description="Largest mean order value change vs the previous window.")
    max_new_category_share: float = Field(
        default=0.05, description="Largest share of rows with a country/channel never seen before."
    )
    max_file_bytes: int = Field(
        default=4 << 30,
        gt=0,
        description="Largest size of one source file once decompressed (bytes); a larger file is refused, never half-read.",
    )


class IngestionSpec(_Strict):
    transactions: SourceSpec = Field(default_factory=SourceSpec)
    behavioral_events: SourceSpec | None = None
    customers: SourceSpec | None = None
    generator: GeneratorOptions = Field(default_factory=GeneratorOptions)
    pii: PiiSpec = Field(default_factory=PiiSpec)
    limits: RuleLimits = Field(default_factory=RuleLimits)
    # First day of the daily partitions; rows dated earlier are quarantined (rule timestamp_in_history).
    # Unset: the log's own first day, nothing excluded but dates before EARLIEST_DAY.
    history_start: date | None = None

    @property
    def first_day(self) -> date:
        """The first day a row may be dated: ``history_start``, else :data:`EARLIEST_DAY`."""
        return self.history_start or EARLIEST_DAY

    @field_validator("transactions", "behavioral_events", "customers")
    @classmethod
    def _known_columns(cls, source: SourceSpec | None, info: ValidationInfo) -> SourceSpec | None:
        # A typo in a mapping is reported with the file and line when the spec loads, not by a load run later.
        if source is not None:
            source.mapping(_TABLE_FIELDS[info.field_name])
        return source

    @model_validator(mode="after")
    def _generator_fills_in(self) -> IngestionSpec:
        # The generator makes all three tables; other sources name theirs.
        if self.transactions.kind == "generator":
            self.behavioral_events = self.behavioral_events or SourceSpec(kind="generator")
            self.customers = self.customers or SourceSpec(kind="generator")
        return self

    @property
    def is_generated(self) -> bool:
        return self.transactions.kind == "generator"


_TABLE_FIELDS = {"transactions": TRANSACTION_FIELDS, "behavioral_events": EVENT_FIELDS, "customers": CUSTOMER_FIELDS}


class SpecError(ValueError):
    """A source spec that cannot be used; the message names the file, the line and what is wrong, on one line."""


def _yaml_line(root, loc: tuple) -> int | None:
    """1-based line of the deepest node of ``root`` (a composed YAML node) that ``loc`` reaches."""
    line, node = None, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _problem(error: dict, root) -> str:
    loc = tuple(error["loc"])
    line = _yaml_line(root, loc) if root is not None else None
    where = f"line {line}: " if line else ""
    if error["type"] == "extra_forbidden":
        parent = ".".join(map(str, loc[:-1]))
        return f"{where}unknown key '{loc[-1]}'" + (f" in '{parent}'" if parent else "")
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}{'.'.join(map(str, loc)) or 'file'}: {message}"


def load_spec(path: str | os.PathLike | None = None) -> IngestionSpec:
    """The spec in ``path`` (or ``$CLV_SOURCE_CONFIG``); the generator default when neither is set.

    Relative paths inside the file are resolved against the file's folder. Raises :class:`SpecError`
    (``FileNotFoundError`` for a missing file) with one line naming the file, the line and the problem.
    """
    path = path or os.environ.get(SOURCE_CONFIG_ENV) or None
    if not path:
        return IngestionSpec()
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FileNotFoundError(f"{file}: source config not found (set by {SOURCE_CONFIG_ENV})")
    text = file.read_text()
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text) or {}
        spec = IngestionSpec.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(_problem(e, root) for e in error.errors())
        raise SpecError(f"{file}: invalid source config: {problems}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise SpecError(f"{file}: invalid source config: {where}{' '.join(str(error.problem).split())}") from None
    except (yaml.YAMLError, ValueError) as error:
        raise SpecError(f"{file}: invalid source config: {' '.join(str(error).split())}") from None
    for source in (spec.transactions, spec.behavioral_events, spec.customers):
        if source is not None and source.kind == "files" and source.path and not Path(source.path).expanduser().is_absolute():
            source.path = str(file.parent / source.path)
    return spec
