"""The baselines: hand-computed heuristic and linear cases, BG/NBD + Gamma-Gamma recovering a simulated
population and agreeing with pymc-marketing's own predictions, and the pyfunc round trip of each."""

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.baselines import (
    BTYDModel,
    HeuristicModel,
    LinearModel,
    bgnbd_expected_purchases,
    gamma_gamma_expected_spend,
)
from clv_platform.ml.synthetic import make_examples

# BG/NBD population of the simulation: lambda ~ Gamma(r, rate alpha), dropout p ~ Beta(a, b).
TRUE_BG = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 3.0}
# Gamma-Gamma: each customer's mean spend ~ p/nu with nu ~ Gamma(q, rate v); purchases ~ Gamma(p, rate nu).
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def labelled(features: dict, horizon_days: int = 91, label=0.0) -> pd.DataFrame:
    frame = pd.DataFrame(features)
    n = len(frame)
    return frame.assign(
        customer_id=[f"c{i}" for i in range(n)], cutoff_date="2011-06-01", horizon_days=horizon_days, future_revenue=label
    )


def simulate_btyd(n: int, seed: int) -> pd.DataFrame:
    """A BG/NBD + Gamma-Gamma population observed for ``T`` days (the generative story of both papers)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE_BG["r"], 1.0 / TRUE_BG["alpha"], n)
    p_drop = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    T = rng.integers(200, 500, n).astype("float64")
    frequency, recency, monetary = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, x, t_x = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T[i]:
                break
            x, t_x = x + 1, t
            # BG/NBD: after each repeat purchase the customer drops out with probability p.
            if rng.random() < p_drop[i]:
                break
        frequency[i], recency[i] = x, t_x
        if x:
            monetary[i] = rng.gamma(TRUE_GG["p"], 1.0 / nu[i], x).mean()
    return labelled({"frequency": frequency, "recency": recency, "T": T, "monetary_value": monetary})


@pytest.fixture(scope="module")
def population():
    return simulate_btyd(4000, seed=7)


@pytest.fixture(scope="module")
def btyd(population):
    return BTYDModel().fit(population)


def test_heuristic_is_the_spend_rate_times_the_horizon():
    features = {"T": [730.0, 100.0, 10.0, 400.0], "spend_365d": [365.0, 200.0, 50.0, -20.0]}
    model = HeuristicModel().fit(labelled(features))
    # 365/365*91 = 91; 200/100*91 = 182; a 10-day-old customer is divided by the 91-day floor: 50/91*91 = 50;
    # net spend below 0 (returns) predicts 0.
    np.testing.assert_allclose(model.predict(pd.DataFrame(features)), [91.0, 182.0, 50.0, 0.0])
    assert model.contributions(pd.DataFrame(features)) is None
    assert model.probability_alive(pd.DataFrame(features)) is None


def test_heuristic_rejects_missing_column_and_unfitted_use():
    with pytest.raises(ValueError, match="not fitted"):
        HeuristicModel().predict(pd.DataFrame({"T": [1.0], "spend_365d": [1.0]}))
    model = HeuristicModel().fit(labelled({"T": [10.0], "spend_365d": [1.0]}))
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['spend_365d'\]"):
        model.predict(pd.DataFrame({"T": [1.0]}))
    with pytest.raises(ValueError, match="'spend_365d' must be finite"):
        model.predict(pd.DataFrame({"T": [1.0], "spend_365d": [np.nan]}))


def test_linear_recovers_an_exact_plane_and_its_contributions_add_up():
    # future_revenue = 10 + 2*frequency - 0.5*recency + 0*T + 1*monetary_value, exactly.
    core = {
        "frequency": [0.0, 1.0, 2.0, 3.0, 5.0, 1.0],
        "recency": [0.0, 10.0, 40.0, 20.0, 60.0, 5.0],
        "T": [30.0, 50.0, 90.0, 70.0, 100.0, 200.0],
        "monetary_value": [0.0, 20.0, 30.0, 5.0, 50.0, 100.0],
    }
    frame = pd.DataFrame(core)
    label = 10 + 2 * frame["frequency"] - 0.5 * frame["recency"] + frame["monetary_value"]
    model = LinearModel().fit(labelled(core, label=label))
    np.testing.assert_allclose(model.coef_, [2.0, -0.5, 0.0, 1.0], atol=1e-9)
    assert model.intercept_ == pytest.approx(10.0)
    # Row 4: 10 + 10 - 30 + 50 = 40; a row below the plane's zero is clipped: 10 + 0 - 50 + 0 = -40 -> 0.
    new = pd.DataFrame({"frequency": [5.0, 0.0], "recency": [60.0, 100.0], "T": [100.0, 100.0], "monetary_value": [50.0, 0.0]})
    np.testing.assert_allclose(model.predict(new), [40.0, 0.0], atol=1e-9)
    contributions = model.contributions(new)
    assert list(contributions.columns) == ["frequency", "recency", "T", "monetary_value", "bias"]
    np.testing.assert_allclose(contributions.sum(axis=1), [40.0, -40.0], atol=1e-9)
    np.testing.assert_allclose(contributions.iloc[0], [10.0, -30.0, 0.0, 50.0, 10.0], atol=1e-9)


def test_btyd_map_recovers_the_simulated_population(btyd):
    # 4,000 customers: MAP (= maximum likelihood with flat priors) lands within sampling error of the truth.
    for name, true in TRUE_BG.items():
        assert btyd.bgnbd_params[name] == pytest.approx(true, rel=0.25), name
    gg = btyd.gamma_gamma_params
    # p, q and v are weakly identified one by one; the population mean spend p v / (q - 1) is not.
    assert gg["p"] * gg["v"] / (gg["q"] - 1) == pytest.approx(TRUE_GG["p"] * TRUE_GG["v"] / (TRUE_GG["q"] - 1), rel=0.1)
    assert gg["p"] == pytest.approx(TRUE_GG["p"], rel=0.25)


def test_btyd_predictions_equal_pymc_marketings_own(population, btyd):
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    from clv_platform.ml.baselines import flat_priors_bg, flat_priors_gg

    data = population.loc[:, ["frequency", "recency", "T", "monetary_value"]].assign(customer_id=np.arange(len(population)))
    bg = BetaGeoModel(model_config=flat_priors_bg())
    bg.fit(data=data[["customer_id", "frequency", "recency", "T"]], method="map", progressbar=False)
    repeaters = data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
    gg = GammaGammaModel(model_config=flat_priors_gg())
    gg.fit(data=repeaters[["customer_id", "frequency", "monetary_value"]], method="map", progressbar=False)
    expected = (
        bg.expected_purchases(data=data, future_t=91).values.squeeze() * gg.expected_customer_spend(data=data).values.squeeze()
    )
    np.testing.assert_allclose(btyd.predict(population), expected, rtol=1e-6)
    np.testing.assert_allclose(
        btyd.probability_alive(population), bg.expected_probability_alive(data=data).values.squeeze(), rtol=1e-6
    )


def test_btyd_handles_one_time_buyers_and_returns(btyd):
    gg = btyd.gamma_gamma_params
    population_mean = gg["p"] * gg["v"] / (gg["q"] - 1)
    edge = pd.DataFrame(
        {
            "frequency": [0.0, 3.0, 3.0],
            "recency": [0.0, 100.0, 100.0],
            "T": [300.0, 300.0, 300.0],
            "monetary_value": [0.0, -25.0, 0.0],
        }
    )
    spend = btyd.expected_spend(edge)
    # One-time buyers get the population mean; a repeater with negative net spend counts as 0 spend.
    assert spend[0] == pytest.approx(population_mean)
    assert spend[1] == spend[2] == pytest.approx(gg["p"] * gg["v"] / (3 * gg["p"] + gg["q"] - 1))
    assert (btyd.predict(edge) > 0).all()
    alive = btyd.probability_alive(edge)
    assert alive[0] == 1.0 and 0 < alive[1] < 1


def test_btyd_fits_on_the_latest_training_cutoff():
    examples = make_examples(n_customers=300, cutoffs=("2024-01-01", "2024-04-01"), seed=3)
    model = BTYDModel().fit(examples)
    assert model.fit_cutoff == pd.Timestamp("2024-04-01")
    latest = examples[examples["cutoff_date"] == pd.Timestamp("2024-04-01").date()]
    assert model.n_fit == len(latest)
    assert model.n_fit_gamma_gamma == int(((latest["frequency"] > 0) & (latest["monetary_value"] > 0)).sum())
    assert model.params()["fit_cutoff"] == "2024-04-01"


def test_btyd_refuses_too_few_repeat_customers():
    few = labelled({"frequency": [0.0] * 20, "recency": [0.0] * 20, "T": [100.0] * 20, "monetary_value": [0.0] * 20})
    with pytest.raises(ValueError, match="'frequency' > 0 and 'monetary_value' > 0"):
        BTYDModel().fit(few)


def test_closed_forms_on_a_hand_checkable_case():
    # t = 0: no time, no purchases. x = 0 spend: the population mean p v / (q - 1) = 6*15/3 = 30.
    assert bgnbd_expected_purchases(TRUE_BG, [2.0], [50.0], [100.0], 0.0)[0] == pytest.approx(0.0)
    assert gamma_gamma_expected_spend(TRUE_GG, [0.0], [0.0])[0] == pytest.approx(30.0)
    # x = 2, m = 40: (6 * (15 + 80)) / (12 + 3) = 38.
    assert gamma_gamma_expected_spend(TRUE_GG, [2.0], [40.0])[0] == pytest.approx(38.0)


@pytest.mark.parametrize("model_class", [HeuristicModel, LinearModel, BTYDModel])
def test_every_baseline_round_trips_through_the_pyfunc(tmp_path, model_class):
    import mlflow.pyfunc

    from clv_platform.ml.pyfunc import CLVPyfuncModel

    examples = make_examples(n_customers=300, cutoffs=("2024-01-01", "2024-04-01"), seed=5)
    model = model_class().fit(examples)
    path = tmp_path / model_class.name
    mlflow.pyfunc.save_model(str(path), python_model=CLVPyfuncModel(model))
    loaded = mlflow.pyfunc.load_model(str(path))
    output = loaded.predict(examples)
    np.testing.assert_array_equal(output["predicted_clv"].to_numpy(), model.predict(examples))
    alive = model.probability_alive(examples)
    if alive is None:
        assert output["probability_alive"].isna().all()
    else:
        np.testing.assert_array_equal(output["probability_alive"].to_numpy(), alive)


def test_btyd_refuses_a_degenerate_fit_rather_than_predicting_nan():
    # On these 600 synthetic customers the flat-prior MAP runs off to r, alpha, a < 1e-30, where the
    # closed forms give NaN for 225 of the latest cutoff's rows.
    with pytest.raises(
        ValueError, match=r"BG/NBD fit at cutoff .* is degenerate \(r=.*: \d+ of its 600 customers get no finite prediction"
    ):
        BTYDModel().fit(make_examples(n_customers=600, seed=11))
