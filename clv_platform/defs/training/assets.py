"""The modelling ladder, judged honestly, and the registry gates that decide which model scores.

- ``ml/model_evaluation``: every rung (heuristic, linear, BG/NBD + Gamma-Gamma, XGBoost, tuned XGBoost)
  fitted on earlier cutoffs and judged, with the current champion, on the evaluation cutoff; each logged
  and registered in MLflow with its model card; the gate decision computed once, here.
- ``ml/challenger``: the supervised candidate gets the ``challenger`` alias only if it passes the gates.
  The gates are blocking asset checks: a refused candidate fails them, each saying why.
- ``ml/clv_model``: the model that scores, the ``champion`` alias. The challenger is promoted; when there
  is none (history too short, or a baseline wins) the best baseline scores and the metadata says so.
  It does not depend on ``ml/challenger``, so a refused candidate never stops scoring with the champion.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource
from clv_platform.lib.warehouse import markdown_table

MODEL_EVALUATION = dg.AssetKey(["ml", "model_evaluation"])
GATES = ("beats_champion", "beats_baselines", "normalized_gini_floor", "fairness_floor")


class TrainConfig(dg.Config):
    """The evaluation window, the sliding training window, tuning and the gates' margins and floors."""

    eval_cutoff: str = Field(
        default="", description="Evaluation cutoff (YYYY-MM-DD, a cutoff of marts.training_examples); empty = the latest."
    )
    train_window_cutoffs: int = Field(
        default=0, description="Stateless sliding window: train on at most this many latest eligible cutoffs (0 = all)."
    )
    tune: bool = Field(default=False, description="Also fit xgboost_tuned: a bounded Optuna search over time folds.")
    tune_trials: int = Field(default=20, description="Optuna trials when tune is on.")
    mae_margin: float = Field(
        default=0.01, description="A challenger's MAE must be below (1 - this) x the champion's and every baseline's."
    )
    spearman_margin: float = Field(
        default=0.01, description="A challenger's Spearman must exceed the champion's and every baseline's plus this."
    )
    gini_margin: float = Field(
        default=0.01, description="A challenger's normalized Gini must exceed the champion's and every baseline's plus this."
    )
    min_normalized_gini: float = Field(default=0.3, description="Floor on a challenger's normalized Gini.")
    min_fairness_ratio: float = Field(
        default=0.8, description="Floor on a challenger's fairness ratio across country and channel slices."
    )
    fairness_relative_to_actual: bool = Field(
        default=True,
        description="The fairness ratio is the disparate-impact ratio of mean prediction relative to the actual revenue's "
        "(a perfect model scores 1); false = the plain ratio, which a perfect model fails where slices really spend differently.",
    )
    min_slice_size: int = Field(default=30, description="Slices with fewer customers are left out of the disparate-impact ratio.")

    def policy(self):
        from clv_platform.ml.registry import GatePolicy

        return GatePolicy(
            mae_margin=self.mae_margin,
            spearman_margin=self.spearman_margin,
            gini_margin=self.gini_margin,
            min_normalized_gini=self.min_normalized_gini,
            min_fairness_ratio=self.min_fairness_ratio,
        )


def _code_version() -> str:
    from clv_platform import lineage

    commit = lineage.git_commit()
    return lineage.code_version() + (f"@git:{commit[:12]}" if commit else "")


def _plots(result, candidate: str | None) -> dict[str, bytes]:
    """Lorenz curves of every model, decile calibration, and the feature importance of the candidate (or best rung)."""
    from clv_platform.ml import explain, plots
    from clv_platform.ml.features import LABEL_COLUMN

    y = result.evaluation[LABEL_COLUMN].to_numpy(dtype="float64")
    figures = {
        "lorenz": plots.to_png(plots.lorenz_figure(y, result.predictions)),
        "calibration": plots.to_png(plots.calibration_figure(y, result.predictions)),
    }
    explained = candidate or "linear"
    model = result.models.get(explained)
    # Exact contributions of a few thousand rows: a global picture at a bounded cost.
    sample = result.evaluation.sample(n=min(len(result.evaluation), 2_000), random_state=0)
    contributions = model.contributions(sample) if model is not None else None
    if contributions is not None:
        importance = explain.global_importance(contributions)
        figures["importance"] = plots.to_png(
            plots.importance_figure(importance, title=f"Feature importance ({explained}, mean |SHAP|)")
        )
    return figures


@dg.asset(
    key=MODEL_EVALUATION,
    deps=[dg.AssetKey(["marts", "training_examples"])],
    group_name="training",
    kinds={"xgboost", "mlflow"},
    description="Every rung of the ladder fitted on earlier cutoffs, judged with the champion on the evaluation cutoff, registered in MLflow with its model card.",
)
def model_evaluation(context: dg.AssetExecutionContext, config: TrainConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    import pandas as pd

    from clv_platform import lineage
    from clv_platform.lib.fingerprint import input_fingerprint
    from clv_platform.ml import plots, registry
    from clv_platform.ml.ladder import evaluate_ladder
    from clv_platform.ml.model_card import DataWindow, ModelCard

    with warehouse.get_connection() as con:
        examples = con.execute("select * from marts.training_examples order by cutoff_date, customer_id").df()
        # Every raw day the examples can have read: features before a cutoff, labels up to the last horizon end.
        label_end = (
            (examples["cutoff_date"] + pd.to_timedelta(examples["horizon_days"], unit="D")).max() if len(examples) else None
        )
        input_partitions = input_fingerprint(con, str(pd.Timestamp(label_end).date())) if label_end is not None else ""
    result = evaluate_ladder(
        examples,
        eval_cutoff=config.eval_cutoff or None,
        train_window_cutoffs=config.train_window_cutoffs or None,
        tune=config.tune,
        tune_options={"n_trials": config.tune_trials},
        min_slice_size=config.min_slice_size,
        fairness_relative_to_actual=config.fairness_relative_to_actual,
    )
    mlflow.activate()
    policy = config.policy()

    # The champion is judged on this window before any alias moves.
    champion = registry.champion_version(mlflow.model_name)
    champion_metrics = None
    if champion is not None:
        champion_model = registry.load_model_version(mlflow.model_name, champion.version)
        champion_pred = registry.predict(champion_model, result.evaluation)["predicted_clv"].to_numpy()
        champion_metrics = result.judge("champion", champion_pred)
    baselines = {name: result.gate_metrics(name) for name in result.baselines}
    decision = (
        registry.decide_challenger(result.gate_metrics(result.candidate), champion_metrics, baselines, policy)
        if result.candidate
        else None
    )
    choice = registry.decide_champion(
        result.candidate,
        decision,
        champion_metrics,
        baselines,
        policy=policy,
        champion_is_baseline=champion is not None and champion.tags.get("rung") in result.baselines,
        no_candidate_reason=result.no_candidate_reason or "no supervised candidate",
    )
    context.log.info(f"gate decision: {choice.reason}")

    figures = _plots(result, result.candidate)
    window = DataWindow(
        result.train_cutoffs, result.evaluation_cutoff, result.horizon_days, len(result.train), len(result.evaluation)
    )
    data_version = lineage.data_version(examples)
    code_version = _code_version()
    versions = {}
    for name, model in result.models.items():
        card = ModelCard(
            model_name=mlflow.model_name,
            rung=name,
            window=window,
            metrics=result.metrics,
            slices=result.slices.metrics[result.slices.metrics["model"] == name].drop(columns="model"),
            fairness_ratio=float(result.metrics.loc[name, "disparate_impact"]),
            actual_fairness_ratio=result.actual_fairness_ratio,
            data_version=data_version,
            input_partitions=input_partitions,
            code_version=code_version,
            params=model.params(),
            decision=decision.reasons if (name == result.candidate and decision) else [],
        ).markdown()
        registered = registry.log_estimator(
            model,
            reference=registry.build_reference(result.evaluation, result.predictions[name]),
            data_version=data_version,
            code_version=code_version,
            model_card=card,
            metrics=result.metrics.loc[name].to_dict(),
            plots=figures,
            params={
                "train_cutoffs": ",".join(window.train_cutoffs),
                "evaluation_cutoff": window.evaluation_cutoff,
                "n_train": window.train_rows,
                "n_evaluation": window.evaluation_rows,
            },
            tags={"input_partitions": input_partitions},
            model_name=mlflow.model_name,
            experiment_name=mlflow.experiment_name,
        )
        versions[name] = registered.version

    table = result.metrics.rename_axis("model").reset_index()
    fairness = result.slices.fairness.rename_axis("model").reset_index()
    return dg.MaterializeResult(
        metadata={
            "model_name": mlflow.model_name,
            "versions": dg.MetadataValue.json(versions),
            "candidate": result.candidate or "",
            "no_candidate_reason": result.no_candidate_reason or "",
            "champion_version_before": str(champion.version) if champion else "",
            "champion_metrics_before": dg.MetadataValue.json(champion_metrics or {}),
            "gates": dg.MetadataValue.json(
                {name: {"passed": ok, "why": why} for name, (ok, why) in (decision.gates.items() if decision else [])}
            ),
            "champion_decision": dg.MetadataValue.json(
                {
                    "action": choice.action,
                    "model": choice.model,
                    "reason": choice.reason,
                    "baseline_serves": choice.baseline_serves,
                }
            ),
            "evaluation_cutoff": result.evaluation_cutoff,
            "train_cutoffs": ", ".join(result.train_cutoffs) or "none",
            "horizon_days": result.horizon_days,
            "train_rows": len(result.train),
            "evaluation_rows": len(result.evaluation),
            "data_version": data_version,
            "input_partitions": input_partitions,
            "code_version": code_version,
            "metrics": dg.MetadataValue.md(markdown_table(table, floatfmt=".4f")),
            "metrics_table": dg.MetadataValue.json(table.astype(object).where(table.notna(), None).to_dict(orient="records")),
            "fairness": dg.MetadataValue.md(markdown_table(fairness, floatfmt=".3f")),
            "actual_fairness_ratio": result.actual_fairness_ratio,
            "fairness_relative_to_actual": config.fairness_relative_to_actual,
            "slices": dg.MetadataValue.md(markdown_table(result.slices.metrics, floatfmt=".3f")),
            **{f"plot_{name}": dg.MetadataValue.md(plots.markdown_image(png, name)) for name, png in figures.items()},
            **{
                f"{name}_{metric}": float(value)
                for name in result.metrics.index
                for metric, value in result.metrics.loc[name].items()
            },
        },
        data_version=dg.DataVersion(f"{mlflow.model_name}:{','.join(versions.values())}"),
    )


def _evaluation_metadata(context) -> dict:
    event = context.instance.get_latest_materialization_event(MODEL_EVALUATION)
    if event is None:
        raise dg.Failure("ml/model_evaluation has never been materialized: nothing to decide on.")
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


@dg.asset(
    key=["ml", "challenger"],
    deps=[MODEL_EVALUATION],
    group_name="training",
    kinds={"mlflow"},
    description="The challenger alias: the supervised candidate of this evaluation, only if it passed every gate.",
    check_specs=[dg.AssetCheckSpec(name, asset=dg.AssetKey(["ml", "challenger"]), blocking=True) for name in GATES],
)
def challenger(context: dg.AssetExecutionContext, mlflow: MlflowResource):
    from clv_platform.ml import registry

    evaluation = _evaluation_metadata(context)
    mlflow.activate()
    candidate, gates = evaluation["candidate"], evaluation["gates"]
    passed = bool(candidate) and all(gate["passed"] for gate in gates.values())
    version = evaluation["versions"].get(candidate) if candidate else None
    if passed:
        registry.set_alias(mlflow.model_name, registry.CHALLENGER_ALIAS, version)
    else:
        registry.delete_alias(mlflow.model_name, registry.CHALLENGER_ALIAS)
    yield dg.MaterializeResult(
        metadata={
            "candidate": candidate or "none",
            "candidate_version": version or "",
            "challenger": passed,
            "reason": evaluation["no_candidate_reason"]
            or ("; ".join(g["why"] for g in gates.values() if not g["passed"]) or "passed every gate"),
        }
    )
    for name in GATES:
        if not candidate:
            # Nothing was proposed, so nothing is refused: the check records why.
            yield dg.AssetCheckResult(check_name=name, passed=True, metadata={"why": evaluation["no_candidate_reason"]})
        else:
            gate = gates[name]
            yield dg.AssetCheckResult(
                check_name=name,
                passed=gate["passed"],
                description=f"{candidate} v{version}: {gate['why']}",
                metadata={"why": gate["why"], "candidate": candidate, "version": version},
            )


@dg.asset(
    key=["ml", "clv_model"],
    deps=[MODEL_EVALUATION],
    group_name="training",
    kinds={"mlflow"},
    description="The model that scores (the champion alias): the challenger once it passed the gates, else the best baseline when it wins, else the champion stays.",
)
def clv_model(context: dg.AssetExecutionContext, mlflow: MlflowResource):
    from clv_platform.ml import registry

    evaluation = _evaluation_metadata(context)
    mlflow.activate()
    choice = evaluation["champion_decision"]
    if choice["action"] in ("promote", "baseline"):
        version = evaluation["versions"][choice["model"]]
        if choice["action"] == "promote":
            registry.set_alias(mlflow.model_name, registry.CHALLENGER_ALIAS, version)
        registry.set_alias(mlflow.model_name, registry.CHAMPION_ALIAS, version)
    champion = registry.champion_version(mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"No model carries the 'champion' alias on {mlflow.model_name!r} after the decision: {choice['reason']}")
    rung = champion.tags.get("rung", "")
    context.log.info(f"champion {rung} v{champion.version}: {choice['reason']}")
    return dg.MaterializeResult(
        metadata={
            "model_name": mlflow.model_name,
            "champion_version": str(champion.version),
            "champion_rung": rung,
            "action": choice["action"],
            "reason": choice["reason"],
            "baseline_serves": rung in ("heuristic", "linear", "btyd"),
            "evaluation_cutoff": evaluation["evaluation_cutoff"],
            # The champion's metrics on this evaluation cutoff: its own row when it was fitted in this run.
            **(
                evaluation["champion_metrics_before"]
                if choice["action"] == "keep"
                else {key: evaluation[f"{rung}_{key}"] for key in ("mae", "spearman", "normalized_gini", "fairness_ratio")}
            ),
        },
        data_version=dg.DataVersion(f"{mlflow.model_name}:{champion.version}"),
    )
