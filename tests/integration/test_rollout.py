"""The staged lifecycle as users run it: `clv-platform model rollout|challenger`, a re-evaluation, scoring with arms, the API.

One materialized state (a real `clv-platform run`) for the module; the tests run in order on it: refused
rollouts change nothing; then a challenger named by hand and a canary rollout, an evaluation whose candidate
passed the gates but waits as challenger, and scoring split by arm; then a running
`clv-platform serve` answering each customer's arm and version, and following the rollout back to `none`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving_support import CLI, Server, raw_payload, registry_client, request, run_pipeline

pytestmark = pytest.mark.integration

MODEL = "clv_model"
DAGSTER = str(Path(sys.executable).parent / "dagster")
SHARE, SALT = 0.3, "rollout-test"
CHAIN = "ml/champion,scoring/clv_scores,scoring/value_tiers,scoring/clv_explanations," + ("serving/online_features")


@pytest.fixture(scope="module")
def home(tmp_path_factory, environment_for) -> Path:
    home = tmp_path_factory.mktemp("rollout")
    run_pipeline(home, environment_for(home))
    return home


@pytest.fixture(scope="module")
def env(home, environment_for) -> dict:
    return environment_for(home)


def _model(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "model", *args], env=env, capture_output=True, text=True, timeout=600)


def _one_line_error(done: subprocess.CompletedProcess, fragment: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (done.returncode, done.stderr[-3000:])
    assert fragment in lines[0], lines[0]


def _registered(home: Path):
    client = registry_client(home)
    return client, client.get_registered_model(MODEL)


def _query(home: Path, sql: str, params=()):
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_a_bad_rollout_or_challenger_is_one_line_and_changes_nothing(home, env):
    _, before = _registered(home)
    champion = str(before.aliases["champion"])
    _one_line_error(_model(env, "rollout", "--mode", "canary", "--share", "1.5", "--reason", "x"), "strictly between 0 and 1")
    _one_line_error(_model(env, "rollout", "--mode", "canary", "--share", "lots", "--reason", "x"), "must be a number")
    _one_line_error(_model(env, "rollout", "--mode", "blue-green", "--reason", "x"), "rollout mode must be one of none, shadow")
    _one_line_error(_model(env, "rollout", "--mode", "canary", "--reason", " "), "a reason is required")
    _one_line_error(_model(env, "challenger", "--version", champion, "--reason", "x"), "is the champion")
    _one_line_error(_model(env, "challenger", "--version", "999", "--reason", "x"), "has no version '999'")
    _, after = _registered(home)
    assert (after.tags, after.aliases) == (before.tags, before.aliases)
    assert not any(tag.startswith("rollout.") for tag in after.tags)


def _stage_a_passing_outcome(home: Path, candidate: str, champion: str) -> str:
    """Store the outcome ml/model_evaluation writes when its candidate passes every gate: a promotion of ``candidate``.

    The run's own candidate does not beat the baselines on the suite's small dataset, and the gates' margins
    cannot be negative; the stored evaluation is otherwise the run's, judged against the champion now.
    """
    from dataclasses import replace
    from datetime import UTC, datetime

    import duckdb

    from clv_platform.ml.gates import ChampionDecision
    from clv_platform.ml.outcome import load_outcome, save_outcome

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        outcome = load_outcome(con)
        rung = next(name for name, version in outcome.versions.items() if version == candidate)
        passing = replace(
            outcome,
            evaluation_id=f"{outcome.evaluation_id}-passing",
            evaluated_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
            candidate=rung,
            champion_decision=ChampionDecision("promote", rung, f"{rung} passed every gate and is promoted", False),
            champion_version_before=champion,
        )
        save_outcome(con, passing)
    return rung


def test_canary_keeps_the_champion_and_scores_the_challenger_arm_with_the_challenger(home, env):
    from clv_platform.ml.rollout import Rollout, assign_arms

    client, registered = _registered(home)
    champion = str(registered.aliases["champion"])
    versions = {str(v.version): v.tags.get("rung") for v in client.search_model_versions(f"name='{MODEL}'")}
    others = sorted((v for v in versions if v != champion), key=lambda v: (versions[v] != "xgboost", -int(v)))
    candidate = others[0]
    done = _model(env, "challenger", "--version", candidate, "--reason", "named by hand")
    assert done.returncode == 0, done.stderr
    done = _model(env, "rollout", "--mode", "canary", "--share", str(SHARE), "--salt", SALT, "--reason", "try the new model")
    assert done.returncode == 0, done.stderr
    assert f"canary: challenger share {SHARE:g} (salt {SALT}), challenger v{candidate}" in done.stdout
    _stage_a_passing_outcome(home, candidate, champion)

    materialized = subprocess.run(
        [DAGSTER, "asset", "materialize", "--select", CHAIN, "-m", "clv_platform.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert materialized.returncode == 0, materialized.stdout[-3000:] + materialized.stderr[-3000:]

    _, registered = _registered(home)
    assert (str(registered.aliases["champion"]), str(registered.aliases["challenger"])) == (champion, candidate)
    history = _query(
        home, "select alias, how, champion_version, from_version, reason from ml.champion_history order by applied_at"
    )
    # The alias already named the candidate, so the staged decision moved nothing and wrote no challenger row.
    by_hand, rollout_row, champion_row = history.tail(3).to_dict("records")
    assert (by_hand["alias"], by_hand["how"], by_hand["champion_version"], by_hand["reason"]) == (
        "challenger",
        "manual promote",
        candidate,
        "named by hand",
    )
    assert (rollout_row["alias"], rollout_row["how"], rollout_row["champion_version"]) == ("challenger", "rollout", candidate)
    assert (champion_row["alias"], champion_row["champion_version"], champion_row["from_version"]) == (
        "champion",
        champion,
        champion,
    )
    assert f"v{candidate} waits as challenger" in champion_row["reason"] and "canary" in champion_row["reason"]
    baseline = champion

    scores = _query(
        home, "select * from scoring.clv_scores where cutoff_date = (select max(cutoff_date) from scoring.clv_scores)"
    )
    arms = assign_arms(scores["customer_id"], Rollout("canary", SHARE, SALT))
    assert scores["arm"].tolist() == arms.tolist()
    assert set(scores.loc[scores["arm"] == "challenger", "model_version"]) == {candidate}
    assert set(scores.loc[scores["arm"] == "champion", "model_version"]) == {baseline}
    assert 0 < (arms == "challenger").sum() < len(arms)
    # Each arm's rows are that version's predictions on the customer's features.
    from clv_platform.ml import registry

    features = _query(home, "select * from marts.customer_features").set_index("customer_id").loc[scores["customer_id"]]
    for version in (baseline, candidate):
        model = client_model(home, version)
        mine = (scores["model_version"] == version).to_numpy()
        expected = registry.predict(model, features.reset_index()[mine])["predicted_clv"].clip(lower=0).to_numpy()
        assert scores.loc[mine, "predicted_clv"].to_numpy() == pytest.approx(expected, abs=1e-9, rel=0)

    batch = _query(home, "select * from scoring.score_batches order by scored_at desc limit 1").iloc[0]
    assert (batch["rollout_mode"], batch["rollout_share"], batch["rollout_salt"], batch["challenger_version"]) == (
        "canary",
        SHARE,
        SALT,
        candidate,
    )
    assert batch["model_version"] == baseline and batch["challenger_customers"] == int((arms == "challenger").sum())
    # The steps after scoring follow each row's version.
    tiers = _query(
        home,
        "select customer_id, model_version, arm from scoring.value_tiers where cutoff_date = ?",
        [scores["cutoff_date"].iloc[0]],
    )
    explained = _query(
        home,
        "select customer_id, model_version from scoring.clv_explanations where cutoff_date = ?",
        [scores["cutoff_date"].iloc[0]],
    )
    by_customer = scores.set_index("customer_id")
    for frame in (tiers, explained):
        assert (
            frame.set_index("customer_id")["model_version"] == by_customer.loc[frame["customer_id"], "model_version"].to_numpy()
        ).all()
    manifest = json.loads((home / "online" / "manifest.json").read_text())
    assert (manifest["champion_version"], manifest["challenger_version"], manifest["rollout"]["mode"]) == (
        baseline,
        candidate,
        "canary",
    )


def client_model(home: Path, version: str):
    """The pyfunc of ``version`` from this state's store, read by its artifact location (no global MLflow setting)."""
    import mlflow.pyfunc

    client, _ = _registered(home)
    return mlflow.pyfunc.load_model(client.get_model_version_download_uri(MODEL, version))


def _wait_rollout(server: Server, mode: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(f"{server.url}/v1/model", timeout=30)
        if status == 200 and body["rollout"]["mode"] == mode:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"the API still says {body} {timeout} s after the rollout moved to {mode}")
        time.sleep(0.2)


def test_the_api_answers_each_customers_arm_and_follows_the_rollout(home, env):
    _, registered = _registered(home)
    champion, challenger = str(registered.aliases["champion"]), str(registered.aliases["challenger"])
    scores = _query(
        home, "select * from scoring.clv_scores where cutoff_date = (select max(cutoff_date) from scoring.clv_scores)"
    )
    cutoff = str(scores["cutoff_date"].iloc[0])[:10]
    server = Server(home, env, poll_seconds=0.5)
    try:
        health = server.wait_healthy()
        assert (health["model_version"], health["challenger_version"], health["rollout"], health["share"]) == (
            champion,
            challenger,
            "canary",
            SHARE,
        )
        model = _wait_rollout(server, "canary")
        assert model["rollout"] | {"challenger_rung": None} == {
            "mode": "canary",
            "share": SHARE,
            "salt": SALT,
            "champion_version": champion,
            "challenger_version": challenger,
            "challenger_rung": None,
        }
        for row in scores.itertuples():
            status, body = request(f"{server.url}/v1/customers/{row.customer_id}")
            assert status == 200, body
            assert (body["arm"], body["model_version"], body["predicted_clv"]) == (row.arm, row.model_version, row.predicted_clv)
        picked = {arm: scores.loc[scores["arm"] == arm].iloc[0] for arm in ("champion", "challenger")}
        for arm, row in picked.items():
            status, body = request(f"{server.url}/v1/score", raw_payload(home / "warehouse.duckdb", row["customer_id"], cutoff))
            assert status == 200, body
            assert (body["arm"], body["model_version"]) == (arm, row["model_version"])
            assert body["predicted_clv"] == pytest.approx(row["predicted_clv"], abs=1e-6, rel=1e-9)
        # The champion's customer was also scored by the challenger, in the log only.
        shadow = [line for line in server.log.read_text().splitlines() if "clv_platform.serving.shadow" in line]
        assert any(
            f'"customer_id": "{picked["champion"]["customer_id"]}"' in line and f'"challenger_version": "{challenger}"' in line
            for line in shadow
        ), shadow

        done = _model(env, "rollout", "--mode", "none", "--reason", "the canary is over")
        assert done.returncode == 0, done.stderr
        _wait_rollout(server, "none")
        row = picked["challenger"]
        status, body = request(f"{server.url}/v1/score", raw_payload(home / "warehouse.duckdb", row["customer_id"], cutoff))
        assert (status, body["arm"], body["model_version"]) == (200, "champion", champion), body
    finally:
        server.stop()
    rollouts = _query(home, "select action, reason from ml.champion_history where how = 'rollout' order by applied_at")
    assert rollouts["action"].tolist() == [f"canary: challenger share {SHARE:g} (salt {SALT})", "none"]
    listed = _model(env, "history", "--limit", "1").stdout
    assert "| challenger |" in listed and "| rollout |" in listed and "the canary is over" in listed, listed


def test_the_promotion_job_sets_the_rollout_from_dagster_config(home, env, tmp_path):
    from clv_platform.settings import PROJECT_ROOT

    def job(config: str) -> subprocess.CompletedProcess:
        path = tmp_path / "rollout.yaml"
        path.write_text(f"ops:\n  move_champion_alias:\n    config: {config}\n")
        return subprocess.run(
            [DAGSTER, "job", "execute", "-j", "model_promotion", "-c", str(path), "-m", "clv_platform.definitions"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )

    refused = job("{action: rollout, mode: ab, share: 2.0, reason: from the UI}")
    assert refused.returncode != 0 and "strictly between 0 and 1" in refused.stdout + refused.stderr
    done = job("{action: rollout, mode: ab, reason: from the UI}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, registered = _registered(home)
    assert (registered.tags["rollout.mode"], registered.tags["rollout.share"], registered.tags["rollout.salt"]) == (
        "ab",
        "0.5",
        SALT,  # the salt is kept: each customer keeps their arm as the share widens
    )
    last = _query(home, "select alias, how, who, reason from ml.champion_history order by applied_at").iloc[-1]
    assert (last["alias"], last["how"], last["reason"]) == ("challenger", "rollout", "from the UI")
    assert last["who"].startswith("Dagster (run ")
