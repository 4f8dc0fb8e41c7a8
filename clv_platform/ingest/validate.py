"""From records as delivered to canonical rows: mapping, privacy, row rules (pandera), quarantine.

Every record read ends in exactly one of two places: the accepted rows (canonical columns, typed,
with ``_source``, ``_source_row`` and ``_loaded_at``) or the quarantine (source, row, the first rule
it broke and every rule it broke, the offending column and value, the record as JSON). Privacy is
applied first, so neither place ever holds a raw identifier that the spec hashes or drops.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np
import pandas as pd
import pandera.pandas as pa

from clv_platform.ingest.readers import BAD_LINE, SourceError, SourceFrame
from clv_platform.ingest.spec import (
    CUSTOMER_FIELDS,
    EARLIEST_DAY,
    EVENT_FIELDS,
    TRANSACTION_FIELDS,
    PiiSpec,
    RuleLimits,
    SourceSpec,
)
from clv_platform.raw_tables import EVENT_TYPES, QUARANTINE_FIELDS

QUARANTINE_COLUMNS = tuple(column.name for column in QUARANTINE_FIELDS)
# Rules whose rows carry no usable date: they are kept against their source, not a partition.
UNDATED_RULES = {"timestamp_parseable", "timestamp_not_in_future", "timestamp_in_history", "field_count", "valid_encoding"}


@dataclass(frozen=True)
class Rule:
    name: str
    column: str | None  # canonical column it judges; None for whole-record rules
    message: str


@dataclass
class Validated:
    """The outcome of one load: accepted rows, quarantined rows and how the counts add up."""

    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    rows_read: int
    by_rule: dict[str, int]
    rows_by_source: dict[str, int]
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    empty_sources: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)


# --- privacy -------------------------------------------------------------------------------


def pseudonymize(values: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 of each non-null value (hex, 32 characters): stable for joins, not reversible without the key."""
    uniques = pd.unique(values.dropna())
    table = {v: hmac.new(key, str(v).encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32] for v in uniques}
    return values.map(table, na_action="ignore").astype(object)


def apply_pii(frame: pd.DataFrame, pii: PiiSpec, key: bytes | None) -> pd.DataFrame:
    """Hash or drop the configured canonical columns, before anything is stored or logged."""
    if not pii.columns:
        return frame
    out = frame.copy()
    for column, how in pii.columns.items():
        if column not in out.columns:
            continue
        if how == "drop":
            out[column] = None
        else:
            if not key:
                raise ValueError(f"PII column '{column}' is to be hashed but ${pii.key_env} (the HMAC key) is not set")
            out[column] = pseudonymize(out[column], key)
    return out


def withhold_misaligned(text: pd.DataFrame, misaligned: pd.Series) -> pd.DataFrame:
    """The fields of records with the wrong number of fields withheld, for a spec that hashes or drops PII.

    Such a record's fields may sit under any column (a description with an unquoted delimiter pushes its
    second half into the next one), so none can be trusted to be what its column says: none is kept,
    and the record is quarantined by its row number alone.
    """
    if not misaligned.any():
        return text
    text = text.copy()
    text.loc[misaligned.to_numpy(), :] = None
    return text


# --- parsing -------------------------------------------------------------------------------


def parse_text(values: pd.Series) -> pd.Series:
    """Values as text, the way every load reads a field before any rule looks at it.

    Parameters
    ----------
    values
        One column as read from a source: strings, numbers, dates or a mix (an Excel column).

    Returns
    -------
    pd.Series
        Object dtype: strings stripped of surrounding whitespace, '' and NaN as None, integral
        floats as integers (``17850.0`` -> ``"17850"``, ids from Excel or pandas).
    """
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.notna()
        integral = finite & (values == np.floor(values.where(finite, 0)))
        out = pd.Series(None, index=values.index, dtype=object)
        out[integral] = values[integral].astype("int64").astype(str)
        out[finite & ~integral] = values[finite & ~integral].astype(str)
        return out
    if values.dtype != object:
        return values.astype(str).where(values.notna(), None).astype(object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty", "bytes", "mixed", "mixed-integer"):
        stripped = values.str.strip()  # NaN for anything that is not a string
    else:  # no strings at all (an Excel column of numbers or dates): .str would raise
        stripped = pd.Series(np.nan, index=values.index, dtype=object)
    other = stripped.isna() & values.notna()
    if other.any():
        stripped[other] = values[other].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return stripped.where(stripped.notna() & stripped.ne(""), None).astype(object)


def _number(values: pd.Series, text: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    return pd.to_numeric(text, errors="coerce").astype("float64")


def parse_timestamp(values: pd.Series, text: pd.Series, formats: Sequence[str]) -> pd.Series:
    """Timestamps of one column, naive UTC; NaT where a value does not parse.

    Parameters
    ----------
    values
        The column as read: typed datetimes (Parquet, Excel, databases) or text.
    text
        The same column through :func:`parse_text`.
    formats
        ``strptime`` formats tried in order; empty means ISO 8601 text and typed values, with
        offsets converted to UTC.

    Returns
    -------
    pd.Series
        ``datetime64[ns]``, timezone-aware inputs converted to UTC and made naive.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = values
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[ns]")
    if not formats:
        # Typed values (Excel, databases) and ISO 8601 text; offsets are converted to UTC.
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        typed = values.map(lambda v: isinstance(v, (datetime, date, pd.Timestamp)))
        if typed.any():
            parsed[typed] = pd.to_datetime(values[typed], errors="coerce", utc=True)
    else:
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        for fmt in formats:
            missing = parsed.isna() & text.notna()
            if not missing.any():
                break
            parsed[missing] = pd.to_datetime(text[missing], format=fmt, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


# Formats common in exports, tried on timestamps that fail: month first before day first, as spreadsheets in
# the US write them ('12/1/2010 8:26' in the UCI log as Excel saves it).
COMMON_TIMESTAMP_FORMATS = (
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%y %H:%M",
    "%d/%m/%y %H:%M",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%Y%m%d",
    "%d %b %Y %H:%M",
    "%d %b %Y",
)


def timestamp_hint(text: pd.Series, parsed: pd.Series, sample: int = 2_000) -> dict[str, str]:
    """``{"timestamp_parseable": hint}`` when most timestamps fail and look like one common format; else ``{}``.

    Parameters
    ----------
    text
        The timestamp column through :func:`parse_text`.
    parsed
        The same column through :func:`parse_timestamp` with the spec's formats (NaT where it failed).
    sample
        Failed values tried against each format.
    """
    failed = text[text.notna() & parsed.isna().to_numpy()]
    if failed.empty or len(failed) * 2 < int(text.notna().sum()):
        return {}
    values = failed.head(sample)
    fits = {fmt: int(pd.to_datetime(values, format=fmt, errors="coerce").notna().sum()) for fmt in COMMON_TIMESTAMP_FORMATS}
    best = max(fits, key=fits.get)  # the first of equals: month first wins a tie
    if fits[best] < 0.9 * len(values):
        return {}
    tied = [fmt for fmt in COMMON_TIMESTAMP_FORMATS if fmt != best and fits[fmt] == fits[best]]
    hint = f"most timestamps look like '{best}': add timestamp_formats: ['{best}'] to the source spec"
    if tied:
        hint += f" (or ['{tied[0]}'], which reads them as well)"
    return {"timestamp_parseable": hint}


_SURROGATE = "[\udc80-\udcff]"


def _any_surrogate(values: pd.Series) -> bool:
    joined = "".join(v for v in values if isinstance(v, str))
    return not joined.isascii() and re.search(_SURROGATE, joined) is not None


def _surrogates(values: pd.Series) -> pd.Series:
    """True where a string holds bytes that did not decode (kept as surrogates by the reader)."""
    if values.dtype != object or not _any_surrogate(values):
        return pd.Series(False, index=values.index)
    return values.str.contains(_SURROGATE, regex=True, na=False).astype(bool)


def _surrogate_cells(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({column: _surrogates(frame[column]) for column in frame.columns}, index=frame.index)


def _printable(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --- the engine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """One raw table: its canonical fields, which are required and its row rules."""

    name: str
    fields: tuple[str, ...]
    timestamp: str
    required: Callable[[dict[str, str]], list[str]]
    rules: Sequence[Rule]


def _record_rules(timestamp: str) -> tuple[Rule, ...]:
    """The rules every raw table starts with, in priority order: shape, encoding, identity, time."""
    return (
        Rule("field_count", None, "record has the wrong number of fields"),
        Rule("valid_encoding", None, "bytes that are not valid in the file's encoding"),
        Rule("customer_id_present", "customer_id", "customer id is missing"),
        Rule("timestamp_parseable", timestamp, "timestamp is missing or not in an accepted format"),
        Rule("timestamp_not_in_future", timestamp, "timestamp is after the ingestion time"),
        Rule("timestamp_in_history", timestamp, f"timestamp is before history_start ({EARLIEST_DAY} when unset)"),
    )


TRANSACTION_RULES = (
    *_record_rules("invoice_date"),
    Rule("amount_numeric", "amount", "amount is missing or not a number"),
    Rule("quantity_integer", "quantity", "quantity is missing or not an integer"),
    Rule("quantity_in_range", "quantity", "quantity is zero or beyond max_abs_quantity"),
    Rule("unit_price_numeric", "unit_price", "unit price is missing or not a number"),
    Rule("unit_price_non_negative", "unit_price", "negative unit price on a line that is not a documented adjustment"),
    Rule("unit_price_in_range", "unit_price", "unit price beyond max_unit_price"),
    Rule("invoice_no_present", "invoice_no", "invoice number is missing"),
    Rule("duplicate_line", None, "exact duplicate of an earlier line"),
)

EVENT_RULES = (
    *_record_rules("event_timestamp"),
    Rule("event_type_known", "event_type", f"event type is not one of {', '.join(EVENT_TYPES)}"),
    Rule("duplicate_line", None, "exact duplicate of an earlier line"),
    Rule("event_id_unique", "event_id", "event id already used by an earlier event"),
)


def _transaction_required(mapping: dict[str, str]) -> list[str]:
    money = ["amount"] if "amount" in mapping else ["quantity", "unit_price"]
    return ["customer_id", "invoice_date", *money]


TRANSACTIONS = Contract("transactions", TRANSACTION_FIELDS, "invoice_date", _transaction_required, TRANSACTION_RULES)
# The customer feed has no row rules of its own: rows without an id are counted and dropped by its asset.
CUSTOMERS = Contract("customers", CUSTOMER_FIELDS, "signup_date", lambda mapping: ["customer_id"], ())
EVENTS = Contract(
    "behavioral_events",
    EVENT_FIELDS,
    "event_timestamp",
    lambda mapping: ["customer_id", "event_timestamp", "event_type"],
    EVENT_RULES,
)


def _require_mapped(name: str, mapping: dict[str, str], contract: Contract) -> None:
    """Refuse a mapping that names no source column for a field the contract requires."""
    missing = [c for c in contract.required(mapping) if c not in mapping]
    if missing:
        raise SourceError(name, "required_column", f"the column mapping names no source column for {', '.join(missing)}")


def timestamp_column(spec: SourceSpec, contract: Contract) -> str:
    """The source column holding the contract's timestamp; the one-line error of a load when the mapping lacks a field."""
    mapping = spec.mapping(contract.fields)
    _require_mapped(spec.location, mapping, contract)
    return mapping[contract.timestamp]


def _header_key(name) -> str:
    return "".join(str(name).split()).casefold()


def align_columns(source: SourceFrame, mapping: dict[str, str], redact: bool = False) -> SourceFrame:
    """The source with each mapped column that its header spells otherwise in case or spaces renamed to the mapping's name.

    ``invoiceno`` or ``Invoice No`` match ``InvoiceNo`` when no column is named exactly that; two columns that
    match one name are a :class:`SourceError` naming both (unless ``redact``: a file without a header shows
    its first record there).
    """
    present = [c for c in source.frame.columns if c != BAD_LINE]
    renames = {}
    for wanted in dict.fromkeys(mapping.values()):
        if wanted in present:
            continue
        matches = [c for c in present if _header_key(c) == _header_key(wanted)]
        if len(matches) > 1:
            found = f"{len(matches)} columns" if redact else " and ".join(repr(c) for c in matches)
            raise SourceError(
                source.name,
                "ambiguous_column",
                f"{found} match it when case and spaces are ignored: rename one, or map the exact name in the source spec",
                row=1,
                column=wanted,
            )
        if matches and matches[0] not in renames:
            renames[matches[0]] = wanted
    if not renames:
        return source
    return replace(source, frame=source.frame.rename(columns=renames))


def _check_columns(source: SourceFrame, mapping: dict[str, str], contract: Contract, redact: bool) -> None:
    present = [c for c in source.frame.columns if c != BAD_LINE]
    _require_mapped(source.name, mapping, contract)
    for canonical, column in mapping.items():
        if column not in present:
            hint = _layout_hint(present)
            found = ", ".join(repr(c) for c in present[:12]) or "no columns"
            if redact and present:  # a file without a header shows its first record here, raw identifiers included
                found = f"{len(present)} column(s), names not shown because the spec hashes or drops PII"
            raise SourceError(
                source.name, "required_column", f"missing (mapped to {canonical}); found {found}{hint}", row=1, column=column
            )


_VALUE = re.compile(r"[-+]?[\d.,:/$€£]+")


def _layout_hint(header: list[str]) -> str:
    """What the first line says about a file whose mapped column is missing: another delimiter, or no header at all.

    One field holding a semicolon, tab, pipe or comma suggests that delimiter; one holding runs of spaces,
    ``delimiter: whitespace``; fields that are all numbers or dates (``00001 19970101 1 11.77``), a record
    rather than a header: ``header: false`` with columns mapped by position.
    """
    fields = header
    hints = []
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")):
            if delimiter in header[0]:
                return f"; the header is one field containing a {label}: wrong delimiter?"
        fields = header[0].split()
        if len(fields) > 1:
            hints.append("its fields are separated by spaces: set delimiter: whitespace")
    if fields and all(_VALUE.fullmatch(f) for f in fields):
        hints.append(
            "the first line is a record, not a header (every field is a number or date): set header: false "
            "and map columns by position (customer_id: 1)"
        )
    return f"; {'; '.join(hints)}" if hints else ""


def normalize_customer_ids(ids: pd.Series) -> pd.Series:
    """Spreadsheet exports write integer ids as floats ('13085.0' in Online Retail II): drop the '.0'."""
    return ids.str.replace(r"^(\d+)\.0+$", r"\1", regex=True).where(ids.notna(), None)


def check_columns(source: SourceFrame, spec: SourceSpec, contract: Contract, redact: bool) -> SourceFrame:
    """The source with its columns aligned to the mapping (:func:`align_columns`), or the :class:`SourceError` a
    load raises for a source that lacks a mapped column; empty sources pass."""
    if source.frame.shape[1]:
        mapping = spec.mapping(contract.fields)
        source = align_columns(source, mapping, redact)
        _check_columns(source, mapping, contract, redact)
    return source


def event_timestamps(source: SourceFrame, spec: SourceSpec, contract: Contract) -> pd.Series:
    """The timestamps of one source's records, parsed as a load parses them; unparseable ones dropped."""
    column = timestamp_column(spec, contract)
    if column not in source.frame.columns:
        return pd.Series(dtype="datetime64[ns]")
    values = source.frame[column]
    return parse_timestamp(values, parse_text(values), spec.timestamp_formats).dropna()


def unparsed_timestamp_hint(source: SourceFrame, spec: SourceSpec, contract: Contract) -> str | None:
    """What to set when most of a source's timestamps do not parse but fit a common format (:func:`timestamp_hint`)."""
    column = timestamp_column(spec, contract)
    if column not in source.frame.columns:
        return None
    values = source.frame[column]
    text = parse_text(values)
    return timestamp_hint(text, parse_timestamp(values, text, spec.timestamp_formats)).get("timestamp_parseable")


def event_day_range(stamps: pd.Series, history_start: date, now: datetime) -> tuple[date, date] | None:
    """First and last day of the timestamps a load accepts by date (from ``history_start`` to ``now``); None if none."""
    stamps = stamps[(stamps >= pd.Timestamp(history_start)) & (stamps <= pd.Timestamp(now))].dropna()
    if stamps.empty:
        return None
    return stamps.min().date(), stamps.max().date()


def _canonical(source: SourceFrame, mapping: dict[str, str], contract: Contract) -> pd.DataFrame:
    frame = source.frame
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in (*contract.fields, "amount"):
        if name in mapping:
            out[name] = frame[mapping[name]].reset_index(drop=True)
    out[BAD_LINE] = frame[BAD_LINE].reset_index(drop=True) if BAD_LINE in frame.columns else None
    out["_source"] = source.name
    out["_source_row"] = source.rows
    return out


def validate(
    sources: Sequence[SourceFrame],
    contract: Contract,
    spec: SourceSpec,
    limits: RuleLimits,
    pii: PiiSpec,
    pii_key: bytes | None,
    loaded_at: datetime,
    history_start: date,
    seen: SeenRows | None = None,
) -> Validated:
    """Map, protect, check and split the records of one load; raises SourceError for unreadable inputs.

    A load read in chunks passes the same ``seen`` to every chunk's call: a line or event id repeated
    from an earlier chunk is then a duplicate as it would be in one call.
    """
    mapping = spec.mapping(contract.fields)
    frames, rows_by_source, extras, empty = [], {}, {}, []
    for source in sources:
        rows_by_source[source.name] = rows_by_source.get(source.name, 0) + len(source)  # a file may come in chunks
        if source.frame.shape[1] == 0 or len(source) == 0:
            empty.append(source.name)
            if source.frame.shape[1] == 0:
                continue
        source = align_columns(source, mapping, redact=bool(pii.columns))
        _check_columns(source, mapping, contract, redact=bool(pii.columns))
        extra = sorted(set(source.frame.columns) - set(mapping.values()) - {BAD_LINE})
        if extra:
            extras[source.name] = [_printable(c) for c in extra]  # a non-UTF-8 header name would not encode
        frames.append(_canonical(source, mapping, contract))
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*mapping, BAD_LINE, "_source", "_source_row"])
    rows_read = len(raw)

    # Text normalisation (trim, '' -> missing), then privacy, before any rule looks at a value.
    text = pd.DataFrame({c: parse_text(raw[c]) for c in mapping}, index=raw.index)
    text["customer_id"] = normalize_customer_ids(text["customer_id"])
    # Found before hashing, which would hide undecodable bytes in an identifier.
    undecodable = _surrogate_cells(text) if any(source.undecodable for source in sources) else None
    text = apply_pii(text, pii, pii_key)
    bad_line = raw[BAD_LINE] if BAD_LINE in raw else pd.Series(None, index=raw.index, dtype=object)
    hints = {
        "valid_encoding": f"the file is read as {spec.encoding}; if it has another encoding, name it in the source spec, "
        "e.g. encoding: cp1252 or encoding: latin-1"
    }
    shown_line = bad_line
    if pii.columns:
        text = withhold_misaligned(text, bad_line.notna())
        shown_line = pd.Series(None, index=bad_line.index, dtype=object)
        hints["field_count"] = "the line is not shown: the spec hashes or drops PII"

    parsed = _parse(raw, text, mapping, contract, spec, seen)
    parsed["ok__field_count"] = bad_line.isna().to_numpy()
    parsed["ok__valid_encoding"] = ~undecodable.any(axis=1).to_numpy() if undecodable is not None else True
    failures = _failures(parsed, contract, limits, loaded_at, history_start)

    accepted = _accepted_frame(parsed.drop(index=failures.index.unique()), contract, loaded_at)
    hints.update(timestamp_hint(text[contract.timestamp], parsed[contract.timestamp]) if len(raw) else {})
    quarantine = _quarantine_frame(failures, raw, text, undecodable, shown_line, parsed, mapping, contract, loaded_at, hints)
    by_rule = {str(k): int(v) for k, v in quarantine["rule"].value_counts().items()}
    return Validated(accepted, quarantine, rows_read, by_rule, rows_by_source, extras, empty)


def describe_quarantined(row) -> str:
    """One quarantine row as the one line a log shows: source, row, the column when the rule judges one, message, rule."""
    column = row["column_name"]
    where = f": column '{column}'" if isinstance(column, str) else ""
    return f"{row['source']}: row {row['source_row']}{where}: {row['message']} (rule: {row['rule']})"


class SeenRows:
    """What earlier chunks of a load held, for the cross-row rules: a 64-bit hash per line and per event id.

    Eight bytes a row instead of the rows themselves; two different lines share a hash with a probability
    of about 1e-4 in a 50-million-line load, and the later one is then quarantined, never lost.
    """

    def __init__(self):
        self._hashes: dict[str, np.ndarray] = {}

    def earlier(self, kind: str, rows: pd.DataFrame) -> pd.Series:
        """Which of ``rows`` an earlier call saw (under ``kind``); remembers these rows for the next calls."""
        # unicode_escape: undecodable text (surrogates) hashes too, each string as itself.
        hashes = pd.util.hash_pandas_object(rows, index=False, encoding="unicode_escape").to_numpy()
        known = self._hashes.get(kind, np.array([], dtype=np.uint64))  # sorted
        if len(known):
            hit = known[np.minimum(np.searchsorted(known, hashes), len(known) - 1)] == hashes
        else:
            hit = np.zeros(len(hashes), dtype=bool)
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        self._hashes[kind] = np.sort(np.concatenate([known, np.unique(hashes[~hit])]), kind="stable")
        return pd.Series(hit, index=rows.index)


def _duplicated_lines(raw: pd.DataFrame, text: pd.DataFrame, mapping: dict[str, str], seen: SeenRows | None) -> pd.Series:
    """Lines whose mapped values and raw line repeat an earlier line of the load."""
    key = text[[c for c in mapping if c in text.columns]].assign(_bad=raw.get(BAD_LINE))
    duplicated = key.duplicated(keep="first")
    return duplicated | seen.earlier("line", key) if seen is not None else duplicated


def _synthetic_id(frame: pd.DataFrame, columns: Sequence[str], prefix: str = "") -> pd.Series:
    joined = frame[list(columns)].astype(str).agg("|".join, axis=1)
    return prefix + joined.map(lambda v: hashlib.sha1(v.encode("utf-8", "surrogateescape")).hexdigest()[:16])


def _parse(
    raw: pd.DataFrame,
    text: pd.DataFrame,
    mapping: dict[str, str],
    contract: Contract,
    spec: SourceSpec,
    seen: SeenRows | None = None,
) -> pd.DataFrame:
    """Typed canonical columns (NaN/NaT where a value does not parse) plus provenance."""
    out = pd.DataFrame(index=raw.index)
    ts = contract.timestamp
    out[ts] = parse_timestamp(raw[ts], text[ts], spec.timestamp_formats) if len(raw) else pd.Series(dtype="datetime64[ns]")
    out["customer_id"] = text["customer_id"]
    if contract is TRANSACTIONS:
        if "amount" in mapping:
            # A log of amounts: a line is one unit at that price; a negative amount is a return.
            amount = _number(raw["amount"], text["amount"])
            out["amount"] = amount
            out["quantity"] = np.where(amount.isna(), np.nan, np.where(amount < 0, -1.0, 1.0))
            out["unit_price"] = amount.abs()
        else:
            out["quantity"] = _number(raw["quantity"], text["quantity"])
            out["unit_price"] = _number(raw["unit_price"], text["unit_price"])
        for name in ("stock_code", "description", "country"):
            out[name] = text.get(name)
        if "invoice_no" in text:
            out["invoice_no"] = text["invoice_no"]
        else:
            # No invoice column: one order per customer and timestamp; returns get the UCI 'C' prefix. The '#'
            # keeps a customer id that starts with C (c1, CUST-7) from reading as a cancellation.
            stamp = out[ts].dt.strftime("%Y%m%dT%H%M%S").fillna("NaT")
            prefix = np.where(out["quantity"] < 0, "C#", "#")
            out["invoice_no"] = pd.Series(prefix, index=out.index) + out["customer_id"].fillna("?") + "@" + stamp
        duplicated = _duplicated_lines(raw, text, mapping, seen)
    else:
        out["event_type"] = text["event_type"].str.lower()
        out["session_id"] = text.get("session_id")
        key = [c for c in mapping if c in text.columns]
        duplicated = _duplicated_lines(raw, text, mapping, seen)
        if "event_id" in text:
            out["event_id"] = text["event_id"]
        else:
            out["event_id"] = _synthetic_id(text[key], key, "e")
        repeated_id = out["event_id"].duplicated(keep="first")
        if seen is not None:
            repeated_id |= seen.earlier("event_id", out[["event_id"]])
        out["ok__event_id_unique"] = (~(repeated_id & ~duplicated)).to_numpy()
    out["ok__duplicate_line"] = (~duplicated).to_numpy()
    out["_source"] = raw["_source"]
    out["_source_row"] = raw["_source_row"].astype("int64")
    return out


def _row_rules(contract: Contract, limits: RuleLimits, now: datetime, history_start: date, columns) -> pa.DataFrameSchema:
    """The row rules as one pandera schema: a column check per rule, named after it.

    Cross-column and cross-row rules (duplicates, field counts, encodings, adjustments) are computed
    first into ``ok__<rule>`` columns; pandera then reports every failing row of every rule at once.
    Column-level checks keep this fast (about 2 s per half a million failures).
    """
    ts = contract.timestamp
    start = pd.Timestamp(history_start)
    now = pd.Timestamp(now)

    def check(rule: str, fn) -> pa.Check:
        return pa.Check(fn, name=rule, ignore_na=False, error=rule)

    checks: dict[str, list[pa.Check]] = {
        "customer_id": [check("customer_id_present", lambda s: s.notna())],
        ts: [
            check("timestamp_parseable", lambda s: s.notna()),
            check("timestamp_not_in_future", lambda s: s.isna() | (s <= now)),
            check("timestamp_in_history", lambda s: s.isna() | (s >= start)),
        ],
    }
    if contract is TRANSACTIONS:
        checks["quantity"] = [
            check("quantity_integer", lambda s: s.notna() & np.isfinite(s) & (s == np.round(s))),
            check("quantity_in_range", lambda s: s.isna() | ((s != 0) & (s.abs() <= limits.max_abs_quantity))),
        ]
        checks["unit_price"] = [
            check("unit_price_numeric", lambda s: s.notna() & np.isfinite(s)),
            check("unit_price_in_range", lambda s: s.isna() | (s <= limits.max_unit_price)),
        ]
        checks["invoice_no"] = [check("invoice_no_present", lambda s: s.notna())]
        if "amount" in columns:
            checks["amount"] = [check("amount_numeric", lambda s: s.notna() & np.isfinite(s))]
        checks["ok__unit_price_non_negative"] = [check("unit_price_non_negative", lambda s: s)]
    else:
        checks["event_type"] = [check("event_type_known", lambda s: s.isin(EVENT_TYPES))]
        checks["ok__event_id_unique"] = [check("event_id_unique", lambda s: s)]
    for rule in ("field_count", "valid_encoding", "duplicate_line"):
        checks[f"ok__{rule}"] = [check(rule, lambda s: s)]
    return pa.DataFrameSchema(
        {column: pa.Column(checks=rules, nullable=True, coerce=False) for column, rules in checks.items()},
        name=f"raw.{contract.name} row rules",
    )


def _failures(parsed: pd.DataFrame, contract: Contract, limits: RuleLimits, now: datetime, history_start: date) -> pd.DataFrame:
    """One row per (record, broken rule), indexed by record."""
    if contract is TRANSACTIONS:
        adjustments = {code.upper() for code in limits.adjustment_stock_codes}
        documented = parsed["stock_code"].fillna("").str.upper().isin(adjustments)
        parsed["ok__unit_price_non_negative"] = (
            parsed["unit_price"].isna() | (parsed["unit_price"] >= 0) | documented
        ).to_numpy()
    schema = _row_rules(contract, limits, now, history_start, parsed.columns)
    if _every_row_passes(schema, parsed):
        return pd.DataFrame({"rule": pd.Series(dtype=object)})
    try:
        schema.validate(parsed, lazy=True)
        return pd.DataFrame({"rule": pd.Series(dtype=object)})
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    cases = cases[cases["index"].notna()]
    order = {rule.name: i for i, rule in enumerate(contract.rules)}
    failures = pd.DataFrame({"rule": cases["check"].astype(str).to_numpy()}, index=cases["index"].astype("int64").to_numpy())
    failures["order"] = failures["rule"].map(order)
    return failures.sort_values("order", kind="stable")


def _every_row_passes(schema: pa.DataFrameSchema, parsed: pd.DataFrame) -> bool:
    """Whether every row passes every rule: the schema's own check functions on its columns, without pandera's
    report, which costs more than the checks on a small frame. Only a plain all-true answer counts as a pass;
    anything else (a failing row, a missing column, a check that raises or does not answer with booleans) goes to
    pandera, whose failure cases are the quarantine's."""
    for name, column in schema.columns.items():
        if name not in parsed.columns:
            return False
        for check in column.checks:
            try:
                passed = check._check_fn(parsed[name])
            except Exception:  # pandera reports a check that raises its own way: leave it to pandera
                return False
            if not isinstance(passed, pd.Series) or passed.dtype != bool or not passed.all():
                return False
    return True


def _accepted_frame(parsed: pd.DataFrame, contract: Contract, loaded_at: datetime) -> pd.DataFrame:
    if contract is TRANSACTIONS:
        columns = list(TRANSACTION_FIELDS)
        out = parsed[columns].copy()
        out["quantity"] = out["quantity"].astype("int64")
    else:
        columns = list(EVENT_FIELDS)
        out = parsed[columns].copy()
    for column in columns:
        if out[column].dtype == object:
            out[column] = out[column].astype(object)
    out["_source"] = parsed["_source"].astype(str)
    out["_source_row"] = parsed["_source_row"].astype("int64")
    out["_loaded_at"] = pd.Timestamp(loaded_at).as_unit("ns")
    return out.reset_index(drop=True)


def _quarantine_frame(failures, raw, text, undecodable, bad_line, parsed, mapping, contract, loaded_at, hints) -> pd.DataFrame:
    if failures.empty:
        return pd.DataFrame({c.name: pd.Series(dtype=object if c.dtype == "str" else c.dtype) for c in QUARANTINE_FIELDS})
    first = failures[~failures.index.duplicated(keep="first")]["rule"]  # failures are sorted by rule order
    every = pd.Series("", index=first.index, dtype=object)
    for rule in contract.rules:
        hit = failures.index[failures["rule"].to_numpy() == rule.name]
        if len(hit):
            every[hit] = every[hit] + np.where(every[hit].eq(""), "", ";") + rule.name
    rules = {rule.name: rule for rule in contract.rules}
    column = pd.Series(None, index=first.index, dtype=object)
    value = pd.Series(None, index=first.index, dtype=object)
    for rule_name, members in first.groupby(first).groups.items():
        rule = rules[rule_name]
        if rule_name == "field_count":
            value[members] = bad_line[members]
        elif rule_name == "valid_encoding":
            for name in reversed(text.columns):  # the first column holding undecodable bytes wins
                hit = undecodable.loc[members, name]
                column[hit[hit].index] = name
                value[hit[hit].index] = text.loc[hit[hit].index, name]
        elif rule.column is not None:
            column[members] = rule.column
            source = text if rule.column in text.columns else raw
            if rule.column in source.columns:
                value[members] = source.loc[members, rule.column]
    value = value.map(_printable, na_action="ignore") if _any_surrogate(value) else value
    message = first.map(lambda r: rules[r].message)
    shown = value.notna() & first.ne("duplicate_line")
    message[shown] = message[shown] + ": " + value[shown].map(repr)
    for rule_name, hint in hints.items():
        message[first.eq(rule_name)] += f" ({hint})"
    index = first.index
    records_text = text.loc[index].copy()
    for name in records_text.columns:
        if records_text[name].dtype == object and _any_surrogate(records_text[name]):
            records_text[name] = records_text[name].map(_printable, na_action="ignore")
    records = records_text.to_json(orient="records", lines=True, force_ascii=False).splitlines()
    ts = parsed.loc[index, contract.timestamp]
    undated = first.isin(UNDATED_RULES).to_numpy()
    out = pd.DataFrame(
        {
            "source": raw.loc[index, "_source"].astype(str).to_numpy(),
            "source_row": raw.loc[index, "_source_row"].astype("int64").to_numpy(),
            "partition_date": pd.Series(ts.dt.normalize().to_numpy()).where(~undated),
            "rule": first.to_numpy(),
            # None, not NaN: a whole-record rule names no column, and a frame would read NaN as the text 'nan'.
            "column_name": column.map(lambda c: mapping.get(c, c), na_action="ignore").astype(object).to_numpy(),
            "value": value.astype(object).to_numpy(),
            "message": message.to_numpy(),
            "rules": every.to_numpy(),
            "record": records,
            "loaded_at": pd.Timestamp(loaded_at).as_unit("ns"),
        }
    )
    out = out.sort_values(["source", "source_row"]).reset_index(drop=True)
    for name in ("column_name", "value"):
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out
