"""scoring/clv_explanations: why the champion predicts what it does, the top drivers of every scored customer.

A table of its own rather than columns on ``scoring.clv_scores``: explaining costs several times scoring
(approximate TreeSHAP a few times prediction, exact far more: ``benchmarks/RESULTS.md``), its method depends on
the rung, and a rung without contributions has nothing to add; the scores, their export and the drift
report neither wait for it nor carry its columns.
"""

import time

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.defs.scoring.assets import SCORES_KEY, last_batch, scores_at
from clv_platform.lib.resources import MlflowResource
from clv_platform.lib.warehouse import markdown_table


class ExplanationConfig(dg.Config):
    top_drivers: int = Field(
        default=3, description="Drivers kept per customer: the features with the largest absolute contributions."
    )
    exact_treeshap: bool = Field(
        default=False,
        description="XGBoost champions: exact TreeSHAP (tens to hundreds of times the cost of scoring, benchmarks/RESULTS.md) "
        "instead of its approximation (a few times).",
    )
    batch_size_rows: int = Field(default=50_000, description="Customers whose contributions are held in memory at once.")


@dg.asset(
    key=["scoring", "clv_explanations"],
    deps=[SCORES_KEY, dg.AssetKey(["marts", "customer_features"])],
    group_name="scoring",
    kinds={"mlflow", "duckdb"},
    description=(
        "scoring.clv_explanations: one row per scored customer per cutoff, the top drivers of the prediction "
        "(feature, signed contribution and a readable text) from the model version that made the score, with the "
        "method and unit of the contributions; rows say so when that rung has no per-feature contributions."
    ),
)
def clv_explanations(
    context: dg.AssetExecutionContext, config: ExplanationConfig, warehouse: DuckDBResource, mlflow: MlflowResource
):
    from datetime import UTC, datetime

    import pandas as pd

    from clv_platform.lib.warehouse import replace_cutoff_rows
    from clv_platform.ml import batches, registry
    from clv_platform.ml.explain import explain_customers, scored_rows

    mlflow.activate()
    with warehouse.get_connection() as con:
        scores = scores_at(con, pd.Timestamp(last_batch(con).cutoff_date))
        cutoff = scores["cutoff_date"].iloc[0]
        features = con.execute("select * from marts.customer_features where cutoff_date = ?", [cutoff]).df()
    try:
        model_name, versions, rows = scored_rows(scores, features)
    except ValueError as error:
        raise dg.Failure(str(error)) from None

    # Lineage: each row is explained by exactly the version that made its score (two under a canary or A/B
    # rollout), not whatever the alias names now.
    started = time.perf_counter()
    parts, rungs = [], []
    for model_version in versions:
        estimator = registry.estimator_of(registry.load_model_version(model_name, model_version))
        rungs.append(estimator.name)
        mine = rows.loc[rows["model_version"] == model_version]
        try:
            parts.append(
                explain_customers(
                    estimator, mine, k=config.top_drivers, approx=not config.exact_treeshap, batch_size=config.batch_size_rows
                )
            )
        except ValueError as error:
            raise dg.Failure(f"Cannot explain the {estimator.name} model version {model_version}: {error}") from None
    seconds = time.perf_counter() - started
    drivers = pd.concat(parts).loc[rows.index]
    table = pd.concat([rows[["customer_id", "cutoff_date"]], drivers], axis=1).assign(
        model_name=model_name, model_version=rows["model_version"]
    )
    method = ",".join(dict.fromkeys(drivers["method"].astype(str)))
    batch = batches.ExplanationBatch(
        cutoff_date=str(pd.Timestamp(cutoff).date()),
        explained_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
        model_name=model_name,
        model_version=",".join(versions),
        model_rung=",".join(rungs),
        method=method,
        top_drivers=config.top_drivers,
        customers_explained=len(table),
        explain_seconds=round(seconds, 3),
    )
    with warehouse.get_connection() as con:
        stored = replace_cutoff_rows(con, "scoring.clv_explanations", table, cutoff)
        batches.append(con, batches.EXPLANATION_BATCHES_TABLE, batch)

    top = table.assign(predicted_clv=rows["predicted_clv"]).nlargest(10, "predicted_clv")[
        ["customer_id", "predicted_clv", "drivers"]
    ]
    first_drivers = table["driver_1"].value_counts().head(10)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "cutoff_date": str(pd.Timestamp(cutoff).date()),
            "model_name": model_name,
            "model_version": batch.model_version,
            "model_rung": batch.model_rung,
            "method": method,
            "contribution_scale": ",".join(dict.fromkeys(drivers["contribution_scale"].fillna("none").astype(str))),
            "top_drivers": config.top_drivers,
            "explain_seconds": batch.explain_seconds,
            "customers_per_second": round(len(table) / max(seconds, 1e-9), 1),
            "most_common_first_driver": dg.MetadataValue.json({str(k): int(v) for k, v in first_drivers.items()}),
            "top_customers": dg.MetadataValue.md(markdown_table(top)),
        }
    )
