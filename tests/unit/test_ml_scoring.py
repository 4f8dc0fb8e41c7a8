"""Scoring output, value tiers and the active-customer filter."""

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
from clv_platform.ml.scoring import SCORE_COLUMNS, active_customers, score_customers, value_tiers
from clv_platform.ml.synthetic import make_examples
from fixture_estimators import SpendRateModel


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
    # median 3.5, 90th percentile 16.3: five Low, four Medium, one High
    assert scores["value_tier"].tolist() == ["Low"] * 5 + ["Medium"] * 4 + ["High"]
    assert model.seen_columns == list(FEATURE_COLUMNS)


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
    with pytest.raises(ValueError, match="missing required column.*recency"):
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
    assert scores["value_tier"].value_counts()["High"] <= 0.1 * len(scores) + 1


def test_active_customers_uses_days_since_last_purchase():
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "T": [100, 100, 50], "recency": [90, 10, 0]})
    # days since last purchase: 10, 90, 50
    assert active_customers(frame, 30)["customer_id"].tolist() == ["a"]
    assert active_customers(frame, 50)["customer_id"].tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="active_within_days must be >= 0"):
        active_customers(frame, -1)
    with pytest.raises(ValueError, match="'recency' must be <= 'T'"):
        active_customers(frame.assign(recency=[200, 0, 0]), 30)
