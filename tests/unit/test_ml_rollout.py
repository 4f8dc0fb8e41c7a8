"""The rollout: arm assignment identical everywhere, shares as asked, the staged decision, and history per alias."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.gates import ChampionDecision
from clv_platform.ml.lifecycle import champion_stack, latest_manual_move, staged_decision
from clv_platform.ml.outcome import (
    CHALLENGER,
    GATE_DECISION,
    MANUAL_PROMOTE,
    ROLLOUT,
    ChampionRecord,
    load_champion,
    save_champion,
)
from clv_platform.ml.rollout import Rollout, RolloutError, assign_arms, make_rollout

IDS = [str(12346 + i) for i in range(100_000)]


def test_arms_are_the_same_across_calls_and_processes():
    rollout = Rollout("ab", 0.5, "salt-1")
    here = assign_arms(IDS[:5000], rollout).tolist()
    assert here == assign_arms(IDS[:5000], rollout).tolist()
    # Another interpreter (another API worker, the batch job): a fresh hash seed, the same arms.
    code = (
        "import json, sys; from clv_platform.ml.rollout import Rollout, assign_arms; "
        "ids = json.load(sys.stdin); print(json.dumps(assign_arms(ids, Rollout('ab', 0.5, 'salt-1')).tolist()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(IDS[:5000]), capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout) == here
    # An id's arm does not depend on who else is assigned with it, nor on its type (the warehouse's text id).
    assert assign_arms(IDS[4999:5000], rollout).tolist() == here[4999:]
    assert assign_arms([int(IDS[0])], rollout).tolist() == here[:1]


@pytest.mark.parametrize("mode,share", [("canary", 0.05), ("ab", 0.5), ("canary", 0.2)])
def test_the_challenger_share_is_as_asked_within_binomial_noise(mode, share):
    arms = assign_arms(IDS, Rollout(mode, share, "s"))
    observed = float(np.mean(arms == "challenger"))
    sigma = math.sqrt(share * (1 - share) / len(IDS))
    assert abs(observed - share) < 4 * sigma, (observed, share)
    assert set(arms) == {"champion", "challenger"}


def test_a_new_salt_draws_a_new_split_and_a_wider_share_keeps_the_first():
    first = assign_arms(IDS, Rollout("ab", 0.5, "a")) == "challenger"
    other = assign_arms(IDS, Rollout("ab", 0.5, "b")) == "challenger"
    # Independent draws agree on about half the customers, never on all.
    assert 0.48 < float(np.mean(first == other)) < 0.52
    canary = assign_arms(IDS, Rollout("canary", 0.05, "a")) == "challenger"
    assert canary.sum() > 0 and not (canary & ~first).any()  # the 5 % are inside the 50 % of the same salt


@pytest.mark.parametrize("rollout", [Rollout(), Rollout("shadow", 0.0, "s")])
def test_none_and_shadow_serve_everyone_with_the_champion(rollout):
    assert set(assign_arms(IDS[:1000], rollout)) == {"champion"}
    assert not rollout.splits


@pytest.mark.parametrize(
    "mode,share,message",
    [
        ("canary", 0.0, "rollout share must be strictly between 0 and 1 in mode 'canary', got 0.0"),
        ("ab", 1.0, "rollout share must be strictly between 0 and 1 in mode 'ab', got 1.0"),
        ("canary", -0.1, "strictly between 0 and 1"),
        ("canary", "lots", "rollout share must be a number, got 'lots'"),
        ("canary", float("nan"), "rollout share must be a number"),
        ("blue-green", None, "rollout mode must be one of none, shadow, canary, ab, got 'blue-green'"),
        ("shadow", 0.3, "rollout mode 'shadow' serves no customer with the challenger: give no share"),
    ],
)
def test_a_bad_rollout_is_one_clear_line(mode, share, message):
    with pytest.raises(RolloutError) as error:
        make_rollout(mode, share, "s")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_defaults_and_salt_kept_across_changes():
    current = make_rollout("canary", salt="keep-me")
    assert (current.share, current.salt) == (0.05, "keep-me")
    widened = make_rollout("ab", current=current)
    assert (widened.mode, widened.share, widened.salt) == ("ab", 0.5, "keep-me")
    assert Rollout.from_tags(widened.to_tags()) == widened
    assert Rollout.from_tags({}) == Rollout()
    assert make_rollout("canary").salt != make_rollout("canary").salt  # a fresh salt when none is set


def test_a_staged_rollout_keeps_the_champion_and_says_why():
    promote = ChampionDecision("promote", "xgboost", "xgboost passed every gate and is promoted", False)
    assert staged_decision(promote, Rollout(), "3", "7") is promote
    assert staged_decision(promote, Rollout("canary", 0.05, "s"), None, "7") is promote  # nothing to keep
    kept = staged_decision(promote, Rollout("shadow"), "3", "7")
    assert (kept.action, kept.model) == ("keep", "champion")
    assert "the rollout is shadow" in kept.reason and "v7 waits as challenger" in kept.reason and "v3 stays" in kept.reason
    baseline = ChampionDecision("baseline", "btyd", "no candidate", True)
    assert staged_decision(baseline, Rollout("ab", 0.5, "s"), "3", None) is baseline


def _record(at, to, frm, how=GATE_DECISION, alias="champion") -> ChampionRecord:
    return ChampionRecord(
        at, None, "m", to, "xgboost", "promote", "r", False, {}, from_version=frm, who="ana", how=how, alias=alias
    )


def test_challenger_and_rollout_rows_never_count_as_champion_moves():
    history = [
        _record("2026-01-01T00:00:00", "1", None),
        _record("2026-01-02T00:00:00", "2", "1"),
        _record("2026-01-03T00:00:00", "5", None, MANUAL_PROMOTE, CHALLENGER),
        _record("2026-01-04T00:00:00", "5", "5", ROLLOUT, CHALLENGER),
    ]
    assert champion_stack(history, "2") == ["1", "2"]
    assert latest_manual_move(history, "2026-01-02T12:00:00") is None
    con = duckdb.connect()
    for record in history:
        save_champion(con, record)
    assert load_champion(con).champion_version == "2"


def test_score_arms_scores_each_row_with_its_arms_model():
    from clv_platform.ml.scoring import SCORE_COLUMNS, score_arms

    class Fixed:
        def __init__(self, value):
            self.value = value

        def predict(self, frame):
            return pd.DataFrame({"predicted_clv": np.full(len(frame), self.value), "probability_alive": 0.5})

    from clv_platform.ml.features import FEATURE_COLUMNS

    features = pd.DataFrame({column: np.arange(6, dtype="float64") + 1 for column in FEATURE_COLUMNS})
    features["recency"] = 1.0
    features.insert(0, "customer_id", [f"c{i}" for i in range(6)])
    features.insert(1, "cutoff_date", pd.Timestamp("2025-06-30"))
    arms = np.array(["champion", "challenger", "champion", "champion", "challenger", "champion"], dtype=object)
    scores = score_arms({"champion": (Fixed(1.0), "3"), "challenger": (Fixed(9.0), "7")}, features, arms, "clv_model")
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert scores["customer_id"].tolist() == features["customer_id"].tolist()
    assert scores["arm"].tolist() == arms.tolist()
    assert scores["model_version"].tolist() == ["3", "7", "3", "3", "7", "3"]
    assert scores["predicted_clv"].tolist() == [1.0, 9.0, 1.0, 1.0, 9.0, 1.0]
    with pytest.raises(ValueError, match="no model for the arm"):
        score_arms({"champion": (Fixed(1.0), "3")}, features, arms, "clv_model")


def test_a_score_batch_table_of_an_older_release_gains_the_rollout_fields():
    from clv_platform.ml import batches

    con = duckdb.connect()
    con.execute("create schema scoring")
    con.execute(
        "create table scoring.score_batches (cutoff_date date, scored_at timestamp, active_within_days bigint, "
        "model_name varchar, model_version varchar, model_rung varchar, customers_scored bigint)"
    )
    con.execute(
        "insert into scoring.score_batches values ('2025-03-31', '2025-04-01 04:00:00', 365, 'clv_model', '2', 'btyd', 90)"
    )
    old = batches.latest(con, batches.SCORE_BATCHES_TABLE, batches.ScoreBatch)
    assert (old.model_version, old.rollout_mode, old.challenger_version) == ("2", "none", "")
    batch = batches.ScoreBatch(
        "2025-06-30", "2025-07-01T04:00:00", 365, "clv_model", "3", "xgboost", 100, "canary", 0.05, "s", "7", 6
    )
    batches.append(con, batches.SCORE_BATCHES_TABLE, batch)
    assert batches.latest(con, batches.SCORE_BATCHES_TABLE, batches.ScoreBatch) == batch
