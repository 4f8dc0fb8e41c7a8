"""Resource classes shared by the stages. Bound once, in ``defs/resources.py``."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class MlflowResource(dg.ConfigurableResource):
    """Where models are tracked and registered, and under which names."""

    tracking_uri: str = Field(description="MLflow tracking URI: sqlite file locally, an MLflow server at scale.")
    experiment_name: str = Field(default="clv_platform", description="MLflow experiment for training runs.")
    model_name: str = Field(
        default="clv_model", description="Registered model every rung is a version of; the aliases live on it."
    )

    def activate(self) -> None:
        """Point the process-wide MLflow client at this store (mlflow keeps it globally)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)


class DriftPolicy(dg.ConfigurableResource):
    """When a drift report should trigger retraining."""

    psi_threshold: float = Field(default=0.25, description="PSI above which a column counts as drifted.")
    key_features: list[str] = Field(
        default=["frequency", "recency", "monetary_value", "spend_365d", "orders_365d"],
        description="Features whose drift (besides the prediction's) requests retraining.",
    )
    prediction_column: str = Field(default="predicted_clv", description="The model output column.")
