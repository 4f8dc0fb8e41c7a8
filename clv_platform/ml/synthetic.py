"""Small synthetic frames in the shape of ``marts.training_examples``, for tests and examples.

Each customer has a latent purchase rate and basket value; the features are noisy summaries of them
and ``future_revenue`` is drawn from the same rate and basket over the horizon, so a model can learn it.
This is not a simulation of a shop (``clv_platform.datagen`` is); it is a fixture with a known signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv_platform.ml.features import (
    ACQUISITION_CHANNELS,
    CUTOFF_COLUMN,
    FEATURE_COLUMNS,
    HORIZON_COLUMN,
    ID_COLUMN,
    LABEL_COLUMN,
)


def make_examples(
    n_customers: int = 400,
    cutoffs: tuple[str, ...] = ("2024-01-01", "2024-04-01", "2024-07-01"),
    horizon_days: int = 90,
    *,
    seed: int = 0,
    rate_multiplier: float = 1.0,
) -> pd.DataFrame:
    """One row per customer per cutoff with the features, ``horizon_days`` and ``future_revenue``.

    Parameters
    ----------
    n_customers
        Customers per cutoff (the same ids at every cutoff).
    cutoffs
        Cutoff dates, ISO strings.
    horizon_days
        The label's horizon.
    seed
        Seed of the generator: the same arguments give the same frame.
    rate_multiplier
        Scales every purchase rate; values away from 1 make a drifted population.

    Examples
    --------
    >>> frame = make_examples(n_customers=5, cutoffs=("2024-01-01",))
    >>> frame.shape
    (5, 44)
    """
    if n_customers < 1 or not cutoffs or horizon_days < 1:
        raise ValueError("n_customers and horizon_days must be >= 1 and cutoffs must not be empty")
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:06d}" for i in range(n_customers)])
    rate = rng.gamma(shape=0.6, scale=0.015, size=n_customers) * rate_multiplier  # purchase days per day
    basket = rng.lognormal(mean=3.5, sigma=0.7, size=n_customers)  # net revenue per purchase day
    signup_age = rng.integers(30, 1100, size=n_customers)  # days from signup to the first cutoff
    # The later features draw from their own stream, so the ones above keep their values.
    extra = np.random.default_rng([seed, 1])
    country_share = extra.choice([0.9, 0.03, 0.02, 0.01], size=n_customers, p=[0.85, 0.07, 0.05, 0.03])
    channel = extra.integers(0, len(ACQUISITION_CHANNELS), size=n_customers)
    items_per_order = 1 + extra.poisson(4.0, size=n_customers)

    frames = []
    first_cutoff = pd.Timestamp(cutoffs[0])
    for cutoff in cutoffs:
        offset = (pd.Timestamp(cutoff) - first_cutoff).days
        tenure = signup_age + offset
        T = np.maximum(tenure - rng.integers(0, 30, size=n_customers), 1)
        frequency = rng.poisson(rate * T)
        days_since_last = np.minimum(rng.exponential(1.0 / np.maximum(rate, 1e-4)), T).astype("int64")
        recency = np.where(frequency > 0, T - days_since_last, 0)
        alive = np.exp(-(T - recency) / 250.0)
        monetary_value = np.where(frequency > 0, basket * rng.lognormal(0.0, 0.2, n_customers), 0.0)

        windows = {}
        for days in (30, 90, 365):
            orders = rng.poisson(rate * np.minimum(days, T) * alive)
            windows[f"orders_{days}d"] = orders
            windows[f"spend_{days}d"] = np.round(orders * basket * rng.lognormal(0.0, 0.2, n_customers), 2)
        sessions = rng.poisson(1 + 4 * windows["orders_90d"] + 20 * rate * alive)
        add_to_cart = rng.binomial(sessions, 0.3)

        extras = _later_features(extra, windows, frequency, recency, basket, sessions, add_to_cart, items_per_order)

        future_orders = rng.poisson(rate * horizon_days * alive)
        future_revenue = np.round(future_orders * basket * rng.lognormal(0.0, 0.3, n_customers), 2)

        frame = pd.DataFrame(
            {
                ID_COLUMN: ids,
                CUTOFF_COLUMN: pd.Timestamp(cutoff).date(),
                "frequency": frequency,
                "recency": recency,
                "T": T,
                "monetary_value": np.round(monetary_value, 2),
                **windows,
                "tenure_days": tenure,
                **extras,
                "country_customer_share": country_share,
                **{f"channel_{name}": (channel == i).astype("int64") for i, name in enumerate(ACQUISITION_CHANNELS)},
                HORIZON_COLUMN: horizon_days,
                LABEL_COLUMN: future_revenue,
            }
        )
        frames.append(frame)
    examples = pd.concat(frames, ignore_index=True)
    return examples.loc[:, [ID_COLUMN, CUTOFF_COLUMN, *FEATURE_COLUMNS, HORIZON_COLUMN, LABEL_COLUMN]]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator where the denominator is positive, else 0."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _later_features(rng, windows, frequency, recency, basket, sessions, add_to_cart, items_per_order) -> dict:
    """Items, products, trends, purchase pattern and web behaviour, consistent with the core features."""
    n = len(frequency)
    features = {}
    for days in (30, 90, 365):
        features[f"items_{days}d"] = windows[f"orders_{days}d"] * items_per_order
    for days in (30, 90, 365):
        features[f"distinct_products_{days}d"] = np.minimum(features[f"items_{days}d"], 2 * windows[f"orders_{days}d"])
    for measure in ("orders", "spend"):
        features[f"{measure}_trend_90d_365d"] = _ratio(windows[f"{measure}_90d"] / 90, windows[f"{measure}_365d"] / 365)
    gap_mean = _ratio(recency.astype("float64"), frequency.astype("float64"))
    features["purchase_gap_mean_days"] = gap_mean
    features["purchase_gap_stddev_days"] = np.where(frequency > 1, gap_mean * rng.lognormal(-0.5, 0.3, n), 0.0)
    features["basket_value_mean"] = np.round(basket * rng.lognormal(0.0, 0.2, n), 2)
    features["basket_items_mean"] = items_per_order.astype("float64")
    features["distinct_products"] = np.maximum(features["distinct_products_365d"], (frequency + 1) * 2)
    features["product_diversity"] = rng.uniform(0.2, 1.0, n)
    features["return_rate"] = rng.beta(1.0, 30.0, n)
    features["spend_share_90d"] = np.clip(_ratio(windows["spend_90d"], windows["spend_365d"]), 0.0, 1.0)
    features["sessions_90d"] = sessions
    features["session_seconds_mean_90d"] = np.where(sessions > 0, rng.gamma(2.0, 150.0, n), 0.0)
    features["page_views_90d"] = sessions + rng.poisson(2.0 * sessions)
    features["searches_90d"] = rng.binomial(sessions, 0.5)
    features["add_to_cart_90d"] = add_to_cart
    features["cart_to_purchase_90d"] = np.where(add_to_cart > 0, rng.uniform(0.0, 1.0, n), 0.0)
    return features
