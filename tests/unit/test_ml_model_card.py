"""The model card says what the issue asks: data window, metrics against every baseline, slices, intended use, limits."""

import pandas as pd
import pytest

from clv_platform.ml.model_card import DataWindow, ModelCard

WINDOW = DataWindow(("2011-05-11", "2011-06-10"), "2011-09-09", 91, 5_432, 3_100)
METRICS = pd.DataFrame(
    {"mae": [410.5, 452.25, 520.0], "spearman": [0.61, 0.55, 0.40], "normalized_gini": [0.78, 0.74, 0.60]},
    index=pd.Index(["xgboost", "btyd", "heuristic"], name="model"),
)


def test_the_card_has_every_section_with_this_models_numbers():
    slices = pd.DataFrame({"slice": ["country=UK", "country=DE"], "n": [2900, 200], "mean_prediction": [120.0, 110.0]})
    card = ModelCard(
        model_name="clv_model",
        rung="xgboost",
        window=WINDOW,
        metrics=METRICS,
        slices=slices,
        fairness_ratio=0.9167,
        actual_fairness_ratio=0.8,
        data_version="abc",
        code_version="def@git:123",
        params={"max_depth": 4},
        decision=["beats_baselines: passed: ..."],
        input_partitions="raw.transactions 2010-12-01..2011-12-08: 10 rows, hash 42",
    ).markdown()
    assert card.startswith("# Model card: clv_model (xgboost)\n")
    assert "- training cutoffs: 2011-05-11, 2011-06-10 (5,432 customer-cutoff rows)" in card
    assert "- evaluation cutoff: 2011-09-09 (3,100 customers), labels over the 91 days after it" in card
    assert "data version: `abc`; code version: `def@git:123`" in card
    assert "- input partitions: raw.transactions 2010-12-01..2011-12-08: 10 rows, hash 42" in card
    # one row per model, this one marked, every baseline beside it
    assert "| **this model** | xgboost | 410.5000 | 0.6100 | 0.7800 |" in card
    assert "|  | btyd | 452.2500 | 0.5500 | 0.7400 |" in card and "|  | heuristic |" in card
    assert "| country=DE | 200 | 110.0000 |" in card
    assert "Disparate-impact ratio of mean prediction across slices: 0.917 (of the actual revenue: 0.800)" in card
    assert "## Gate decision\n- beats_baselines: passed: ..." in card
    assert "## Intended use\nRanking and sizing existing customers" in card
    assert "Trees cannot extrapolate" in card and "prospects have no prediction" in card
    assert "max_depth=4" in card


def test_a_baseline_card_names_its_own_limits():
    card = ModelCard(
        model_name="clv_model", rung="btyd", window=WINDOW, metrics=METRICS, data_version="a", code_version="b"
    ).markdown()
    assert "| **this model** | btyd |" in card and "Gamma-Gamma assumes spend per purchase" in card
    assert "Trees cannot extrapolate" not in card and "## Slices" not in card


def test_a_card_needs_its_model_among_the_metrics():
    with pytest.raises(ValueError, match="row for 'linear'"):
        ModelCard(model_name="m", rung="linear", window=WINDOW, metrics=METRICS, data_version="a", code_version="b")
