"""``clv-platform evaluate``'s saved files and the run summary, read from the stored evaluation outcome."""

from __future__ import annotations

import csv
import dataclasses
from datetime import date

import duckdb
import pandas as pd
import pytest

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


def test_the_report_says_so_when_no_supervised_model_trained(tmp_path):
    reason = "history too short for supervised training (no training cutoff before the evaluation cutoff ...)"
    outcome = dataclasses.replace(_outcome(["heuristic", "btyd"]), train_cutoffs=(), train_rows=3360, no_candidate_reason=reason)
    write_evaluation(outcome, tmp_path, source="sales.csv", seconds=1.0, excluded="history_start 2011-01-01 excluded 5 rows")
    text = (tmp_path / "metrics.md").read_text()
    assert "customer-cutoff rows" not in text and "cutoffs none" not in text
    assert (
        "3,360 customers; no supervised model trained: no training cutoff's 91-day label window ends by the evaluation "
        "cutoff 2011-09-09 (the history is too short); the heuristic and BTYD are fitted on the evaluation cutoff's "
        "features. 1 s. The history_start 2011-01-01 excluded 5 rows."
    ) in text


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


@pytest.mark.parametrize("trained", [True, False])
def test_the_run_summary_reads_the_warehouse(tmp_path, monkeypatch, trained):
    """Every line of the summary comes from a table the run wrote: no Dagster instance is consulted."""
    from clv_platform import settings
    from clv_platform.cli import _summary
    from clv_platform.ml import batches
    from clv_platform.ml.outcome import ChampionRecord, save_champion

    monkeypatch.setenv(settings.STATE_DIR_ENV, str(tmp_path))
    # The warehouse the resources write, wherever the environment points it.
    monkeypatch.setenv("CLV_WAREHOUSE_PATH", str(tmp_path / "elsewhere.duckdb"))
    with duckdb.connect(str(tmp_path / "elsewhere.duckdb")) as con:
        for schema in ("raw", "marts", "scoring"):
            con.execute(f"create schema {schema}")
        for table, rows in (
            ("raw.transactions", 7),
            ("raw.behavioral_events", 5),
            ("raw.customers", 3),
            ("marts.customer_features", 3),
            ("marts.training_examples", 9),
            ("scoring.clv_explanations", 3),
        ):
            con.execute(f"create table {table} as select range as id from range({rows})")
        con.execute(
            "create table scoring.clv_scores as select * from "
            "(values ('a', 10.0), ('b', 20.0), ('c', 70.0)) t(customer_id, predicted_clv)"
        )
        con.execute(
            "create table scoring.value_tiers as select date '2025-06-30' as cutoff_date, * from "
            "(values ('Low', 10.0), ('Medium', 20.0), ('High', 70.0)) t(value_tier, predicted_clv)"
        )
        outcome = _outcome(["btyd", "heuristic"])
        save_outcome(con, outcome if trained else dataclasses.replace(outcome, train_cutoffs=(), train_rows=3360))
        con.execute(
            "create table raw.transactions_quarantine as select * from "
            "(values ('timestamp_in_history'), ('timestamp_in_history'), ('customer_id_present')) t(rule)"
        )
        metrics = {"mae": 101.234, "spearman": 0.41, "normalized_gini": 0.5567, "fairness_ratio": 0.9}
        save_champion(
            con, ChampionRecord("2026-01-05T04:01:00", "e1", "clv_model", "3", "btyd", "baseline", "btyd scores", True, metrics)
        )
        batches.append(
            con,
            batches.EXPLANATION_BATCHES_TABLE,
            batches.ExplanationBatch("2025-06-30", "2026-01-05T04:02:00", "clv_model", "3", "btyd", "none", 3, 3, 0.01),
        )
        batches.append(
            con,
            batches.DRIFT_REPORTS_TABLE,
            batches.DriftReport("2025-06-30", "2026-01-05T04:03:00", "3", 365, 0.0421, '["recency"]', 0.25, "/r/drift.html"),
        )
    lines = _summary("run-1", 12.34, history_start=date(2011, 1, 1) if trained else None).splitlines()
    assert lines[0] == "clv_full_pipeline succeeded in 12.3 s (run run-1)"
    assert "  raw.transactions                            7 rows" in lines
    assert "  raw.transactions_quarantine                 3 rows" in lines  # the quarantined rows are counted
    assert "  High    tier:      1 customers, predicted value             70" in lines
    excluded = "  history_start 2011-01-01 excluded 2 rows dated before it (quarantined, rule timestamp_in_history)"
    assert (excluded in lines) == trained  # said only when the spec sets one
    if trained:
        assert "  models on the evaluation cutoff 2011-09-09 (trained on 2011-06-10):" in lines
    else:
        assert (
            "  models on the evaluation cutoff 2011-09-09 (no supervised model trained: no training cutoff's 91-day "
            "label window ends by the evaluation cutoff 2011-09-09 (the history is too short); the heuristic and BTYD "
            "are fitted on the evaluation cutoff's features):"
        ) in lines
    assert "  champion: clv_model v3 (btyd, a baseline): MAE 101.23, Spearman 0.410, normalized Gini 0.557" in lines
    assert "  decision: btyd scores" in lines
    assert "  explanations (scoring.clv_explanations): none, the btyd model has no per-feature contributions" in lines
    assert "  drift: prediction PSI 0.042, drifted columns: recency" in lines
    assert "  drift report: /r/drift.html" in lines
