"""Scoring output, value tiers of the scores and the active-customer filter."""

import numpy as np
import pandas as pd
import pytest
from fixture_estimators import SpendRateModel

from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
from clv_platform.ml.scoring import (
    SCORE_COLUMNS,
    active_customers,
    score_customers,
    tier_summary,
    value_tier_table,
    value_tiers,
)
from clv_platform.ml.synthetic import make_examples


class FixedModel:
    """Predicts given values with the pyfunc's output frame, recording the columns it was given."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)
        self.seen_columns = None

    def predict(self, frame):
        self.seen_columns = list(frame.columns)
        return pd.DataFrame({"predicted_clv": self.values[: len(frame)], "probability_alive": np.nan})


@pytest.fixture
def features():
    frame = make_examples(n_customers=10, cutoffs=("2024-07-01",), seed=5)
    return frame.drop(columns=[LABEL_COLUMN])


def test_score_customers_columns_clipping_and_version(features):
    model = FixedModel([-3.0, 0, 1, 2, 3, 4, 5, 6, 7, 100])
    scores = score_customers(model, features, "clv_xgboost", 7)
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert scores["customer_id"].tolist() == features["customer_id"].tolist()
    assert scores["predicted_clv"].tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 100]
    assert set(scores["model_version"]) == {"7"} and set(scores["model_name"]) == {"clv_xgboost"}
    assert "value_tier" not in scores.columns  # tiers are their own table: value_tier_table
    assert model.seen_columns == list(FEATURE_COLUMNS)


def test_value_tier_table_by_hand(features):
    scores = score_customers(FixedModel([-3.0, 0, 1, 2, 3, 4, 5, 6, 7, 100]), features, "clv_model", 7)
    tiers = value_tier_table(scores)
    assert list(tiers.columns) == [
        "customer_id",
        "cutoff_date",
        "predicted_clv",
        "value_tier",
        "medium_quantile",
        "medium_cut_point",
        "high_quantile",
        "high_cut_point",
        "model_name",
        "model_version",
        "arm",
    ]
    # Predictions 0, 0, 1, ..., 7, 100: the median is 3.5, the 90th percentile 7 + 0.1 * 93 = 16.3.
    assert tiers["value_tier"].tolist() == ["Low"] * 5 + ["Medium"] * 4 + ["High"]
    assert tiers["medium_cut_point"].tolist() == pytest.approx([3.5] * 10)
    assert tiers["high_cut_point"].tolist() == pytest.approx([16.3] * 10)
    assert set(tiers["medium_quantile"]) == {0.5} and set(tiers["high_quantile"]) == {0.9}
    assert tiers["customer_id"].tolist() == scores["customer_id"].tolist()
    assert set(tiers["model_version"]) == {"7"} and set(tiers["model_name"]) == {"clv_model"}

    # Configurable: at the 20th and 60th percentiles (0.8 and 4.4) the tiers hold 2, 4 and 4 customers.
    other = value_tier_table(scores, tiers=(0.2, 0.6))
    assert other["value_tier"].value_counts().to_dict() == {"Low": 2, "Medium": 4, "High": 4}
    assert other["medium_cut_point"].iloc[0] == pytest.approx(0.8) and other["high_cut_point"].iloc[0] == pytest.approx(4.4)

    summary = tier_summary(tiers).set_index("value_tier")
    assert summary["customers"].tolist() == [5, 4, 1]
    assert summary["customer_share"].tolist() == pytest.approx([0.5, 0.4, 0.1])
    # Predicted value 128: Low 0+0+1+2+3 = 6, Medium 4+5+6+7 = 22, High 100.
    assert summary["predicted_value"].tolist() == pytest.approx([6, 22, 100])
    assert summary["value_share"].tolist() == pytest.approx([6 / 128, 22 / 128, 100 / 128])
    assert (summary.loc["Medium", "min_predicted_clv"], summary.loc["Medium", "max_predicted_clv"]) == (4, 7)


def test_value_tier_table_refuses_bad_input(features):
    scores = score_customers(FixedModel(np.arange(10.0)), features, "clv_model", 7)
    with pytest.raises(ValueError, match="single scoring cutoff"):
        value_tier_table(pd.concat([scores, scores.assign(cutoff_date=pd.Timestamp("2024-08-01"))]))
    with pytest.raises(ValueError, match="nobody to tier"):
        value_tier_table(scores.iloc[:0])
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['model_version'\]"):
        value_tier_table(scores.drop(columns="model_version"))
    with pytest.raises(ValueError, match="column 'predicted_clv' must be finite"):
        value_tier_table(scores.assign(predicted_clv=np.nan))
    with pytest.raises(ValueError, match="increasing quantile levels"):
        value_tier_table(scores, tiers=(0.9, 0.5))
    with pytest.raises(ValueError, match="distinct column names"):
        value_tier_table(scores, tiers=(0.5,), labels=("Top", "top"))


def test_value_tiers_are_configurable_and_ties_go_down():
    assert value_tiers([1, 2, 3, 4], tiers=(0.25,), labels=("Rest", "Top")).tolist() == ["Rest", "Top", "Top", "Top"]
    # 80 % zeros: the median and the 90th percentile may be 0; ties at a cut point stay in the lower tier
    tiers = value_tiers([0] * 8 + [5, 9])
    assert tiers.tolist() == ["Low"] * 8 + ["Medium", "High"]
    with pytest.raises(ValueError, match="increasing quantile levels"):
        value_tiers([1, 2], tiers=(0.9, 0.5))
    with pytest.raises(ValueError, match="one more entry than tiers"):
        value_tiers([1, 2], tiers=(0.5,), labels=("a", "b", "c"))


def test_score_customers_refuses_bad_input(features):
    model = FixedModel(np.arange(20))
    with pytest.raises(ValueError, match="nobody to score"):
        score_customers(model, features.iloc[:0], "m", "1")
    with pytest.raises(ValueError, match="single scoring cutoff"):
        two = pd.concat([features, features.assign(cutoff_date=pd.Timestamp("2024-08-01").date())])
        score_customers(model, two, "m", "1")
    with pytest.raises(ValueError, match=r"missing required column.*recency"):
        score_customers(model, features.drop(columns=["recency"]), "m", "1")
    with pytest.raises(ValueError, match="model_version must be given"):
        score_customers(model, features, "m", None)


def test_score_customers_with_a_logged_pyfunc(tmp_path):
    """A real estimator saved as the platform's pyfunc and loaded back scores as it predicts."""
    import mlflow

    from clv_platform.ml import registry
    from clv_platform.ml.pyfunc import CLVPyfuncModel

    examples = make_examples(n_customers=200, seed=6)
    last = examples["cutoff_date"].max()
    model = SpendRateModel().fit(examples[examples["cutoff_date"] < last])
    current = examples[examples["cutoff_date"] == last].drop(columns=[LABEL_COLUMN])
    mlflow.pyfunc.save_model(tmp_path / "model", python_model=CLVPyfuncModel(model), signature=registry.signature())
    scores = score_customers(mlflow.pyfunc.load_model(str(tmp_path / "model")), current, "clv_model", "3")
    np.testing.assert_allclose(scores["predicted_clv"], model.predict(current))
    assert (scores["predicted_clv"] >= 0).all()
    assert value_tier_table(scores)["value_tier"].value_counts()["High"] <= 0.1 * len(scores) + 1


def test_active_customers_uses_days_since_last_purchase():
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "T": [100, 100, 50], "recency": [90, 10, 0]})
    # days since last purchase: 10, 90, 50
    assert active_customers(frame, 30)["customer_id"].tolist() == ["a"]
    assert active_customers(frame, 50)["customer_id"].tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="active_within_days must be >= 0"):
        active_customers(frame, -1)
    with pytest.raises(ValueError, match="'recency' must be <= 'T'"):
        active_customers(frame.assign(recency=[200, 0, 0]), 30)


def test_score_customers_takes_the_output_the_caller_already_has(features):
    """The API reads probability_alive from the same output: the model runs once per request, not twice."""
    from clv_platform.ml.registry import predict

    model = FixedModel([-3.0, 0, 1, 2, 3, 4, 5, 6, 7, 100])
    output = predict(model, features)
    model.seen_columns = None
    scores = score_customers(model, features, "clv_xgboost", 7, predictions=output)
    assert model.seen_columns is None  # not run again
    pd.testing.assert_frame_equal(scores, score_customers(model, features, "clv_xgboost", 7))
    with pytest.raises(ValueError, match="predictions have 3 rows for 10 feature rows"):
        score_customers(model, features, "clv_xgboost", 7, predictions=output.head(3))
