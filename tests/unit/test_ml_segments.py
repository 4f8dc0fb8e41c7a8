"""KMeans segments on standardized RFM: recovered groups, stable numbering, clear errors."""

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.segments import fit_segments, rfm, segment_profiles


def _customers(groups: dict[str, tuple[float, float, float]], per_group: int = 50, seed: int = 0) -> pd.DataFrame:
    """Customers around known (days since last purchase, repeat purchases, spend) centres, a group each."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, (days_since, frequency, spend) in groups.items():
        T = np.full(per_group, 400.0)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": [f"{name}{i}" for i in range(per_group)],
                    "T": T,
                    "recency": T - np.clip(rng.normal(days_since, days_since * 0.1, per_group), 0, 399).round(),
                    "frequency": np.clip(rng.normal(frequency, frequency * 0.1, per_group), 0, None).round(),
                    "spend_365d": rng.lognormal(np.log(spend), 0.1, per_group),
                    "group": name,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_three_well_separated_groups_are_found_and_numbered_by_spend():
    # whales: recent, frequent, big spenders; regulars in between; lapsed one-timers with little spend
    customers = _customers({"whale": (5, 30, 5000.0), "regular": (40, 5, 300.0), "lapsed": (300, 0, 20.0)})
    segments = fit_segments(customers, n_segments=3, seed=1)
    assert list(segments["customer_id"]) == list(customers["customer_id"])
    pairs = set(zip(customers["group"], segments["segment"], strict=True))
    assert pairs == {("whale", 0), ("regular", 1), ("lapsed", 2)}
    profiles = segment_profiles(segments)
    assert profiles["customers"].tolist() == [50, 50, 50] and profiles["share"].sum() == pytest.approx(1.0)
    assert profiles["spend_365d_mean"].is_monotonic_decreasing


def test_the_same_seed_gives_the_same_segments():
    customers = _customers({"a": (10, 10, 1000.0), "b": (200, 1, 50.0)}, seed=4)
    first, second = fit_segments(customers, 2, seed=7), fit_segments(customers, 2, seed=7)
    pd.testing.assert_frame_equal(first, second)


def test_rfm_floors_net_returns_and_counts_the_first_purchase():
    frame = pd.DataFrame({"T": [100, 50], "recency": [90, 0], "frequency": [2, 0], "spend_365d": [-5.0, 12.5]})
    assert rfm(frame).values.tolist() == [[10.0, 3.0, 0.0], [50.0, 1.0, 12.5]]


def test_bad_input_is_refused_with_the_rule():
    customers = _customers({"a": (10, 10, 1000.0)}, per_group=3)
    with pytest.raises(ValueError, match="n_segments must be an integer >= 2"):
        fit_segments(customers, 1)
    with pytest.raises(ValueError, match="fewer than n_segments=5"):
        fit_segments(customers, 5)
    with pytest.raises(ValueError, match=r"missing required column.*spend_365d"):
        fit_segments(customers.drop(columns="spend_365d"), 2)
    with pytest.raises(ValueError, match="'recency' must be <= 'T'"):
        rfm(customers.assign(recency=customers["T"] + 1))
