"""The mean-shift gate as ``ml/model_evaluation`` computes it: the candidate against the champion in the registry.

A real evaluation of the ladder on a synthetic history long enough for a supervised candidate, against a
champion planted in the registry (the spend-rate heuristic, fitted on an earlier cutoff). The gate's numbers are
checked against both registered versions run again on the customers scoring would score.
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import numpy as np
import pytest
from dagster_duckdb import DuckDBResource

pytestmark = pytest.mark.integration

MODEL = "clv_model"


@pytest.fixture(scope="module")
def examples(clv_state):
    from clv_platform.ml import registry
    from clv_platform.ml.baselines import HeuristicModel
    from clv_platform.ml.synthetic import make_examples

    frame = make_examples(n_customers=400, seed=8)
    rng = np.random.default_rng(0)
    ids = frame["customer_id"].unique()
    country = dict(zip(ids, rng.choice(["UK", "DE", "FR"], size=len(ids)), strict=True))
    frame = frame.assign(country=frame["customer_id"].map(country), acquisition_channel="email")
    first = frame[frame["cutoff_date"] == frame["cutoff_date"].min()].reset_index(drop=True)
    champion = registry.log_estimator(
        HeuristicModel().fit(first),
        reference=registry.build_reference(first, HeuristicModel().fit(first).predict(first)),
        data_version="planted",
        code_version="test",
        model_name=MODEL,
    )
    registry.set_alias(MODEL, registry.CHAMPION_ALIAS, champion.version)
    with duckdb.connect(os.environ["CLV_WAREHOUSE_PATH"]) as con:
        for schema in ("marts", "raw"):
            con.execute(f"create schema if not exists {schema}")
        con.register("_examples", frame)
        con.execute("create table marts.training_examples as select * from _examples")
        # The raw tables the evaluation fingerprints, empty: the examples are written above.
        con.execute(
            "create table raw.transactions (invoice_no varchar, stock_code varchar, description varchar, quantity integer, "
            "invoice_date timestamp, unit_price double, customer_id varchar, country varchar)"
        )
        con.execute(
            "create table raw.behavioral_events (event_id varchar, session_id varchar, customer_id varchar, "
            "event_type varchar, event_timestamp timestamp)"
        )
    return frame


def test_the_evaluation_bounds_the_candidates_mean_shift_from_the_champion(examples):
    from clv_platform.defs.training.assets import model_evaluation
    from clv_platform.lib.resources import MlflowResource
    from clv_platform.ml import registry
    from clv_platform.ml.outcome import load_outcome
    from clv_platform.ml.scoring import active_customers

    result = dg.materialize(
        [model_evaluation],
        resources={
            "warehouse": DuckDBResource(database=os.environ["CLV_WAREHOUSE_PATH"]),
            "mlflow": MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    with duckdb.connect(os.environ["CLV_WAREHOUSE_PATH"], read_only=True) as con:
        outcome = load_outcome(con)
    assert outcome.candidate == "xgboost" and outcome.champion_version_before == "1"

    # The customers scoring would score: the evaluation cutoff's, active within 365 days.
    evaluation = examples[examples["cutoff_date"] == examples["cutoff_date"].max()]
    active = active_customers(evaluation, 365)
    assert 0 < len(active) < len(evaluation)
    means = {}
    for name, version in (("champion", "1"), ("candidate", outcome.versions["xgboost"])):
        predicted = registry.predict(registry.load_model_version(MODEL, version), active)["predicted_clv"]
        means[name] = float(np.clip(predicted.to_numpy(), 0.0, None).mean())
    assert outcome.champion_metrics_before["mean_prediction"] == pytest.approx(means["champion"], rel=1e-9)
    shift = means["candidate"] / means["champion"] - 1
    passed, why = outcome.gate_verdict.gates["mean_shift"]
    assert passed is (abs(shift) <= 0.15)
    assert why == (
        f"mean prediction {means['candidate']:.2f} against the champion's {means['champion']:.2f}: shift {shift:+.1%} "
        f"{'within' if passed else 'is beyond'} the bound of 15% either way"
    )
    metadata = result.asset_materializations_for_node(model_evaluation.op.name)[0].metadata
    assert metadata["gate_verdict"].value["mean_shift"] == {"passed": passed, "why": why}
    print(f"mean shift of the xgboost candidate from the heuristic champion: {shift:+.4f}")
