"""The cleaning rules the feature layer applies, measured on each load so a reader sees their weight.

Raw rows are stored as delivered; dbt applies these rules (``stg_shop__transactions`` and the
intermediate models). This module only counts what they touch, for the load's metadata.
"""

from __future__ import annotations

import pandas as pd

from clv_platform import settings


def non_product_stock_codes() -> list[str]:
    """The dbt var ``non_product_stock_codes``: one list, read by dbt and by this summary."""
    return list(settings.dbt_var_defaults()["non_product_stock_codes"])


def cleaning_summary(lines: pd.DataFrame, codes: list[str] | None = None) -> pd.DataFrame:
    """Lines and value each cleaning rule touches in ``lines`` (canonical raw.transactions columns)."""
    codes = {c.upper() for c in (codes if codes is not None else non_product_stock_codes())}
    value = lines["quantity"] * lines["unit_price"]
    stock = lines["stock_code"].fillna("").str.upper()
    non_product = stock.isin(codes) | stock.str.startswith("GIFT")
    cancellation = lines["invoice_no"].fillna("").str.upper().str.startswith("C")
    rows = [
        (
            "cancellations net against revenue",
            int(cancellation.sum()),
            float(value[cancellation].sum()),
            "subtracted from the customer's spend and labels (net revenue, floored at 0)",
        ),
        (
            "non-product codes excluded from product revenue",
            int(non_product.sum()),
            float(value[non_product].sum()),
            "kept in raw and staging, flagged is_non_product, left out of purchases, spend and labels",
        ),
        (
            "order values capped at the 99.9th percentile",
            None,
            None,
            "applied per training cutoff in the feature layer; caps recorded on marts/customer_features",
        ),
    ]
    return pd.DataFrame(rows, columns=["rule", "lines", "value", "effect"])
