"""The main job: the whole asset graph, raw data to drift report."""

import dagster as dg

clv_full_pipeline = dg.define_asset_job(
    name="clv_full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Everything: ingest, build features, train and register, score, report drift.",
)
