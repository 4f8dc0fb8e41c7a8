"""A champion decision applies only to the champion it was made against, whichever asset is materialized alone.

Real assets on a real warehouse and MLflow store: ``ml/model_evaluation`` fits the label-free rungs of a
short synthetic history (no supervised candidate, so the best baseline is the first champion), stores its
outcome, and ``ml/champion`` / ``ml/challenger`` apply it in runs of their own.
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import numpy as np
import pytest
from dagster_duckdb import DuckDBResource

from clv_platform.ml.synthetic import make_examples

pytestmark = pytest.mark.integration


def _examples():
    # 30 days apart with 90-day labels: too short for supervised training, so only the label-free baselines fit.
    examples = make_examples(n_customers=150, cutoffs=("2024-05-01", "2024-06-01", "2024-07-01"), seed=9)
    rng = np.random.default_rng(0)
    ids = examples["customer_id"].unique()
    country = dict(zip(ids, rng.choice(["UK", "DE", "FR"], size=len(ids)), strict=True))
    return examples.assign(country=examples["customer_id"].map(country), acquisition_channel="email")


@pytest.fixture(scope="module")
def warehouse(clv_state):
    path = os.environ["CLV_WAREHOUSE_PATH"]
    with duckdb.connect(path) as con:
        con.execute("create schema if not exists marts")
        con.execute("create schema if not exists raw")
        frame = _examples()
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
    return path


def _materialize(assets, warehouse, instance):
    from clv_platform.lib.resources import MlflowResource

    return dg.materialize(
        assets,
        resources={
            "warehouse": DuckDBResource(database=warehouse),
            "mlflow": MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]),
        },
        instance=instance,
        raise_on_error=False,
    )


def _failures(result) -> list[str]:
    from clv_platform.cli import step_error

    return [step_error(event)[0] for event in result.all_events if event.is_step_failure]


def _champion_version() -> str:
    from clv_platform.ml import registry

    return str(registry.champion_version("clv_model").version)


def test_an_old_decision_is_refused_once_the_champion_moved(warehouse):
    from clv_platform.defs.training.assets import challenger, champion, model_evaluation
    from clv_platform.ml import registry

    instance = dg.DagsterInstance.ephemeral()
    first = _materialize([model_evaluation, champion], warehouse, instance)
    assert first.success, _failures(first)
    (evaluated,) = first.asset_materializations_for_node(model_evaluation.op.name)
    versions = evaluated.metadata["versions"].value
    decision = evaluated.metadata["champion_decision"].value
    # No champion before and no supervised candidate: the best label-free baseline becomes champion.
    assert decision["action"] == "baseline" and set(versions) == {"heuristic", "btyd"}
    assert _champion_version() == versions[decision["model"]]

    # The champion moves (another evaluation, or a person in the MLflow UI) ...
    other = next(version for name, version in versions.items() if name != decision["model"])
    registry.set_alias("clv_model", registry.CHAMPION_ALIAS, other)
    # ... so the decision made against no champion must not be applied again, by either alias asset.
    for asset in (champion, challenger):
        again = _materialize([asset], warehouse, instance)
        assert not again.success
        (message,) = _failures(again)
        assert message.startswith("Refused to apply an old decision: evaluation "), message
        assert f"decided against champion no champion, but the champion is now v{other}" in message
        assert "\n" not in message
        assert _champion_version() == other

    # A new evaluation judges the champion that now holds the alias, and its decision applies; the decision
    # reaches the champion through the warehouse, so a run on an instance that never saw the evaluation applies it.
    second = _materialize([model_evaluation], warehouse, instance)
    assert second.success, _failures(second)
    (evaluated,) = second.asset_materializations_for_node(model_evaluation.op.name)
    assert evaluated.metadata["champion_version_before"].value == other
    applying = _materialize([champion], warehouse, dg.DagsterInstance.ephemeral())
    assert applying.success, _failures(applying)
    (applied,) = applying.asset_materializations_for_node(champion.op.name)
    assert applied.metadata["evaluation_id"].value == evaluated.metadata["evaluation_id"].value
    assert applied.metadata["champion_version"].value == _champion_version()
    with duckdb.connect(warehouse, read_only=True) as con:
        history = con.execute("select evaluation_id, champion_version from ml.champion_history order by applied_at").fetchall()
    assert [row[0] for row in history] == [
        first.asset_materializations_for_node(model_evaluation.op.name)[0].metadata["evaluation_id"].value,
        evaluated.metadata["evaluation_id"].value,
    ]
    assert history[-1][1] == _champion_version()
