"""Any fitted :class:`~clv_platform.ml.estimator.CLVEstimator` as one MLflow pyfunc.

Imports mlflow (seconds): import this module only where a model is logged or loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from clv_platform.ml.estimator import CLVEstimator
from clv_platform.ml.features import require_columns

# The output columns. probability_alive is null for models without that notion.
OUTPUT_COLUMNS: tuple[str, ...] = ("predicted_clv", "probability_alive")


class CLVPyfuncModel(PythonModel):
    """Any fitted :class:`CLVEstimator` as an MLflow pyfunc with the same input and output contract.

    Input: a frame with the model's feature columns (the logged signature lists all of
    :data:`FEATURE_COLUMNS`, float64, for every model). Output: a frame with ``predicted_clv`` (``>= 0``)
    and ``probability_alive`` (null when the model has none), row-aligned with the input.
    """

    def __init__(self, estimator: CLVEstimator):
        if estimator.horizon_days is None:
            raise ValueError(f"the {estimator.name} model must be fitted before it is wrapped for MLflow")
        self.estimator = estimator

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        require_columns(model_input, self.estimator.feature_columns, frame_name="model input")
        alive = self.estimator.probability_alive(model_input)
        return pd.DataFrame(
            {
                "predicted_clv": np.asarray(self.estimator.predict(model_input), dtype="float64"),
                "probability_alive": np.full(len(model_input), np.nan) if alive is None else np.asarray(alive, dtype="float64"),
            },
            index=model_input.index,
        )
