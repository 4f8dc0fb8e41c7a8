"""The modelling ladder, judged honestly, and the registry gates that decide which model scores.

- ``ml/model_evaluation``: every rung (heuristic, linear, BG/NBD + Gamma-Gamma, XGBoost, tuned XGBoost)
  fitted on earlier cutoffs and judged, with the current champion, on the evaluation cutoff; each logged
  and registered in MLflow with its model card; the gates' verdict and the champion decision computed once,
  here, and stored as an :class:`~clv_platform.ml.outcome.EvaluationOutcome` in ``ml.model_evaluations``.
- ``ml/challenger``: the supervised candidate gets the ``challenger`` alias only if it passes the gates.
  The gates are blocking asset checks: a refused candidate fails them, each saying why.
- ``ml/champion``: the model that scores, the ``champion`` alias. The challenger is promoted, unless the
  registry's rollout is staged (shadow, canary, ab): then it waits as challenger and a person promotes it.
  When there is none (history too short, or a baseline wins) the best baseline scores and the metadata says so.
  It does not depend on ``ml/challenger``, so a refused candidate never stops scoring with the champion.

Both read the latest stored outcome and refuse it when the champion alias has moved since that evaluation
judged it, or was moved by hand after it: a decision applies only to the champion it was made against.
``ml/champion`` records each decision in ``ml.champion_history``, the one history of the alias that manual
promotions and rollbacks (``clv-platform model``, the ``model_promotion`` job) write too.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource
from clv_platform.lib.warehouse import markdown_table
from clv_platform.ml.gates import GATES

MODEL_EVALUATION = dg.AssetKey(["ml", "model_evaluation"])
CHAMPION_KEY = dg.AssetKey(["ml", "champion"])


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
    max_mean_shift: float = Field(
        default=0.15,
        description="Bound on the relative shift of a challenger's mean prediction from the champion's, either way "
        "(0.15 = 15 %), on the customers active within active_within_days at the evaluation cutoff.",
    )
    active_within_days: int = Field(
        default=365,
        description="The population the mean-shift gate compares on, as scoring's: last purchase within this many days.",
    )

    def policy(self):
        from clv_platform.ml.gates import GatePolicy

        return GatePolicy(
            mae_margin=self.mae_margin,
            spearman_margin=self.spearman_margin,
            gini_margin=self.gini_margin,
            min_normalized_gini=self.min_normalized_gini,
            min_fairness_ratio=self.min_fairness_ratio,
            max_mean_shift=self.max_mean_shift,
        )


def _code_version() -> str:
    from clv_platform import lineage

    commit = lineage.git_commit()
    return lineage.code_version() + (f"@git:{commit[:12]}" if commit else "")


@dg.asset(
    key=MODEL_EVALUATION,
    deps=[dg.AssetKey(["marts", "training_examples"])],
    group_name="training",
    kinds={"xgboost", "mlflow"},
    description=(
        "Every rung of the ladder fitted on earlier cutoffs, judged with the champion on the evaluation cutoff, registered "
        "in MLflow with its model card; the decision stored in ml.model_evaluations."
    ),
)
def model_evaluation(context: dg.AssetExecutionContext, config: TrainConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    import pandas as pd

    from clv_platform import lineage
    from clv_platform.lib.fingerprint import input_fingerprint
    from clv_platform.ml import plots
    from clv_platform.ml.ladder import evaluate_ladder
    from clv_platform.ml.outcome import save_outcome
    from clv_platform.ml.registration import ladder_figures, register_ladder

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
    figures = ladder_figures(result, result.candidate)
    outcome = register_ladder(
        result,
        model_name=mlflow.model_name,
        experiment_name=mlflow.experiment_name,
        policy=config.policy(),
        data_version=lineage.data_version(examples),
        code_version=_code_version(),
        input_partitions=input_partitions,
        fairness_relative_to_actual=config.fairness_relative_to_actual,
        figures=figures,
        active_within_days=config.active_within_days,
    )
    with warehouse.get_connection() as con:
        save_outcome(con, outcome)
    decision = outcome.champion_decision
    context.log.info(f"champion decision: {decision.reason}")

    table, fairness = outcome.metrics_table(), outcome.fairness_table()
    verdict = outcome.gate_verdict
    return dg.MaterializeResult(
        metadata={
            "evaluation_id": outcome.evaluation_id,
            "model_name": mlflow.model_name,
            "versions": dg.MetadataValue.json(dict(outcome.versions)),
            "candidate": result.candidate or "",
            "no_candidate_reason": result.no_candidate_reason or "",
            "champion_version_before": outcome.champion_version_before or "",
            "champion_metrics_before": dg.MetadataValue.json(dict(outcome.champion_metrics_before or {})),
            "gate_verdict": dg.MetadataValue.json(
                {name: {"passed": ok, "why": why} for name, (ok, why) in (verdict.gates.items() if verdict else [])}
            ),
            "champion_decision": dg.MetadataValue.json(
                {
                    "action": decision.action,
                    "model": decision.model,
                    "reason": decision.reason,
                    "baseline_serves": decision.baseline_serves,
                }
            ),
            "evaluation_cutoff": result.evaluation_cutoff,
            "train_cutoffs": ", ".join(result.train_cutoffs) or "none",
            "horizon_days": result.horizon_days,
            "train_rows": len(result.train),
            "evaluation_rows": len(result.evaluation),
            "data_version": outcome.data_version,
            "input_partitions": input_partitions,
            "code_version": outcome.code_version,
            "metrics": dg.MetadataValue.md(markdown_table(table, floatfmt=".4f")),
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
        data_version=dg.DataVersion(f"{mlflow.model_name}:{','.join(outcome.versions.values())}"),
    )


def _current_outcome(warehouse: DuckDBResource, model_name: str):
    """The latest stored evaluation outcome, refused (one-line ``dg.Failure``) when the champion has moved since."""
    from clv_platform.ml import registry
    from clv_platform.ml.lifecycle import latest_manual_move
    from clv_platform.ml.outcome import load_history, load_outcome

    with warehouse.get_connection() as con:
        try:
            outcome = load_outcome(con)
        except LookupError as error:
            raise dg.Failure(f"Nothing to decide on: {error}.") from None
        by_hand = latest_manual_move(load_history(con, model_name), outcome.evaluated_at)
    champion = registry.champion_version(model_name)
    stale = outcome.stale_reason(str(champion.version) if champion is not None else None, by_hand)
    if stale is not None:
        raise dg.Failure(f"Refused to apply an old decision: {stale}.")
    return outcome


@dg.asset(
    key=["ml", "challenger"],
    deps=[MODEL_EVALUATION],
    group_name="training",
    kinds={"mlflow"},
    description="The challenger alias: the supervised candidate of this evaluation, only if it passed every gate.",
    check_specs=[dg.AssetCheckSpec(name, asset=dg.AssetKey(["ml", "challenger"]), blocking=True) for name in GATES],
)
def challenger(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    from clv_platform.ml.lifecycle import move_challenger

    mlflow.activate()
    outcome = _current_outcome(warehouse, mlflow.model_name)
    candidate, verdict = outcome.candidate, outcome.gate_verdict
    passed = verdict is not None and verdict.passed
    version = outcome.versions.get(candidate) if candidate else None
    reason = (
        outcome.no_candidate_reason
        or "; ".join(why for ok, why in (verdict.gates.values() if verdict else []) if not ok)
        or "passed every gate"
    )
    if candidate:
        why_moved = f"{candidate} v{version} passed every gate" if passed else f"{candidate} v{version} was refused: {reason}"
    else:
        why_moved = reason
    with warehouse.get_connection() as con:
        moved = move_challenger(
            con,
            mlflow.model_name,
            version if passed else None,
            reason=why_moved,
            who=f"ml/challenger (run {context.run.run_id[:8]})",
            evaluation_id=outcome.evaluation_id,
        )
    yield dg.MaterializeResult(
        metadata={
            "evaluation_id": outcome.evaluation_id,
            "candidate": candidate or "none",
            "candidate_version": version or "",
            "challenger": passed,
            "reason": reason,
            "alias_moved": moved is not None,
        }
    )
    for name in GATES:
        if verdict is None:
            # Nothing was proposed, so nothing is refused: the check records why.
            yield dg.AssetCheckResult(check_name=name, passed=True, metadata={"why": outcome.no_candidate_reason})
        else:
            # A decision stored before this gate existed was not judged by it.
            ok, why = verdict.gates.get(name, (True, "not judged: the evaluation predates this gate"))
            yield dg.AssetCheckResult(
                check_name=name,
                passed=ok,
                description=f"{candidate} v{version}: {why}",
                metadata={"why": why, "candidate": candidate, "version": version},
            )


@dg.asset(
    key=CHAMPION_KEY,
    deps=[MODEL_EVALUATION],
    group_name="training",
    kinds={"mlflow"},
    description=(
        "The model that scores (the champion alias): the challenger once it passed the gates (under a shadow, canary or "
        "A/B rollout it waits as challenger and the champion stays), else the best baseline "
        "when it wins, else the champion stays; refused when the champion moved since the evaluation that decided."
    ),
)
def champion(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    from dataclasses import replace
    from datetime import UTC, datetime

    from clv_platform.ml import registry
    from clv_platform.ml.ladder import BASELINES
    from clv_platform.ml.lifecycle import history_markdown, move_challenger, staged_decision
    from clv_platform.ml.outcome import GATE_DECISION, ChampionRecord, load_history, save_champion

    mlflow.activate()
    outcome = _current_outcome(warehouse, mlflow.model_name)
    before = registry.champion_version(mlflow.model_name)
    rollout = registry.get_rollout(mlflow.model_name)
    proposed = outcome.champion_decision
    candidate_version = outcome.versions.get(proposed.model)
    decision = staged_decision(proposed, rollout, str(before.version) if before is not None else None, candidate_version)
    outcome = replace(outcome, champion_decision=decision)
    applied_at = datetime.now(UTC).replace(tzinfo=None).isoformat()
    who = f"ml/champion (run {context.run.run_id[:8]})"
    staged = decision is not proposed
    if staged or decision.action == "promote":
        # A promoted candidate is challenger first; in a staged rollout it stays challenger, split or shadowed.
        version = candidate_version if staged else outcome.versions[decision.model]
        with warehouse.get_connection() as con:
            move_challenger(
                con,
                mlflow.model_name,
                version,
                reason=f"{proposed.model} v{version} passed every gate" + (f"; it waits: {rollout.describe()}" if staged else ""),
                who=who,
                evaluation_id=outcome.evaluation_id,
            )
    if decision.action in ("promote", "baseline"):
        registry.set_alias(mlflow.model_name, registry.CHAMPION_ALIAS, outcome.versions[decision.model])
    current = registry.champion_version(mlflow.model_name)
    if current is None:
        raise dg.Failure(f"No model carries the 'champion' alias on {mlflow.model_name!r} after the decision: {decision.reason}")
    rung = current.tags.get("rung", "")
    record = ChampionRecord(
        applied_at=applied_at,
        evaluation_id=outcome.evaluation_id,
        model_name=mlflow.model_name,
        champion_version=str(current.version),
        champion_rung=rung,
        action=decision.action,
        reason=decision.reason,
        baseline_serves=rung in BASELINES,
        # The champion's metrics on this evaluation cutoff: its own row when it was fitted in this evaluation.
        metrics=outcome.champion_metrics(),
        from_version=str(before.version) if before is not None else None,
        who=who,
        how=GATE_DECISION,
    )
    with warehouse.get_connection() as con:
        save_champion(con, record)
        history = load_history(con, mlflow.model_name)
    context.log.info(f"champion {rung} v{current.version}: {decision.reason}")
    return dg.MaterializeResult(
        metadata={
            "evaluation_id": outcome.evaluation_id,
            "model_name": mlflow.model_name,
            "champion_version": record.champion_version,
            "champion_rung": rung,
            "action": decision.action,
            "reason": decision.reason,
            "rollout": rollout.describe(),
            "challenger_version": str(candidate_version) if staged else "",
            "baseline_serves": record.baseline_serves,
            "evaluation_cutoff": outcome.evaluation_cutoff,
            **record.metrics,
            "history": dg.MetadataValue.md(history_markdown(history)),
        },
        data_version=dg.DataVersion(f"{mlflow.model_name}:{current.version}"),
    )
