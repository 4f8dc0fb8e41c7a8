"""Small synthetic frames in the shape of ``marts.training_examples``, for tests and examples.

Each customer has a latent purchase rate and basket value; the features are noisy summaries of them
and ``future_revenue`` is drawn from the same rate and basket over the horizon, so a model can learn it.
This is not a simulation of a shop (``clv_platform.datagen`` is); it is a fixture with a known signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv_platform.ml.features import CUTOFF_COLUMN, FEATURE_COLUMNS, HORIZON_COLUMN, ID_COLUMN, LABEL_COLUMN


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
    (5, 17)
    """
    if n_customers < 1 or not cutoffs or horizon_days < 1:
        raise ValueError("n_customers and horizon_days must be >= 1 and cutoffs must not be empty")
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:06d}" for i in range(n_customers)])
    rate = rng.gamma(shape=0.6, scale=0.015, size=n_customers) * rate_multiplier  # purchase days per day
    basket = rng.lognormal(mean=3.5, sigma=0.7, size=n_customers)  # net revenue per purchase day
    signup_age = rng.integers(30, 1100, size=n_customers)  # days from signup to the first cutoff

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
                "sessions_90d": sessions,
                "add_to_cart_90d": add_to_cart,
                "tenure_days": tenure,
                HORIZON_COLUMN: horizon_days,
                LABEL_COLUMN: future_revenue,
            }
        )
        frames.append(frame)
    examples = pd.concat(frames, ignore_index=True)
    return examples.loc[:, [ID_COLUMN, CUTOFF_COLUMN, *FEATURE_COLUMNS, HORIZON_COLUMN, LABEL_COLUMN]]
