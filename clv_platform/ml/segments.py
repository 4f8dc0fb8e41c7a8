"""Customer segments: KMeans on the standardized RFM of each customer at the scoring cutoff.

RFM here is recency as days since the last purchase (``T - recency`` in the BTYD vocabulary), frequency
as purchase days (``frequency + 1``, the first purchase included) and monetary value as net spend over
the last 365 days. Counts and money are heavy-tailed: on raw values KMeans spends its clusters on a
handful of whales. Each is therefore taken as ``log1p`` (money floored at 0 first: net returns count as
no spend) and standardized to zero mean and unit variance before clustering, so the three weigh alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv_platform.ml.features import ID_COLUMN, require_columns, require_numeric_finite

RFM_INPUT_COLUMNS: tuple[str, ...] = ("T", "recency", "frequency", "spend_365d")
RFM_COLUMNS: tuple[str, ...] = ("days_since_last_purchase", "purchase_days", "spend_365d")
SEGMENT_COLUMN = "segment"


def rfm(features: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency and monetary value per row of ``features`` (see the module docstring).

    Examples
    --------
    >>> rfm(pd.DataFrame({"T": [100], "recency": [90], "frequency": [2], "spend_365d": [-5.0]})).iloc[0].tolist()
    [10.0, 3.0, 0.0]
    """
    require_columns(features, RFM_INPUT_COLUMNS, frame_name="features")
    require_numeric_finite(features, RFM_INPUT_COLUMNS, frame_name="features")
    days_since = features["T"] - features["recency"]
    if (days_since < 0).any():
        raise ValueError("features column 'recency' must be <= 'T' (last purchase before the cutoff)")
    return pd.DataFrame(
        {
            "days_since_last_purchase": days_since.astype("float64"),
            "purchase_days": (features["frequency"] + 1).astype("float64"),
            "spend_365d": features["spend_365d"].clip(lower=0).astype("float64"),
        },
        index=features.index,
    )


def fit_segments(features: pd.DataFrame, n_segments: int = 4, *, seed: int = 0) -> pd.DataFrame:
    """Assign each customer of ``features`` to one of ``n_segments`` KMeans segments of standardized RFM.

    Segments are numbered by value: segment 0 has the highest mean 365-day spend, so the numbering is
    stable across runs that find the same clusters.

    Parameters
    ----------
    features
        One row per customer (``marts.customer_features``), with ``customer_id`` and the RFM inputs.
    n_segments
        KMeans ``k``; at least 2 and at most the number of distinct customers.
    seed
        KMeans' random state: the same data gives the same segments.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, the three RFM columns and ``segment`` (int), in the row order of ``features``.
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    require_columns(features, [ID_COLUMN], frame_name="features")
    if isinstance(n_segments, bool) or not isinstance(n_segments, (int, np.integer)) or n_segments < 2:
        raise ValueError(f"n_segments must be an integer >= 2, got {n_segments!r}")
    values = rfm(features)
    distinct = len(values.drop_duplicates())
    if distinct < n_segments:
        raise ValueError(f"features have {distinct} distinct RFM rows, fewer than n_segments={n_segments}")
    scaled = StandardScaler().fit_transform(np.log1p(values.to_numpy()))
    labels = KMeans(n_clusters=n_segments, n_init=10, random_state=seed).fit_predict(scaled)
    # Renumber by mean spend, highest first.
    order = pd.Series(values["spend_365d"].to_numpy()).groupby(labels).mean().sort_values(ascending=False).index
    renumber = {old: new for new, old in enumerate(order)}
    segments = values.reset_index(drop=True)
    segments.insert(0, ID_COLUMN, features[ID_COLUMN].to_numpy())
    segments[SEGMENT_COLUMN] = np.array([renumber[label] for label in labels], dtype="int64")
    return segments


def segment_profiles(segments: pd.DataFrame) -> pd.DataFrame:
    """Per segment: customers, their share, and the mean and median of each RFM column.

    Examples
    --------
    >>> frame = pd.DataFrame({"segment": [0, 0, 1], "days_since_last_purchase": [1.0, 3.0, 50.0],
    ...                       "purchase_days": [5.0, 3.0, 1.0], "spend_365d": [100.0, 60.0, 0.0]})
    >>> segment_profiles(frame)[["customers", "spend_365d_mean"]].to_dict("list")
    {'customers': [2, 1], 'spend_365d_mean': [80.0, 0.0]}
    """
    require_columns(segments, [SEGMENT_COLUMN, *RFM_COLUMNS], frame_name="segments")
    grouped = segments.groupby(SEGMENT_COLUMN)
    profile = grouped.size().rename("customers").to_frame()
    profile["share"] = profile["customers"] / len(segments)
    for column in RFM_COLUMNS:
        profile[f"{column}_mean"] = grouped[column].mean()
        profile[f"{column}_median"] = grouped[column].median()
    return profile.reset_index()
