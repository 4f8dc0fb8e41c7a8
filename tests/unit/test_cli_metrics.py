"""``clv-platform evaluate``'s saved files: metrics.csv opens in a spreadsheet without running anything."""

from __future__ import annotations

import csv

from clv_platform.cli import write_evaluation


def _metadata(models: list[str]) -> dict:
    """The metadata of ``ml/model_evaluation`` that ``write_evaluation`` reads (the metrics table as JSON records)."""
    table = [{"model": name, "mae": 513.7847, "bias": -0.2588, "disparate_impact": None} for name in models]
    return {
        "metrics_table": table,
        "champion_decision": {"reason": "no champion yet: btyd scores"},
        "evaluation_cutoff": "2011-09-09",
        "horizon_days": 91,
        "evaluation_rows": 3360,
        "train_cutoffs": ["2011-06-10"],
        "train_rows": 12466,
        "metrics": "| model |",
        "fairness": "| slice |",
        "actual_fairness_ratio": float("nan"),
    }


def test_metrics_csv_keeps_numbers_and_makes_formula_text_inert(tmp_path):
    write_evaluation(_metadata(["xgboost", "=cmd|' /C calc'!A0", "@SUM(A1)"]), tmp_path, source="sales.csv", seconds=1.0)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["model", "mae", "bias", "disparate_impact"]
    assert [row[0] for row in rows[1:]] == ["xgboost", "'=cmd|' /C calc'!A0", "'@SUM(A1)"]
    # A negative metric is written as the number it is; a missing one as an empty cell.
    assert {tuple(row[1:]) for row in rows[1:]} == {("513.7847", "-0.2588", "")}
    assert "Decision: no champion yet: btyd scores." in (tmp_path / "metrics.md").read_text()
