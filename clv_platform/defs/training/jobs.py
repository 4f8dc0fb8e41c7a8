import dagster as dg

retraining_job = dg.define_asset_job(
    name="clv_retraining",
    selection=dg.AssetSelection.groups("training"),
    description="Train a new model on the current training examples, register it and apply the promotion gate.",
)
