"""The warehouse contract of the raw layer, as pandera schemas built from :mod:`clv_platform.raw_tables`.

Every source (the built-in generator, files, S3, PostgreSQL) is brought to these columns before it is
written to ``raw.*``; dbt's staging models read exactly these.
"""

from __future__ import annotations

import pandera.pandas as pa

from clv_platform.raw_tables import BEHAVIORAL_EVENTS, CUSTOMERS, EVENT_TYPES, TRANSACTIONS, Table

__all__ = ["EVENT_TYPES", "behavioral_events_schema", "customers_schema", "transactions_schema"]

_DTYPES = {"str": str, "int64": "int64", "float64": float, "datetime64[ns]": "datetime64[ns]"}


def _schema(table: Table, **rules: dict) -> pa.DataFrameSchema:
    """The table's columns in order, strict; ``rules`` adds column options by name (checks, uniqueness)."""
    columns = {
        c.name: pa.Column(_DTYPES[c.dtype], nullable=c.nullable, description=c.description, **rules.get(c.name, {}))
        for c in table.columns
    }
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name=table.name, description=table.description)


transactions_schema = _schema(TRANSACTIONS)
behavioral_events_schema = _schema(
    BEHAVIORAL_EVENTS,
    event_id={"unique": True},
    event_type={"checks": pa.Check.isin(EVENT_TYPES)},
)
customers_schema = _schema(CUSTOMERS, customer_id={"unique": True})
