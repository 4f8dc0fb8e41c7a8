"""The whole ladder on one evaluation cutoff: time-based split, every rung judged, fairness beside the actuals'."""

import numpy as np
import pytest

from clv_platform.ml.ladder import evaluate_ladder
from clv_platform.ml.synthetic import make_examples


def _with_slices(examples):
    rng = np.random.default_rng(0)
    ids = examples["customer_id"].unique()
    country = dict(zip(ids, rng.choice(["UK", "DE", "FR"], size=len(ids), p=[0.6, 0.2, 0.2]), strict=True))
    channel = dict(zip(ids, rng.choice(["email", "direct"], size=len(ids)), strict=True))
    return examples.assign(country=examples["customer_id"].map(country), acquisition_channel=examples["customer_id"].map(channel))


@pytest.fixture(scope="module")
def ladder():
    # Cutoffs 91 days apart, 90-day labels: both earlier cutoffs' label windows end by the last one.
    return evaluate_ladder(_with_slices(make_examples(n_customers=400, seed=8)))


def test_every_rung_is_fitted_on_earlier_cutoffs_and_judged_on_the_last(ladder):
    assert ladder.train_cutoffs == ("2024-01-01", "2024-04-01") and ladder.evaluation_cutoff == "2024-07-01"
    assert list(ladder.metrics.index) == ["heuristic", "linear", "btyd", "xgboost"]
    assert ladder.candidate == "xgboost" and ladder.baselines == ["heuristic", "linear", "btyd"]
    assert set(ladder.metrics.columns) >= {"mae", "spearman", "normalized_gini", "fairness_ratio"}
    for name, model in ladder.models.items():
        np.testing.assert_allclose(ladder.predictions[name], model.predict(ladder.evaluation))
    # The synthetic label follows the purchase rate: every model ranks far better than chance.
    assert (ladder.metrics["normalized_gini"] > 0.3).all()
    assert 0 < ladder.actual_fairness_ratio <= 1
    # The gate's fairness ratio is the disparate impact relative to the actual revenue's, never above 1.
    fairness = ladder.slices.fairness
    np.testing.assert_allclose(
        ladder.metrics["disparate_impact"], fairness["disparate_impact_ratio"].reindex(ladder.metrics.index)
    )
    np.testing.assert_allclose(ladder.metrics["fairness_ratio"], fairness["relative_ratio"].reindex(ladder.metrics.index))
    assert (ladder.metrics["fairness_ratio"] >= ladder.metrics["disparate_impact"]).all() and (
        ladder.metrics["fairness_ratio"] <= 1
    ).all()


def test_the_plain_disparate_impact_can_be_the_gate_metric():
    plain = evaluate_ladder(_with_slices(make_examples(n_customers=150, seed=8)), fairness_relative_to_actual=False)
    np.testing.assert_allclose(plain.metrics["fairness_ratio"], plain.metrics["disparate_impact"])
    assert plain.judge("copy", plain.predictions["btyd"])["fairness_ratio"] == pytest.approx(
        plain.metrics.loc["btyd", "disparate_impact"]
    )


def test_judging_other_predictions_uses_the_same_rows(ladder):
    again = ladder.judge("copy", ladder.predictions["btyd"])
    assert again == pytest.approx(ladder.gate_metrics("btyd"))


def test_a_history_too_short_for_supervised_training_keeps_the_label_free_baselines():
    # 30 days apart with 90-day labels: no earlier cutoff's label window ends by the last one.
    examples = _with_slices(make_examples(n_customers=150, cutoffs=("2024-05-01", "2024-06-01", "2024-07-01"), seed=9))
    short = evaluate_ladder(examples)
    assert list(short.models) == ["heuristic", "btyd"] and short.candidate is None
    assert short.no_candidate_reason.startswith("history too short for supervised training")
    assert short.train_cutoffs == () and short.evaluation_cutoff == "2024-07-01"


def test_the_ladder_fits_every_rung_and_stacks_btyd(ladder):
    models, valid = ladder.models, ladder.evaluation
    xgb = models["xgboost"]
    assert xgb.stack_btyd and xgb.btyd is models["btyd"]
    assert list(xgb.contributions(valid[:5]).columns)[-3:] == ["btyd_expected_revenue", "btyd_probability_alive", "bias"]
    np.testing.assert_array_equal(xgb.probability_alive(valid), models["btyd"].probability_alive(valid))
    for name, model in models.items():
        predictions = model.predict(valid)
        assert predictions.shape == (len(valid),) and (predictions >= 0).all(), name


def test_stacked_xgboost_round_trips_through_the_pyfunc(tmp_path, ladder):
    import mlflow.pyfunc

    from clv_platform.ml.features import FEATURE_COLUMNS
    from clv_platform.ml.pyfunc import CLVPyfuncModel

    valid, model = ladder.evaluation, ladder.models["xgboost"]
    mlflow.pyfunc.save_model(str(tmp_path / "xgb"), python_model=CLVPyfuncModel(model))
    # The pyfunc's input is the feature contract only: the stacked inputs are computed inside.
    output = mlflow.pyfunc.load_model(str(tmp_path / "xgb")).predict(valid.loc[:, list(FEATURE_COLUMNS)])
    np.testing.assert_array_equal(output["predicted_clv"].to_numpy(), model.predict(valid))
    np.testing.assert_array_equal(output["probability_alive"].to_numpy(), model.probability_alive(valid))
