"""Retrain when the latest drift report shows the prediction or a key feature has moved."""

import dagster as dg

from clv_platform.lib.resources import DriftPolicy

DRIFT_REPORT_KEY = dg.AssetKey(["monitoring", "drift_report"])
REASON_TAG = "clv/retrain_reason"


def retraining_reason(psi: dict[str, float], policy: DriftPolicy) -> str | None:
    """Why to retrain, or None: prediction or key-feature PSI above the policy's threshold."""
    from clv_platform.ml.drift import drifted_columns

    watched = [policy.prediction_column, *policy.key_features]
    drifted = drifted_columns(psi, threshold=policy.psi_threshold, key_columns=[c for c in watched if c in psi])
    if not drifted:
        return None
    listed = ", ".join(f"{col} PSI {psi[col]:.3f}" for col in drifted)
    return f"drift above {policy.psi_threshold:g}: {listed}"


@dg.sensor(
    job_name="clv_retraining",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads each new drift report once; requests one retraining run per drifted report.",
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext, drift_policy: DriftPolicy):
    records = context.instance.fetch_materializations(DRIFT_REPORT_KEY, limit=1).records
    if not records:
        return dg.SkipReason("No drift report has been materialized yet.")
    record = records[0]
    # The cursor is the storage id of the last report judged: each report is one drift event.
    if context.cursor and int(context.cursor) >= record.storage_id:
        return dg.SkipReason(f"Drift report {record.storage_id} was already evaluated.")
    context.update_cursor(str(record.storage_id))

    metadata = record.asset_materialization.metadata
    if "psi" not in metadata:
        return dg.SkipReason(f"Drift report {record.storage_id} carries no PSI values.")
    psi = {str(k): float(v) for k, v in metadata["psi"].value.items()}
    reason = retraining_reason(psi, drift_policy)
    if reason is None:
        return dg.SkipReason(f"Drift report {record.storage_id}: no watched PSI above {drift_policy.psi_threshold:g}.")
    context.log.info(reason)
    return dg.RunRequest(
        run_key=f"drift-report-{record.storage_id}",
        tags={REASON_TAG: reason[:4000], "clv/drift_report_storage_id": str(record.storage_id)},
    )
