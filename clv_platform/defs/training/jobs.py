import dagster as dg

retraining_job = dg.define_asset_job(
    name="clv_retraining",
    selection=dg.AssetSelection.groups("training"),
    description="Train a new model on the current training examples, register it and apply the promotion gate.",
)

evaluation_job = dg.define_asset_job(
    name="clv_evaluation",
    selection=dg.AssetSelection.groups("ingestion", "features") | dg.AssetSelection.assets(["ml", "model_evaluation"]),
    description=(
        "Any transaction log, features and every model judged on one evaluation cutoff: the metrics table. "
        "Configure the dbt op's cutoff_date (evaluation cutoff + horizon), horizon_days and training cutoffs, "
        "and ml__model_evaluation's eval_cutoff; `clv-platform evaluate` does it from a file and a column mapping."
    ),
)
