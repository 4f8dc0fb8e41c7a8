"""`clv-platform evaluate` on a log it has never seen, with a column mapping as its only input.

A CSV of only customer, date and amount (orders of generated customers, 2024-2025): features, every model
fitted on cutoffs whose label windows end by the evaluation cutoff, the metrics table printed and saved.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def _evaluate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLV_HOME": str(tmp_path / "user_state")}
    cli = Path(sys.executable).parent / "clv-platform"
    return subprocess.run([str(cli), "evaluate", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)


def test_a_customer_date_amount_log_gets_every_models_metrics(tmp_path, write_amount_log):
    write_amount_log(tmp_path / "sales.csv")
    done = _evaluate(
        tmp_path,
        "--file",
        "sales.csv",
        "--mapping",
        "customer_id=cust,invoice_date=day,amount=total",
        "--cutoff",
        "2025-09-01",
        "--horizon",
        "91",
        "--out",
        "report",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    table = pd.read_csv(tmp_path / "report" / "metrics.csv")
    assert table["model"].tolist() == ["heuristic", "linear", "btyd", "xgboost"]
    for column in ("rmse", "mae", "spearman", "normalized_gini", "top10_capture", "bias"):
        assert table[column].map(math.isfinite).all(), column
    # No country or channel in the log: one slice, so no disparate-impact ratio (and no refusal for it).
    assert table["fairness_ratio"].isna().all()
    assert (table["mae"] > 0).all() and (table["normalized_gini"] > 0).all()  # every model ranks better than chance
    report = (tmp_path / "report" / "metrics.md").read_text()
    # 9 cutoffs: the evaluation one, 91 days before it (its labels end exactly there), then 30 days apart.
    assert "Evaluation cutoff 2025-09-01, horizon 91 days" in report
    assert (
        "trained on cutoffs 2024-11-04, 2024-12-04, 2025-01-03, 2025-02-02, 2025-03-04, 2025-04-03, 2025-05-03, 2025-06-02 ("
    ) in report
    assert "| xgboost |" in report and "Decision: " in report and "fairness_floor" not in report
    assert "| xgboost |" in done.stdout
    # Its own state under the output folder; the user's state is not touched.
    assert (tmp_path / "report" / "state" / "warehouse.duckdb").exists()
    assert not (tmp_path / "user_state").exists()


def test_a_horizon_past_the_end_of_the_log_is_refused_in_one_line(tmp_path, write_amount_log):
    write_amount_log(tmp_path / "sales.csv")
    done = _evaluate(
        tmp_path,
        "--file",
        "sales.csv",
        "--mapping",
        "customer_id=cust,invoice_date=day,amount=total",
        "--cutoff",
        "2025-11-01",
        "--horizon",
        "91",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: the log ends on 2025-12-3")
    assert "needs days through 2026-01-30" in done.stderr


def test_a_bad_mapping_is_refused_in_one_line(tmp_path):
    (tmp_path / "sales.csv").write_text("cust,day,total\n1,2025-01-01,5\n")
    done = _evaluate(tmp_path, "--file", "sales.csv", "--mapping", "customer_id", "--cutoff", "2025-09-01")
    assert done.returncode == 2 and "--mapping must be canonical=column pairs" in done.stderr


def test_a_mapping_without_a_required_field_is_refused_in_one_line(tmp_path):
    (tmp_path / "sales.csv").write_text("cust,day,total\n1,2025-01-01,5\n")
    done = _evaluate(tmp_path, "--file", "sales.csv", "--mapping", "customer_id=cust", "--cutoff", "2025-09-01")
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "sales.csv" in line and "the column mapping names no source column for" in line
    assert "invoice_date" in line and "(rule: required_column)" in line
