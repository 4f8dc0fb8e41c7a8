"""The warehouse contract of the raw layer, as pandera schemas.

Every source (the built-in generator today, files and databases later) is brought to these
columns before it is written to ``raw.*``; dbt's staging models read exactly these.
"""

from __future__ import annotations

import pandera.pandas as pa

EVENT_TYPES = ("page_view", "search", "add_to_cart")

# The UCI Online Retail column names and their canonical warehouse names.
UCI_COLUMNS = {
    "InvoiceNo": "invoice_no",
    "StockCode": "stock_code",
    "Description": "description",
    "Quantity": "quantity",
    "InvoiceDate": "invoice_date",
    "UnitPrice": "unit_price",
    "CustomerID": "customer_id",
    "Country": "country",
}

# Where each stored row came from: file/object/query, its row there, and when it was loaded.
PROVENANCE = {
    "_source": pa.Column(str),
    "_source_row": pa.Column("int64"),
    "_loaded_at": pa.Column("datetime64[ns]"),
}

transactions_schema = pa.DataFrameSchema(
    {
        "invoice_no": pa.Column(str),
        # A log without products or countries (customer, date, amount) leaves these empty.
        "stock_code": pa.Column(str, nullable=True),
        "description": pa.Column(str, nullable=True),
        "quantity": pa.Column("int64"),
        "invoice_date": pa.Column("datetime64[ns]"),
        "unit_price": pa.Column(float),
        "customer_id": pa.Column(str),
        "country": pa.Column(str, nullable=True),
        **PROVENANCE,
    },
    strict=True,
    ordered=True,
    name="raw.transactions",
)

behavioral_events_schema = pa.DataFrameSchema(
    {
        "event_id": pa.Column(str, unique=True),
        "session_id": pa.Column(str, nullable=True),
        "customer_id": pa.Column(str),
        "event_type": pa.Column(str, pa.Check.isin(EVENT_TYPES)),
        "event_timestamp": pa.Column("datetime64[ns]"),
        **PROVENANCE,
    },
    strict=True,
    ordered=True,
    name="raw.behavioral_events",
)

customers_schema = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, unique=True),
        "country": pa.Column(str),
        "acquisition_channel": pa.Column(str),
        "signup_date": pa.Column("datetime64[ns]"),
    },
    strict=True,
    ordered=True,
    name="raw.customers",
)
