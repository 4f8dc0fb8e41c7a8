"""ml/rollout_analysis on a real warehouse after `clv-platform run`: score rows with arms planted at past cutoffs.

The realized revenue is the warehouse's own: the training label of ``marts.training_examples`` at the same
cutoff. Predictions are planted around it, so which arm is better is known.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from tests.integration.serving_support import run_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, environment_for) -> str:
    home = tmp_path_factory.mktemp("rollout_analysis")
    run_pipeline(home, environment_for(home))
    return str(home / "warehouse.duckdb")


def _analyse(warehouse: str) -> dict:
    from clv_platform.defs.monitoring.rollout import rollout_analysis

    result = dg.materialize(
        [rollout_analysis],
        resources={"warehouse": DuckDBResource(database=warehouse)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _plant(warehouse: str, cutoff, frame: pd.DataFrame) -> None:
    """Replace the score rows of ``cutoff`` with ``frame`` (customer_id, predicted_clv, model_version, arm)."""
    with duckdb.connect(warehouse) as con:
        con.execute("alter table scoring.clv_scores add column if not exists arm varchar")
        con.execute("delete from scoring.clv_scores where cast(cutoff_date as date) = ?", [cutoff])
        rows = frame.assign(cutoff_date=pd.Timestamp(cutoff), model_name="clv_model")
        con.register("_planted", rows)
        con.execute(
            """insert into scoring.clv_scores by name
               select customer_id, cutoff_date, predicted_clv, model_name, model_version, arm from _planted"""
        )


def _labels(warehouse: str) -> pd.DataFrame:
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute("select customer_id, cutoff_date, future_revenue from marts.training_examples").df()


def _arms(customers: pd.Series, seed: int) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(len(customers)) < 0.5, "champion", "challenger")


def _planted_predictions(labels: pd.DataFrame, champion_noise: float, challenger_noise: float, challenger_factor=1.0):
    rng = np.random.default_rng(1)
    arms = _arms(labels["customer_id"], 2)
    noise = rng.normal(0.0, labels["future_revenue"].std(), len(labels))
    predicted = np.where(
        arms == "challenger",
        challenger_factor * labels["future_revenue"] + challenger_noise * noise,
        labels["future_revenue"] + champion_noise * noise,
    )
    return pd.DataFrame(
        {
            "customer_id": labels["customer_id"].to_numpy(),
            "predicted_clv": np.clip(predicted, 0.0, None),
            "model_version": np.where(arms == "challenger", "8", "7"),
            "arm": arms,
        }
    )


def test_realized_revenue_is_the_training_label_at_every_training_cutoff(warehouse):
    from clv_platform.ml import rollout_analysis as ra

    labels = _labels(warehouse)
    with duckdb.connect(warehouse) as con:
        state = ra.warehouse_state(con)
    assert state.cap_quantile is not None  # the default build caps order values: the cap is exercised
    for cutoff, at_cutoff in labels.groupby("cutoff_date"):
        assert state.elapsed(cutoff)
        _plant(warehouse, cutoff, at_cutoff.assign(predicted_clv=0.0, model_version="7", arm="champion"))
        with duckdb.connect(warehouse) as con:
            realized = ra.realized_revenue(con, cutoff, state.horizon_days, state.cap_quantile)
            con.execute("delete from scoring.clv_scores where cast(cutoff_date as date) = ?", [cutoff])
        expected = at_cutoff.sort_values("customer_id")
        assert realized["customer_id"].tolist() == expected["customer_id"].tolist()
        assert (realized["realized_revenue"].to_numpy() == expected["future_revenue"].to_numpy()).all(), cutoff
    with duckdb.connect(warehouse, read_only=True) as con:
        capped = con.execute("select sum(label_orders_capped) from intermediate.int_order_value_caps").fetchone()[0]
    assert capped > 0, "no label order was capped: the parity above did not test the cap"


def test_with_no_rollout_it_says_so_and_succeeds(warehouse):
    metadata = _analyse(warehouse)
    assert metadata["recommendation"] == "keep collecting"
    assert metadata["reason"].startswith("no rollout has scored a challenger arm yet")


def test_a_rollout_whose_window_has_not_elapsed_keeps_collecting_until_its_end(warehouse):
    from clv_platform.ml import rollout_analysis as ra

    with duckdb.connect(warehouse, read_only=True) as con:
        cutoff = con.execute("select max(cast(cutoff_date as date)) from scoring.clv_scores").fetchone()[0]
        scores = con.execute("select * from scoring.clv_scores where cast(cutoff_date as date) = ?", [cutoff]).df()
        state = ra.warehouse_state(con)
    assert not state.elapsed(cutoff)
    _plant(warehouse, cutoff, scores[["customer_id", "predicted_clv", "model_version"]].assign(arm=_arms(scores, 3)))

    metadata = _analyse(warehouse)
    window_end = (pd.Timestamp(cutoff) + pd.Timedelta(days=91)).date()
    assert metadata["recommendation"] == "keep collecting"
    assert metadata["window_end_date"] == str(window_end)
    assert f"runs to {window_end}" in metadata["reason"]
    with duckdb.connect(warehouse, read_only=True) as con:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
    assert "rollout_analyses" not in tables


@pytest.mark.parametrize(
    ("challenger_noise", "challenger_factor", "recommendation"),
    [(0.1, 1.0, "promote"), (1.5, 1.8, "rollback")],
    ids=["better", "worse"],
)
def test_an_elapsed_rollout_is_analysed_against_realized_revenue(warehouse, challenger_noise, challenger_factor, recommendation):
    labels = _labels(warehouse)
    cutoff = labels["cutoff_date"].max()  # the newest training cutoff: its window ends with the data
    at_cutoff = labels[labels["cutoff_date"] == cutoff].sort_values("customer_id").reset_index(drop=True)
    _plant(warehouse, cutoff, _planted_predictions(at_cutoff, 1.0, challenger_noise, challenger_factor))

    metadata = _analyse(warehouse)
    assert metadata["recommendation"] == recommendation, metadata["reason"]
    assert metadata["reason"].split(":")[1].strip().startswith("mae challenger")
    assert metadata["cutoff_date"] == str(pd.Timestamp(cutoff).date())
    assert metadata["model_versions"] == {"champion": "7", "challenger": "8"}
    assert metadata["rollouts_pending"] == 1  # the scoring cutoff's rollout, still in its window

    with duckdb.connect(warehouse, read_only=True) as con:
        stored = con.execute("select * from ml.rollout_analyses").df()
    assert len(stored) == 12  # 4 metrics x (champion, challenger, difference); a rerun replaces them
    assert set(stored["recommendation"]) == {recommendation}
    customers = stored[stored["metric"] == "mae"].set_index("arm")["customers"]
    assert customers["champion"] + customers["challenger"] == len(at_cutoff)
    mae = stored[stored["metric"] == "mae"].set_index("arm")
    arms = _planted_predictions(at_cutoff, 1.0, challenger_noise, challenger_factor)
    for arm in ("champion", "challenger"):
        mask = arms["arm"] == arm
        expected = np.abs(arms.loc[mask, "predicted_clv"] - at_cutoff.loc[mask, "future_revenue"]).mean()
        assert mae.loc[arm, "estimate"] == pytest.approx(expected, rel=1e-12)
        assert mae.loc[arm, "ci_low"] < mae.loc[arm, "estimate"] < mae.loc[arm, "ci_high"]
