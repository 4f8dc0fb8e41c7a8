"""``clv-platform evaluate``'s saved files and the run summary, read from the stored evaluation outcome."""

from __future__ import annotations

import csv

import duckdb
import pandas as pd

from clv_platform.cli import write_evaluation
from clv_platform.ml.gates import ChampionDecision
from clv_platform.ml.outcome import EvaluationOutcome, load_outcome, save_outcome


def _outcome(models: list[str]) -> EvaluationOutcome:
    """An outcome as ``ml/model_evaluation`` stores it: a metrics table with a missing value."""
    metrics = pd.DataFrame(
        {"mae": 513.7847, "bias": -0.2588, "disparate_impact": float("nan")}, index=pd.Index(models, name=None)
    )
    return EvaluationOutcome(
        evaluation_id="e1",
        evaluated_at="2026-01-05T04:00:00",
        model_name="clv_model",
        versions={name: str(i + 1) for i, name in enumerate(models)},
        candidate=None,
        no_candidate_reason="history too short",
        gate_verdict=None,
        champion_decision=ChampionDecision("baseline", models[0], "no champion yet: btyd scores", True),
        champion_version_before=None,
        champion_metrics_before=None,
        evaluation_cutoff="2011-09-09",
        train_cutoffs=("2011-06-10",),
        horizon_days=91,
        train_rows=12466,
        evaluation_rows=3360,
        data_version="d",
        input_partitions="",
        code_version="c",
        metrics=metrics,
        fairness=pd.DataFrame({"disparate_impact": [0.9] * len(models)}, index=models),
        actual_fairness_ratio=float("nan"),
        fairness_relative_to_actual=True,
    )


def test_metrics_csv_keeps_numbers_and_makes_formula_text_inert(tmp_path):
    write_evaluation(_outcome(["xgboost", "=cmd|' /C calc'!A0", "@SUM(A1)"]), tmp_path, source="sales.csv", seconds=1.0)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["model", "mae", "bias", "disparate_impact"]
    assert [row[0] for row in rows[1:]] == ["xgboost", "'=cmd|' /C calc'!A0", "'@SUM(A1)"]
    # A negative metric is written as the number it is; a missing one as an empty cell.
    assert {tuple(row[1:]) for row in rows[1:]} == {("513.7847", "-0.2588", "")}
    text = (tmp_path / "metrics.md").read_text()
    assert "Decision: no champion yet: btyd scores." in text
    assert "trained on cutoffs 2011-06-10 (12,466 customer-cutoff rows)" in text


def test_the_report_is_the_same_from_the_stored_outcome(tmp_path):
    """What ``evaluate`` writes comes from ``ml.model_evaluations``: the stored outcome gives the same files."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    original = _outcome(["btyd", "heuristic"])
    save_outcome(con, original)
    stored = load_outcome(con, "e1")
    write_evaluation(original, tmp_path / "direct", source="s", seconds=1.0)
    write_evaluation(stored, tmp_path / "stored", source="s", seconds=1.0)
    for name in ("metrics.csv", "metrics.md"):
        assert (tmp_path / "stored" / name).read_text() == (tmp_path / "direct" / name).read_text()
    pd.testing.assert_frame_equal(stored.metrics, original.metrics)
