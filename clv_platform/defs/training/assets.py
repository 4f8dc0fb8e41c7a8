"""ml/clv_model: XGBoost on the stacked training examples, tracked and registered in MLflow."""


import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource


class TrainConfig(dg.Config):
    """XGBoost settings and the promotion gate."""

    n_estimators: int = Field(default=400, description="Upper bound on boosting rounds (early stopping picks fewer).")
    max_depth: int = Field(default=5, description="Tree depth.")
    learning_rate: float = Field(default=0.05, description="Shrinkage per round.")
    min_rmse_improvement: float = Field(
        default=0.0, description="Fraction by which a new model's validation RMSE must undercut the champion's on the same cutoff to replace it (0.02 = 2 %)."
    )


@dg.asset(
    key=["ml", "clv_model"],
    deps=[dg.AssetKey(["marts", "training_examples"])],
    group_name="training",
    kinds={"xgboost", "mlflow"},
    description="XGBoost regressor of next-horizon revenue, registered in MLflow; the champion alias names the model that scores.",
)
def clv_model(context: dg.AssetExecutionContext, config: TrainConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    from clv_platform import lineage
    from clv_platform.ml import registry, train

    with warehouse.get_connection() as con:
        examples = con.execute("select * from marts.training_examples order by cutoff_date, customer_id").df()
    train_frame, valid_frame = train.time_split(examples)
    params = {"n_estimators": config.n_estimators, "max_depth": config.max_depth, "learning_rate": config.learning_rate}
    trained = train.fit_clv_model(train_frame, valid_frame, params)

    mlflow.activate()
    data_version = lineage.data_version(examples)
    commit = lineage.git_commit()
    code_version = lineage.code_version() + (f"@git:{commit[:12]}" if commit else "")
    registered = registry.log_and_register(
        trained,
        train_frame,
        valid_frame,
        model_name=mlflow.model_name,
        experiment_name=mlflow.experiment_name,
        data_version=data_version,
        code_version=code_version,
    )
    # The gate compares both models on this run's validation cutoff.
    current = registry.champion_metrics(mlflow.model_name, valid_frame)
    promoted, reason = registry.decide_promotion(
        trained.metrics, current[1] if current else None, min_improvement=config.min_rmse_improvement
    )
    if promoted:
        registry.set_alias(mlflow.model_name, "champion", registered.version)
    champion = registry.champion_version(mlflow.model_name)
    context.log.info(f"model v{registered.version}: {reason}")
    return dg.MaterializeResult(
        metadata={
            "model_name": mlflow.model_name,
            "model_version": str(registered.version),
            "mlflow_run_id": registered.run_id,
            "champion_version": str(champion.version) if champion else None,
            "promoted": promoted,
            "promotion_reason": reason,
            "data_version": data_version,
            "code_version": code_version,
            "train_rows": len(train_frame),
            "valid_rows": len(valid_frame),
            "train_cutoffs": ", ".join(sorted(map(str, train_frame["cutoff_date"].unique()))),
            "valid_cutoff": str(valid_frame["cutoff_date"].iloc[0]),
            **{f"valid_{name}": float(value) for name, value in trained.metrics.items()},
        },
        data_version=dg.DataVersion(f"{mlflow.model_name}:{registered.version}"),
    )
