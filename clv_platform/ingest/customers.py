"""raw.customers: one row per customer, from the customer feed, else derived from the stored transactions.

Pure: DuckDB connections and frames in, frames out; no Dagster.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from clv_platform.ingest.readers import BAD_LINE, SourceError, iter_source
from clv_platform.ingest.spec import IngestionSpec
from clv_platform.ingest.validate import (
    CUSTOMERS,
    apply_pii,
    check_columns,
    normalize_customer_ids,
    parse_text,
    parse_timestamp,
    withhold_misaligned,
)


class CustomerTable(NamedTuple):
    """The rows of raw.customers, where they came from, and the feed rows dropped (by reason)."""

    customers: pd.DataFrame
    origin: str
    feed_rows_dropped: dict | None


def customers_from_transactions(con) -> pd.DataFrame:
    """One row per customer of raw.transactions: most frequent country, channel 'unknown', first purchase."""
    return con.execute(
        """
        select customer_id, mode(country) as country, 'unknown' as acquisition_channel,
               min(invoice_date) as signup_date
        from raw.transactions group by customer_id order by customer_id
        """
    ).df()


def customer_table(spec: IngestionSpec, pii_key: bytes | None, con=None, builtin: pd.DataFrame | None = None) -> CustomerTable:
    """raw.customers for ``spec``: the built-in dataset's ``builtin`` customers when the source is the generator,
    else the customer feed with gaps filled from raw.transactions in ``con``, else those derived rows alone.

    Raises :class:`SourceError` (one line) when the feed cannot be read.
    """
    if spec.is_generated:
        return CustomerTable(apply_pii(builtin, spec.pii, pii_key), "generator", None)
    derived = customers_from_transactions(con)
    if spec.customers is not None:
        customers, dropped = customer_feed(spec, pii_key, derived)
        origin = f"customer feed ({spec.customers.kind})"
    else:
        customers, origin, dropped = derived, "derived from raw.transactions", None
    customers["country"] = customers["country"].fillna("Unknown")
    return CustomerTable(customers, origin, dropped)


def customer_feed(spec: IngestionSpec, pii_key: bytes | None, derived: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The customer feed mapped to the contract; gaps filled from the transactions (first purchase, country)."""
    source = spec.customers
    mapping = source.mapping(CUSTOMERS.fields)
    if "customer_id" not in mapping:
        raise SourceError(
            source.path or source.kind, "required_column", "the customer feed's mapping names no customer_id column"
        )
    parts = []
    timestamps = mapping.get("signup_date", mapping["customer_id"])
    for frame in iter_source(source, timestamps, max_file_bytes=spec.limits.max_file_bytes):
        if frame.frame.shape[1] == 0:
            continue
        frame = check_columns(frame, source, CUSTOMERS, bool(spec.pii.columns))
        part = pd.DataFrame({name: parse_text(frame.frame[column]) for name, column in mapping.items()})
        if spec.pii.columns and BAD_LINE in frame.frame:  # shifted fields: a raw id may sit under 'country'
            part = withhold_misaligned(part, frame.frame[BAD_LINE].notna())
        if "signup_date" in mapping:
            part["signup_date"] = parse_timestamp(
                frame.frame[mapping["signup_date"]], part["signup_date"], source.timestamp_formats
            )
        parts.append(part)
    feed = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["customer_id"])
    feed["customer_id"] = normalize_customer_ids(feed["customer_id"])
    feed = apply_pii(feed, spec.pii, pii_key)
    without_id = int(feed["customer_id"].isna().sum())
    feed = feed[feed["customer_id"].notna()]
    repeated = int(feed["customer_id"].duplicated(keep="last").sum())
    feed = feed.drop_duplicates("customer_id", keep="last")
    merged = feed.merge(derived, on="customer_id", how="left", suffixes=("", "_derived"))
    for column in ("country", "acquisition_channel", "signup_date"):
        if column not in merged:
            merged[column] = None
        if f"{column}_derived" in merged:
            merged[column] = merged[column].where(merged[column].notna(), merged[f"{column}_derived"])
    merged["acquisition_channel"] = merged["acquisition_channel"].fillna("unknown")
    no_date = int(merged["signup_date"].isna().sum())
    merged = merged[merged["signup_date"].notna()]
    out = merged[["customer_id", "country", "acquisition_channel", "signup_date"]].reset_index(drop=True)
    out["signup_date"] = pd.to_datetime(out["signup_date"]).astype("datetime64[ns]")
    # Dropped rows are counted, never silent: a customer without an id, or without a signup date or purchase.
    return out, {
        "without_customer_id": without_id,
        "repeated_customer_id_kept_last": repeated,
        "without_signup_date_or_purchase": no_date,
    }
