"""The one contract every CLV model meets, so the champion can be any of them.

Every model of the ladder (heuristic, linear, BG/NBD + Gamma-Gamma, XGBoost) is a :class:`CLVEstimator`:
it is fitted on rows of ``marts.training_examples`` and predicts revenue in the ``horizon_days`` after
each row's cutoff from the feature contract of :mod:`clv_platform.ml.features`.
:class:`clv_platform.ml.pyfunc.CLVPyfuncModel` wraps any fitted estimator as one MLflow pyfunc, so the
registry, the gates and scoring never ask which kind of model they hold.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clv_platform.ml.features import FEATURE_COLUMNS, HORIZON_COLUMN, require_columns


class CLVEstimator(abc.ABC):
    """A model of next-horizon revenue per customer.

    Attributes
    ----------
    name
        The model's rung on the ladder: ``heuristic``, ``linear``, ``btyd`` or ``xgboost``.
    feature_columns
        The feature columns it reads (a subset of :data:`FEATURE_COLUMNS`, in its order).
    horizon_days
        The label horizon it was fitted for; ``None`` before :meth:`fit`.
    """

    name: ClassVar[str]
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    horizon_days: int | None = None

    @abc.abstractmethod
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> CLVEstimator:
        """Fit on training examples (features, ``horizon_days`` and ``future_revenue``); return ``self``.

        ``valid`` is an optional later cutoff for early stopping; models that do not use it ignore it.
        """

    @abc.abstractmethod
    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Expected revenue in the fitted ``horizon_days`` after the cutoff, ``>= 0``, row-aligned with ``features``."""

    def probability_alive(self, features: pd.DataFrame) -> np.ndarray | None:
        """Probability that each customer is still active at the cutoff, or ``None`` if the model has no such notion."""
        return None

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame | None:
        """Additive per-feature contributions to each row's prediction, or ``None`` if the model has none.

        One column per feature plus ``bias``; each row sums to the model's raw output for that row (for a
        log-link model that is the log of the prediction, not the prediction).
        """
        return None

    @property
    def contribution_method(self) -> str | None:
        """How :meth:`contributions` computes them (``linear_exact``, ``treeshap``, ``treeshap_approx``), or ``None``."""
        return None

    @property
    def contribution_scale(self) -> str | None:
        """The unit of :meth:`contributions`, that of the raw output they sum to (``revenue``, ``log_revenue``), or ``None``."""
        return None

    def params(self) -> dict[str, Any]:
        """What to log to MLflow as parameters: hyper-parameters and fitted sizes."""
        return {}

    def _require_fitted(self) -> int:
        if self.horizon_days is None:
            raise ValueError(f"the {self.name} model is not fitted: call fit() first")
        return self.horizon_days


def horizon_of(train: pd.DataFrame) -> int:
    """The single ``horizon_days`` of a training frame; raise ``ValueError`` if it has none or several.

    Examples
    --------
    >>> horizon_of(pd.DataFrame({"horizon_days": [91, 91]}))
    91
    """
    require_columns(train, [HORIZON_COLUMN], frame_name="train")
    horizons = pd.unique(train[HORIZON_COLUMN].dropna())
    if len(horizons) != 1:
        raise ValueError(f"train column '{HORIZON_COLUMN}' must hold exactly one horizon, got {sorted(horizons)}")
    return int(horizons[0])
