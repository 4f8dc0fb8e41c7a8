"""monitoring/drift_report: today's features and scores against the champion's training data."""

import json
from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from clv_platform import settings
from clv_platform.lib.resources import DriftPolicy, MlflowResource
from clv_platform.lib.warehouse import markdown_table


@dg.asset(
    key=["monitoring", "drift_report"],
    deps=[dg.AssetKey(["scoring", "clv_scores"]), dg.AssetKey(["marts", "customer_features"])],
    group_name="monitoring",
    kinds={"evidently", "duckdb"},
    description="Evidently PSI drift report of current features and predictions against the champion's reference data.",
)
def drift_report(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource, drift_policy: DriftPolicy):
    import pandas as pd

    from clv_platform.defs.scoring.assets import last_batch
    from clv_platform.ml import batches, drift, registry, scoring
    from clv_platform.ml.features import FEATURE_COLUMNS, PREDICTION_COLUMN

    mlflow.activate()
    with warehouse.get_connection() as con:
        scored = last_batch(con)
        current = con.execute(
            f"""
            select f.*, s.{PREDICTION_COLUMN}, s.model_version
            from scoring.clv_scores s
            join marts.customer_features f using (customer_id, cutoff_date)
            where s.cutoff_date = ?
            """,
            [scored.cutoff_date],
        ).df()
    if current.empty:
        raise dg.Failure("scoring.clv_scores has no rows joined to marts.customer_features: nothing to compare.")
    # The reference is the champion's: under a canary or A/B rollout its arm (a random split) is compared.
    scored_by = scored.model_version
    current = current.loc[current["model_version"].astype(str) == str(scored_by)].reset_index(drop=True)
    # Compare like with like: the reference population filtered by the rule that chose who was scored.
    active_within_days = scored.active_within_days
    reference = scoring.active_customers(registry.load_reference(mlflow.model_name, scored_by), active_within_days)

    columns = [*FEATURE_COLUMNS, PREDICTION_COLUMN]
    cutoff = pd.Timestamp(current["cutoff_date"].iloc[0]).date()
    reported_at = datetime.now(UTC)
    stamp = reported_at.strftime("%Y%m%dT%H%M%SZ")
    html_path = settings.reports_dir() / "drift" / f"drift_{cutoff}_{stamp}.html"
    result = drift.drift_report(reference, current, columns)
    result.save_html(html_path)
    # Our decile-binned PSI drives alerts; Evidently's (shown in its HTML) bins money columns
    # equal-width and misses zero-share shifts (see ml/drift.py), so it is recorded beside it.
    psi = {col: round(float(value), 6) for col, value in result.psi.items()}
    drifted = drift.drifted_columns(psi, threshold=drift_policy.psi_threshold, key_columns=columns)

    table = result.table().rename_axis("column").reset_index()
    table["drifted"] = table["psi"] > drift_policy.psi_threshold
    report = batches.DriftReport(
        cutoff_date=str(cutoff),
        reported_at=reported_at.replace(tzinfo=None).isoformat(),
        model_version=str(scored_by),
        active_within_days=active_within_days,
        prediction_psi=psi[PREDICTION_COLUMN],
        drifted_columns=json.dumps(drifted),
        psi_threshold=drift_policy.psi_threshold,
        report_path=str(html_path),
    )
    with warehouse.get_connection() as con:
        batches.append(con, batches.DRIFT_REPORTS_TABLE, report)
        history = table.assign(cutoff_date=cutoff, reported_at=stamp, model_version=str(scored_by))
        con.execute("create schema if not exists monitoring")
        con.register("_psi", history)
        con.execute("create table if not exists monitoring.drift_psi as select * from _psi limit 0")
        con.execute("insert into monitoring.drift_psi by name select * from _psi")
        con.unregister("_psi")

    return dg.MaterializeResult(
        metadata={
            "psi": dg.MetadataValue.json(psi),
            "evidently_psi": dg.MetadataValue.json({c: round(float(v), 6) for c, v in result.evidently_psi.items()}),
            "prediction_psi": psi[PREDICTION_COLUMN],
            "max_feature_psi": max(v for k, v in psi.items() if k != PREDICTION_COLUMN),
            "drifted_columns": dg.MetadataValue.json(drifted),
            "psi_threshold": drift_policy.psi_threshold,
            "reference_model_version": str(scored_by),
            "reference_rows": len(reference),
            "active_within_days": active_within_days,
            "current_rows": len(current),
            "cutoff_date": str(cutoff),
            "psi_table": dg.MetadataValue.md(markdown_table(table, floatfmt=".4f")),
            "report": dg.MetadataValue.url(html_path.as_uri()),
            "report_path": dg.MetadataValue.path(str(html_path)),
        }
    )
