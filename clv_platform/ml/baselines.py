"""The baselines every CLV model must beat: a spend-rate heuristic, a linear model and BG/NBD + Gamma-Gamma.

Each is a :class:`~clv_platform.ml.estimator.CLVEstimator`, so any of them can be the champion and be
logged as the same MLflow pyfunc (:class:`~clv_platform.ml.pyfunc.CLVPyfuncModel`) as XGBoost.

The BTYD model is fitted with pymc-marketing (MAP) but predicts with the closed forms of its fitted
population parameters (numpy and scipy only): the logged model then loads without pymc, pytensor or a
compile step, and scores a million rows in well under a second.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clv_platform.ml.estimator import CLVEstimator, horizon_of
from clv_platform.ml.features import (
    CUTOFF_COLUMN,
    LABEL_COLUMN,
    require_columns,
    require_numeric_finite,
    validate_feature_frame,
)

BTYD_CORE: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")


def _checked(features: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of ``features`` as float64, after checking they are present, numeric and finite."""
    require_columns(features, columns, frame_name="features")
    require_numeric_finite(features, columns, frame_name="features")
    return features.loc[:, list(columns)].astype("float64")


def _checked_train(train: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    if len(train) == 0:
        raise ValueError("train frame must not be empty")
    validate_feature_frame(train, require_label=True, feature_columns=columns)
    return train


class HeuristicModel(CLVEstimator):
    """Each customer's recent spend rate times the horizon: ``max(spend_365d, 0) / d * horizon_days``.

    ``d = max(min(T, 365), horizon_days)`` days: the spend of the last year (net of returns, never
    below 0) is divided by the days the customer was observed in that year, but never by fewer days
    than the horizon, so a customer first seen last week is not extrapolated to ``horizon / 7`` times
    their first basket; they are predicted to spend it once more. Nothing is learned from labels.

    Examples
    --------
    >>> features = pd.DataFrame({"T": [730.0, 100.0, 10.0], "spend_365d": [365.0, 200.0, 50.0]})
    >>> model = HeuristicModel().fit(features.assign(horizon_days=91, future_revenue=0.0,
    ...                                              customer_id=["a", "b", "c"], cutoff_date="2011-01-01"))
    >>> model.predict(features).round(2).tolist()
    [91.0, 182.0, 50.0]
    """

    name: ClassVar[str] = "heuristic"
    feature_columns = ("T", "spend_365d")

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> HeuristicModel:
        _checked_train(train, self.feature_columns)
        self.horizon_days = horizon_of(train)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        horizon = self._require_fitted()
        x = _checked(features, self.feature_columns)
        days = np.maximum(np.minimum(x["T"].to_numpy(), 365.0), float(horizon))
        return np.clip(x["spend_365d"].to_numpy(), 0.0, None) / days * horizon

    def params(self) -> dict[str, Any]:
        return {"model": self.name, "horizon_days": self.horizon_days, "rate": "max(spend_365d,0)/max(min(T,365),horizon_days)"}


class LinearModel(CLVEstimator):
    """Ordinary least squares of ``future_revenue`` on the BTYD core, predictions clipped at 0.

    Its contributions are exact: ``coef_j * x_j`` per feature plus the intercept as ``bias``; they sum
    to the unclipped linear output.
    """

    name: ClassVar[str] = "linear"
    feature_columns = BTYD_CORE
    contribution_method = "linear_exact"
    # The unclipped linear output, in revenue: a customer predicted below 0 scores 0 but keeps these.
    contribution_scale = "revenue"

    def __init__(self) -> None:
        self.coef_: np.ndarray | None = None
        self.intercept_: float | None = None

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> LinearModel:
        from sklearn.linear_model import LinearRegression

        _checked_train(train, self.feature_columns)
        horizon = horizon_of(train)
        regression = LinearRegression().fit(
            train.loc[:, list(self.feature_columns)].to_numpy(dtype="float64"),
            train[LABEL_COLUMN].to_numpy(dtype="float64"),
        )
        self.coef_ = np.asarray(regression.coef_, dtype="float64")
        self.intercept_ = float(regression.intercept_)
        self.horizon_days = horizon
        return self

    def _raw(self, features: pd.DataFrame) -> np.ndarray:
        self._require_fitted()
        return _checked(features, self.feature_columns).to_numpy() @ self.coef_ + self.intercept_

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.clip(self._raw(features), 0.0, None)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        self._require_fitted()
        x = _checked(features, self.feature_columns)
        frame = x * self.coef_
        frame["bias"] = self.intercept_
        return frame

    def params(self) -> dict[str, Any]:
        fitted = (
            {} if self.coef_ is None else {f"coef_{c}": float(v) for c, v in zip(self.feature_columns, self.coef_, strict=True)}
        )
        return {"model": self.name, "horizon_days": self.horizon_days, "intercept": self.intercept_, **fitted}


def flat_priors_bg() -> dict:
    """BG/NBD priors: HalfFlat on r, alpha, a, b, so MAP is maximum likelihood.

    With these, pymc-marketing reproduces the published CDNOW estimates of Fader, Hardie & Lee (2005)
    to four digits; its default priors (Weibull on r and alpha, a Pareto/Uniform reparametrisation of
    a and b) move a and b by 11-14 % there.
    """
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}


def flat_priors_gg() -> dict:
    """Gamma-Gamma priors: HalfFlat on p, q, v (pymc-marketing's default, stated rather than inherited)."""
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in ("p", "q", "v")}


def fit_bgnbd(rfm: pd.DataFrame) -> dict[str, float]:
    """MAP (= maximum likelihood, flat priors) BG/NBD parameters ``r, alpha, a, b`` of an RFM frame.

    ``rfm`` has ``frequency``, ``recency`` and ``T`` in days, one row per customer.
    """
    from clv_platform.settings import configure_pytensor_cache

    configure_pytensor_cache()
    from pymc_marketing.clv import BetaGeoModel

    data = rfm.loc[:, ["frequency", "recency", "T"]].reset_index(drop=True).assign(customer_id=lambda f: np.arange(len(f)))
    model = BetaGeoModel(model_config=flat_priors_bg())
    model.fit(data=data, method="map", progressbar=False)
    return {name: float(model.fit_result[name].values.squeeze()) for name in ("r", "alpha", "a", "b")}


def fit_gamma_gamma(rfm: pd.DataFrame) -> dict[str, float]:
    """MAP (flat priors) Gamma-Gamma parameters ``p, q, v`` of repeat customers with positive mean spend."""
    from clv_platform.settings import configure_pytensor_cache

    configure_pytensor_cache()
    from pymc_marketing.clv import GammaGammaModel

    data = rfm.loc[:, ["frequency", "monetary_value"]].reset_index(drop=True).assign(customer_id=lambda f: np.arange(len(f)))
    model = GammaGammaModel(model_config=flat_priors_gg())
    model.fit(data=data, method="map", progressbar=False)
    return {name: float(model.fit_result[name].values.squeeze()) for name in ("p", "q", "v")}


def bgnbd_expected_purchases(params: dict[str, float], frequency, recency, T, t: float) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` days: equation (10) of Fader, Hardie & Lee (2005).

    pymc-marketing's ``BetaGeoModel.expected_purchases`` on arrays, with its denominator
    ``1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x)`` written as ``1 / P(alive)``:
    the same value, but it cannot overflow for customers with many purchases long ago.
    """
    from scipy.special import hyp2f1

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    x, T = (np.asarray(v, dtype="float64") for v in (frequency, T))
    numerator = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    numerator *= (a + b + x - 1) / (a - 1)
    return numerator * bgnbd_probability_alive(params, frequency, recency, T)


def bgnbd_probability_alive(params: dict[str, float], frequency, recency, T) -> np.ndarray:
    """P(alive) under BG/NBD (Fader, Hardie & Lee 2008); 1 for customers with no repeat purchase."""
    from scipy.special import expit

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (frequency, recency, T))
    log_div = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_div))


def gamma_gamma_expected_spend(params: dict[str, float], frequency, monetary_value) -> np.ndarray:
    """Conditional expected spend per purchase (Fader & Hardie 2013, eq. 5).

    ``p (v + x m) / (p x + q - 1)``, the weighted mean of the population mean ``p v / (q - 1)`` and the
    customer's own mean ``m``: one-time buyers (``x = 0``) get the population mean. A repeat customer
    whose net mean spend is ``<= 0`` (returns) counts as ``m = 0``, which shrinks their expectation
    below the population mean instead of making it negative.
    """
    p, q, v = (params[k] for k in ("p", "q", "v"))
    x = np.asarray(frequency, dtype="float64")
    m = np.clip(np.asarray(monetary_value, dtype="float64"), 0.0, None)
    return p * (v + x * m) / (p * x + q - 1)


class BTYDModel(CLVEstimator):
    """BG/NBD (purchases, probability alive) times Gamma-Gamma (spend per purchase), fitted by MAP.

    Fitted on the BTYD core at the latest training cutoff only: the model is of purchase histories, not
    of labels, so the latest cutoff's histories are the longest and most recent; older cutoffs repeat
    the same customers' shorter histories, which BG/NBD's independence assumption would count twice.
    BG/NBD uses every customer (``T > 0``); Gamma-Gamma only repeat customers with positive net mean
    spend (the model needs ``monetary_value > 0``; returns can make it ``<= 0``).

    ``predict`` = expected purchases in ``horizon_days`` x conditional expected spend per purchase.
    """

    name: ClassVar[str] = "btyd"
    feature_columns = BTYD_CORE

    def __init__(self) -> None:
        self.bgnbd_params: dict[str, float] | None = None
        self.gamma_gamma_params: dict[str, float] | None = None
        self.fit_cutoff: pd.Timestamp | None = None
        self.n_fit: int = 0
        self.n_fit_gamma_gamma: int = 0

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> BTYDModel:
        _checked_train(train, self.feature_columns)
        horizon = horizon_of(train)
        cutoffs = pd.to_datetime(train[CUTOFF_COLUMN])
        latest = train.loc[(cutoffs == cutoffs.max()).to_numpy()]
        rfm = latest.loc[latest["T"] > 0, list(self.feature_columns)].astype("float64")
        repeaters = rfm.loc[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
        if len(rfm) < 10 or len(repeaters) < 10:
            raise ValueError(
                f"train at cutoff {cutoffs.max().date()} has {len(rfm)} customer(s) with 'T' > 0 and {len(repeaters)} "
                "with 'frequency' > 0 and 'monetary_value' > 0: BG/NBD + Gamma-Gamma need at least 10 of each"
            )
        self.bgnbd_params = fit_bgnbd(rfm)
        self.gamma_gamma_params = fit_gamma_gamma(repeaters)
        if self.gamma_gamma_params["q"] <= 1:
            raise ValueError(
                f"Gamma-Gamma fit gave q = {self.gamma_gamma_params['q']:.3f} <= 1: the population mean spend is "
                "infinite; the 'monetary_value' column is too heavy-tailed for this model"
            )
        self.fit_cutoff, self.n_fit, self.n_fit_gamma_gamma = cutoffs.max(), len(rfm), len(repeaters)
        self.horizon_days = horizon
        # The flat-prior optimum can run off to the boundary (r, alpha, a near 0), where the closed forms
        # give NaN: stop here, naming the parameters, rather than hand NaN scores downstream.
        bad = int((~np.isfinite(self.predict(latest)) | ~np.isfinite(self.probability_alive(latest))).sum())
        if bad:
            raise ValueError(
                f"BG/NBD fit at cutoff {cutoffs.max().date()} is degenerate "
                f"({', '.join(f'{k}={v:.3g}' for k, v in self.bgnbd_params.items())}): "
                f"{bad} of its {len(latest)} customers get no finite prediction; these histories do not suit BG/NBD"
            )
        return self

    def expected_purchases(self, features: pd.DataFrame) -> np.ndarray:
        """Expected repeat purchase days in the ``horizon_days`` after the cutoff."""
        horizon = self._require_fitted()
        x = _checked(features, self.feature_columns)
        return bgnbd_expected_purchases(self.bgnbd_params, x["frequency"], x["recency"], x["T"], float(horizon))

    def expected_spend(self, features: pd.DataFrame) -> np.ndarray:
        """Conditional expected spend per purchase day (Gamma-Gamma)."""
        self._require_fitted()
        x = _checked(features, self.feature_columns)
        return gamma_gamma_expected_spend(self.gamma_gamma_params, x["frequency"], x["monetary_value"])

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.clip(self.expected_purchases(features) * self.expected_spend(features), 0.0, None)

    def probability_alive(self, features: pd.DataFrame) -> np.ndarray:
        self._require_fitted()
        x = _checked(features, self.feature_columns)
        return bgnbd_probability_alive(self.bgnbd_params, x["frequency"], x["recency"], x["T"])

    def params(self) -> dict[str, Any]:
        fitted = {**(self.bgnbd_params or {}), **(self.gamma_gamma_params or {})}
        return {
            "model": self.name,
            "horizon_days": self.horizon_days,
            "priors": "HalfFlat (MAP = maximum likelihood)",
            "fit_cutoff": None if self.fit_cutoff is None else str(self.fit_cutoff.date()),
            "n_fit": self.n_fit,
            "n_fit_gamma_gamma": self.n_fit_gamma_gamma,
            **fitted,
        }
