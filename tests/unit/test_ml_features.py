"""The feature contract: every broken rule is named."""

import numpy as np
import pytest

from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN, validate_feature_frame
from clv_platform.ml.synthetic import make_examples


@pytest.fixture
def examples():
    return make_examples(n_customers=20, cutoffs=("2024-01-01", "2024-02-01"))


def test_synthetic_examples_meet_the_contract(examples):
    assert validate_feature_frame(examples, require_label=True) is examples
    assert list(examples.columns[2 : 2 + len(FEATURE_COLUMNS)]) == list(FEATURE_COLUMNS)


def test_label_is_only_required_when_asked(examples):
    features = examples.drop(columns=[LABEL_COLUMN])
    validate_feature_frame(features)
    with pytest.raises(ValueError, match=r"missing required column.*future_revenue"):
        validate_feature_frame(features, require_label=True)


def _broken(examples, column, value, row=0):
    frame = examples.copy()
    if column in frame and frame[column].dtype.kind == "i" and not float(value).is_integer():
        frame[column] = frame[column].astype("float64")
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("orders_30d", np.nan, "'orders_30d' must be finite and not null"),
        ("spend_90d", np.inf, "'spend_90d' must be finite"),
        ("frequency", -1, "'frequency' must be >= 0"),
        ("recency", 10_000, "'recency' must be <= 'T'"),
        (LABEL_COLUMN, -5.0, "'future_revenue' must be >= 0"),
        ("customer_id", None, "'customer_id' must not be null"),
    ],
)
def test_broken_rules_name_the_column(examples, column, value, message):
    with pytest.raises(ValueError, match=message):
        validate_feature_frame(_broken(examples, column, value), require_label=True)


def test_missing_and_non_numeric_columns(examples):
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['T'\]"):
        validate_feature_frame(examples.drop(columns=["T"]))
    frame = examples.astype({"sessions_90d": str})
    with pytest.raises(ValueError, match="'sessions_90d' must be numeric"):
        validate_feature_frame(frame)


def test_one_row_per_customer_and_cutoff(examples):
    doubled = examples.iloc[[0, 0]].reset_index(drop=True)
    with pytest.raises(ValueError, match="one row per"):
        validate_feature_frame(doubled)


def test_the_channel_columns_are_the_dbt_projects():
    """The channel_<name> features dbt one-hot encodes (its var acquisition_channels) are the columns models read."""
    from clv_platform import settings
    from clv_platform.ml.features import ACQUISITION_CHANNELS

    assert list(ACQUISITION_CHANNELS) == settings.dbt_var_defaults()["acquisition_channels"]
