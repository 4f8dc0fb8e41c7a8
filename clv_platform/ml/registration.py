"""Judge the current champion on a ladder's evaluation window, decide, and register every rung with its model card.

:func:`register_ladder` is what ``ml/model_evaluation`` runs after :func:`~clv_platform.ml.ladder.evaluate_ladder`:
it reads the registry, applies the pure gates of :mod:`clv_platform.ml.gates` and returns the
:class:`~clv_platform.ml.outcome.EvaluationOutcome`. It moves no alias: ``ml/challenger`` and
``ml/champion`` apply the outcome.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from clv_platform.ml.gates import MEAN_PREDICTION, GatePolicy, decide_challenger, decide_champion
from clv_platform.ml.ladder import LadderEvaluation
from clv_platform.ml.outcome import EvaluationOutcome


def ladder_figures(result: LadderEvaluation, candidate: str | None) -> dict[str, bytes]:
    """Lorenz curves of every model, decile calibration, and the feature importance of the candidate (or the linear rung)."""
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


def population_mean(result: LadderEvaluation, predictions, active_within_days: int) -> float:
    """Mean of ``predictions`` (row-aligned with ``result.evaluation``) over the customers scoring would score.

    Those are the evaluation cutoff's customers active within ``active_within_days``
    (:func:`~clv_platform.ml.scoring.active_customers`), with predictions clipped at 0 as scoring stores them;
    ``nan`` when nobody is active.
    """
    from clv_platform.ml.scoring import active_customers

    evaluation = result.evaluation.reset_index(drop=True)
    values = np.clip(np.asarray(predictions, dtype="float64"), 0.0, None)
    if len(values) != len(evaluation):
        raise ValueError(f"{len(values)} predictions for {len(evaluation)} evaluation rows: pass the predictions on them")
    active = active_customers(evaluation, active_within_days).index.to_numpy()
    return float(values[active].mean()) if active.size else float("nan")


def register_ladder(
    result: LadderEvaluation,
    *,
    model_name: str,
    experiment_name: str,
    policy: GatePolicy,
    data_version: str,
    code_version: str,
    input_partitions: str,
    fairness_relative_to_actual: bool,
    figures: dict[str, bytes] | None = None,
    active_within_days: int = 365,
) -> EvaluationOutcome:
    """Decide on ``result`` against the current champion and register every rung; return the outcome.

    The champion alias's version is judged on the same evaluation window before anything is registered;
    :func:`~clv_platform.ml.gates.decide_challenger` gives the gates' verdict on the candidate and
    :func:`~clv_platform.ml.gates.decide_champion` the champion decision. Every rung is then logged as a
    new version of ``model_name`` with its model card (carrying the verdict for the candidate), the drift
    reference and ``figures`` (default :func:`ladder_figures`).

    The mean-shift gate reads each model's mean prediction on the population being scored: the evaluation
    cutoff's customers active within ``active_within_days`` (:func:`population_mean`).
    """
    from clv_platform.ml import registry
    from clv_platform.ml.model_card import DataWindow, ModelCard

    champion = registry.champion_version(model_name)
    champion_metrics = None
    if champion is not None:
        champion_model = registry.load_model_version(model_name, champion.version)
        champion_pred = registry.predict(champion_model, result.evaluation)["predicted_clv"].to_numpy()
        champion_metrics = {
            **result.judge("champion", champion_pred),
            MEAN_PREDICTION: population_mean(result, champion_pred, active_within_days),
        }
    baselines = {name: result.gate_metrics(name) for name in result.baselines}
    gate_verdict = (
        decide_challenger(
            {
                **result.gate_metrics(result.candidate),
                MEAN_PREDICTION: population_mean(result, result.predictions[result.candidate], active_within_days),
            },
            champion_metrics,
            baselines,
            policy,
        )
        if result.candidate
        else None
    )
    champion_decision = decide_champion(
        result.candidate,
        gate_verdict,
        champion_metrics,
        baselines,
        policy=policy,
        champion_is_baseline=champion is not None and champion.tags.get("rung") in result.baselines,
        no_candidate_reason=result.no_candidate_reason or "no supervised candidate",
    )

    if figures is None:
        figures = ladder_figures(result, result.candidate)
    window = DataWindow(
        result.train_cutoffs, result.evaluation_cutoff, result.horizon_days, len(result.train), len(result.evaluation)
    )
    versions = {}
    for name, model in result.models.items():
        card = ModelCard(
            model_name=model_name,
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
            decision=gate_verdict.reasons if (name == result.candidate and gate_verdict) else [],
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
            model_name=model_name,
            experiment_name=experiment_name,
        )
        versions[name] = registered.version

    return EvaluationOutcome(
        evaluation_id=uuid.uuid4().hex,
        evaluated_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
        model_name=model_name,
        versions=versions,
        candidate=result.candidate,
        no_candidate_reason=result.no_candidate_reason or "",
        gate_verdict=gate_verdict,
        champion_decision=champion_decision,
        champion_version_before=str(champion.version) if champion is not None else None,
        champion_metrics_before=champion_metrics,
        evaluation_cutoff=result.evaluation_cutoff,
        train_cutoffs=tuple(result.train_cutoffs),
        horizon_days=int(result.horizon_days),
        train_rows=len(result.train),
        evaluation_rows=len(result.evaluation),
        data_version=data_version,
        input_partitions=input_partitions,
        code_version=code_version,
        metrics=result.metrics,
        fairness=result.slices.fairness,
        actual_fairness_ratio=float("nan") if result.actual_fairness_ratio is None else float(result.actual_fairness_ratio),
        fairness_relative_to_actual=fairness_relative_to_actual,
    )
