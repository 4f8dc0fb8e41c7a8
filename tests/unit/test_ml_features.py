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


def test_the_dbt_macros_are_generated_from_the_feature_list():
    """dbt's marts and the model read one list: the checked-in macros are the ones generated from Python's."""
    from clv_platform.ml.features import DBT_MACRO_FILE, dbt_feature_macros

    assert DBT_MACRO_FILE.read_text() == dbt_feature_macros(), (
        f"{DBT_MACRO_FILE} differs from clv_platform/ml/features.py: run `python -m clv_platform.ml.features`"
    )


def test_the_macros_give_dbt_the_python_lists():
    """Rendered as dbt renders them (return, do), the macros give the channels and the marts' columns."""
    import jinja2

    from clv_platform.ml.features import ACQUISITION_CHANNELS, ATTRIBUTE_COLUMNS, DBT_MACRO_FILE

    class Returned(Exception):
        pass

    def dbt_return(value):
        raise Returned(value)

    module = (
        jinja2.Environment(extensions=["jinja2.ext.do"])
        .from_string(DBT_MACRO_FILE.read_text())
        .make_module({"return": dbt_return})
    )

    def call(macro):
        with pytest.raises(Returned) as returned:
            macro()
        return returned.value.args[0]

    assert call(module.acquisition_channels) == list(ACQUISITION_CHANNELS)
    assert call(module.customer_feature_columns) == [*FEATURE_COLUMNS, *ATTRIBUTE_COLUMNS]
    assert [c for c in FEATURE_COLUMNS if c.startswith("channel_")] == [f"channel_{c}" for c in ACQUISITION_CHANNELS]


@pytest.mark.parametrize(
    ("model", "after"),
    [
        ("marts/customer_features", []),
        ("marts/training_examples", ["horizon_days", "future_revenue", "future_purchase_days"]),
    ],
)
def test_the_marts_docs_list_the_feature_columns_in_order(model, after):
    """The marts' yml (hand-written descriptions) lists the columns the SQL selects, each with its doc block."""
    import re

    import yaml

    from clv_platform.ml.features import ATTRIBUTE_COLUMNS
    from clv_platform.settings import DBT_PROJECT_DIR

    models = DBT_PROJECT_DIR / "models"
    columns = yaml.safe_load((models / f"{model}.yml").read_text())["models"][0]["columns"]
    assert [c["name"] for c in columns] == ["customer_id", "cutoff_date", *FEATURE_COLUMNS, *ATTRIBUTE_COLUMNS, *after]
    documented = set(
        re.findall(r"{%\s*docs\s+feature__(\w+)\s*%}", (models / "intermediate" / "_customer_features__docs.md").read_text())
    )
    assert set(FEATURE_COLUMNS) - documented == set()
