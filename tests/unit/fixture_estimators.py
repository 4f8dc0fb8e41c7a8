"""Two small real CLV estimators for tests of the registry and scoring, independent of the ladder's models.

A spend-rate model fitted by one least-squares scale, and a constant model that predicts the training
mean for everyone (no ranking at all).
"""

import numpy as np

from clv_platform.ml.estimator import CLVEstimator, horizon_of
from clv_platform.ml.features import LABEL_COLUMN


class SpendRateModel(CLVEstimator):
    """``scale * spend_365d * horizon / 365``, ``scale`` fitted by least squares through the origin."""

    name = "spend_rate"
    feature_columns = ("spend_365d",)

    def fit(self, train, valid=None):
        self.horizon_days = horizon_of(train)
        x = train["spend_365d"].clip(lower=0).to_numpy(dtype="float64") * self.horizon_days / 365
        self.scale = float(x @ train[LABEL_COLUMN].to_numpy(dtype="float64") / (x @ x))
        return self

    def predict(self, features):
        rate = features["spend_365d"].clip(lower=0).to_numpy(dtype="float64") / 365
        return self.scale * rate * self._require_fitted()

    def params(self):
        return {"scale": self.scale}


class ConstantModel(CLVEstimator):
    """The training mean of the label, for everyone: no ranking at all."""

    name = "constant"
    feature_columns = ()

    def fit(self, train, valid=None):
        self.horizon_days = horizon_of(train)
        self.mean = float(train[LABEL_COLUMN].mean())
        return self

    def predict(self, features):
        self._require_fitted()
        return np.full(len(features), self.mean)

    def probability_alive(self, features):
        return np.ones(len(features))
