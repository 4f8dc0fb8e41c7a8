"""The column contract between the dbt marts and the model.

``marts.training_examples`` has one row per customer per training cutoff: the identifiers, the features
below, ``horizon_days`` and the label ``future_revenue`` (net revenue in the ``horizon_days`` after the
cutoff). ``marts.customer_features`` has the same features at the scoring cutoff, without the label.

The vocabulary is the BTYD one: ``frequency`` counts repeat purchase days, ``recency`` is the age of the
customer at their last purchase in days (``0`` for one-time buyers) and ``T`` the age of the customer at the
cutoff in days, so the days since the last purchase are ``T - recency``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ID_COLUMN = "customer_id"
CUTOFF_COLUMN = "cutoff_date"
LABEL_COLUMN = "future_revenue"
HORIZON_COLUMN = "horizon_days"
PREDICTION_COLUMN = "predicted_clv"

# The channels one-hot encoded as channel_<name> features (0/1); others, and customers missing from
# raw.customers, are all zeros. The one list of them: dbt reads it from the generated macro (DBT_MACRO_FILE).
ACQUISITION_CHANNELS: tuple[str, ...] = ("organic_search", "paid_search", "social", "email", "referral", "direct")

# The numeric columns of the marts, in their order; each is defined with its unit in
# dbt_project/models/intermediate/_customer_features__docs.md.
FEATURE_COLUMNS: tuple[str, ...] = (
    # BTYD core
    "frequency",
    "recency",
    "T",
    "monetary_value",
    # trailing windows and trends
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "items_30d",
    "items_90d",
    "items_365d",
    "distinct_products_30d",
    "distinct_products_90d",
    "distinct_products_365d",
    "orders_trend_90d_365d",
    "spend_trend_90d_365d",
    # purchase pattern
    "purchase_gap_mean_days",
    "purchase_gap_stddev_days",
    "basket_value_mean",
    "basket_items_mean",
    "distinct_products",
    "product_diversity",
    "return_rate",
    "spend_share_90d",
    # web behaviour over 90 days
    "sessions_90d",
    "session_seconds_mean_90d",
    "page_views_90d",
    "searches_90d",
    "add_to_cart_90d",
    "cart_to_purchase_90d",
    # customer attributes
    "tenure_days",
    "country_customer_share",
    *(f"channel_{channel}" for channel in ACQUISITION_CHANNELS),
)

# The readable attributes and dates the marts carry after the features; the model does not read them.
ATTRIBUTE_COLUMNS: tuple[str, ...] = ("country", "acquisition_channel", "first_purchase_date", "last_purchase_date")

# Counts, durations, ratios of non-negative amounts and flags cannot be negative. Net spend and
# its trend are net of returns, so they may be.
NON_NEGATIVE_FEATURES: tuple[str, ...] = tuple(
    column for column in FEATURE_COLUMNS if not column.startswith(("spend_30d", "spend_90d", "spend_365d", "spend_trend"))
)


def require_columns(df: pd.DataFrame, columns: Iterable[str], *, frame_name: str = "frame") -> None:
    """Raise ``ValueError`` naming every column of ``columns`` missing from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{frame_name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{frame_name} is missing required column(s) {missing}")


def require_numeric_finite(df: pd.DataFrame, columns: Iterable[str], *, frame_name: str = "frame") -> None:
    """Raise ``ValueError`` naming the first column that is not numeric or holds null / infinite values."""
    for column in columns:
        series = df[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            raise ValueError(f"{frame_name} column '{column}' must be numeric, got dtype {series.dtype}")
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"{frame_name} column '{column}' must be finite and not null: {int(bad.sum())} null or infinite value(s)"
            )


def validate_feature_frame(
    df: pd.DataFrame,
    require_label: bool = False,
    *,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
) -> pd.DataFrame:
    """Check a frame against the feature contract and return it unchanged.

    Parameters
    ----------
    df
        One row per ``customer_id`` per ``cutoff_date`` with at least the feature columns.
    require_label
        Also require ``future_revenue`` (numeric, finite, ``>= 0``), as in ``marts.training_examples``.
    feature_columns
        The features to check; the default is :data:`FEATURE_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself, so the call can be chained.

    Raises
    ------
    ValueError
        Naming the column and the rule: a column is missing; ``customer_id`` or ``cutoff_date`` is null;
        ``(customer_id, cutoff_date)`` is not unique; a feature is not numeric, is null or infinite; a count
        or duration is negative; ``recency > T``; the label is negative.

    Examples
    --------
    >>> import pandas as pd
    >>> row = {c: [0.0] for c in FEATURE_COLUMNS} | {"customer_id": ["c1"], "cutoff_date": ["2011-06-01"]}
    >>> len(validate_feature_frame(pd.DataFrame(row)))
    1
    """
    required = [ID_COLUMN, CUTOFF_COLUMN, *feature_columns]
    if require_label:
        required.append(LABEL_COLUMN)
    require_columns(df, required, frame_name="feature frame")

    for column in (ID_COLUMN, CUTOFF_COLUMN):
        nulls = int(df[column].isna().sum())
        if nulls:
            raise ValueError(f"feature frame column '{column}' must not be null: {nulls} null value(s)")
    duplicated = df.duplicated([ID_COLUMN, CUTOFF_COLUMN])
    if duplicated.any():
        example = df.loc[duplicated, [ID_COLUMN, CUTOFF_COLUMN]].iloc[0].tolist()
        raise ValueError(
            f"feature frame must have one row per ({ID_COLUMN}, {CUTOFF_COLUMN}): "
            f"{int(duplicated.sum())} duplicate(s), e.g. {example}"
        )

    require_numeric_finite(df, feature_columns, frame_name="feature frame")
    for column in NON_NEGATIVE_FEATURES:
        if column in feature_columns and (df[column] < 0).any():
            raise ValueError(f"feature frame column '{column}' must be >= 0: {int((df[column] < 0).sum())} negative value(s)")
    if "recency" in feature_columns and "T" in feature_columns:
        late = df["recency"] > df["T"]
        if late.any():
            raise ValueError(
                f"feature frame column 'recency' must be <= 'T' (last purchase before the cutoff): "
                f"{int(late.sum())} row(s) break it"
            )

    if require_label:
        require_numeric_finite(df, [LABEL_COLUMN], frame_name="feature frame")
        negative = df[LABEL_COLUMN] < 0
        if negative.any():
            raise ValueError(f"feature frame column '{LABEL_COLUMN}' must be >= 0: {int(negative.sum())} negative value(s)")
    return df


DBT_MACRO_FILE = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "customer_feature_columns.sql"


def dbt_feature_macros() -> str:
    """The dbt macros giving the marts' columns and the channels, generated from the lists above.

    ``python -m clv_platform.ml.features`` writes them to :data:`DBT_MACRO_FILE`; a unit test checks the
    checked-in file is current, so dbt's SQL and the model read the same columns.
    """

    def jinja_list(values: Iterable[str], indent: str = "        ") -> str:
        return "".join(f"{indent}'{value}',\n" for value in values)

    return (
        "{#\n"
        "    Generated from clv_platform/ml/features.py by `python -m clv_platform.ml.features`: edit there, not here.\n"
        "    acquisition_channels(): the channels one-hot encoded as channel_<name>.\n"
        "    customer_feature_columns(): the columns customer_features and training_examples carry after customer_id\n"
        "    and cutoff_date, in order: every feature the model reads, then the readable attributes and dates.\n"
        "#}\n"
        "{% macro acquisition_channels() -%}\n"
        f"    {{{{ return([\n{jinja_list(ACQUISITION_CHANNELS)}    ]) }}}}\n"
        "{%- endmacro %}\n"
        "\n"
        "{% macro customer_feature_columns() -%}\n"
        f"    {{{{ return([\n{jinja_list([*FEATURE_COLUMNS, *ATTRIBUTE_COLUMNS])}    ]) }}}}\n"
        "{%- endmacro %}\n"
    )


if __name__ == "__main__":
    DBT_MACRO_FILE.write_text(dbt_feature_macros())
    print(f"wrote {DBT_MACRO_FILE}")
