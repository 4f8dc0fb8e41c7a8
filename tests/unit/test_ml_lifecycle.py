"""Manual promotion and rollback: what "previous champion" means, what is refused, and the one history table."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from clv_platform.ml.gates import ChampionDecision
from clv_platform.ml.lifecycle import (
    LifecycleError,
    champion_stack,
    check_promotion,
    check_reason,
    history_markdown,
    history_rows,
    latest_manual_move,
    rollback_target,
)
from clv_platform.ml.outcome import (
    CHALLENGER,
    GATE_DECISION,
    MANUAL_PROMOTE,
    ROLLBACK,
    ChampionRecord,
    EvaluationOutcome,
    load_champion,
    load_history,
    save_champion,
)

MODEL = "clv_model"


def _move(to: str, frm: str | None, how: str = GATE_DECISION, at: str = "2026-01-01T00:00:00", who: str = "") -> ChampionRecord:
    action = {"gate decision": "promote", "manual promote": "promote", "rollback": "rollback"}[how]
    return ChampionRecord(at, None, MODEL, to, "xgboost", action, f"to {to}", False, {}, from_version=frm, who=who, how=how)


def test_rollback_goes_back_through_champions_never_back_and_forth():
    history = [_move("1", None), _move("2", "1"), _move("2", "2"), _move("4", "2", MANUAL_PROMOTE)]
    assert rollback_target(history, "4", MODEL) == "2"
    history.append(_move("2", "4", ROLLBACK))
    # The second rollback goes to the champion before 2, not back to 4 which was rolled back from.
    assert rollback_target(history, "2", MODEL) == "1"
    history.append(_move("1", "2", ROLLBACK))
    with pytest.raises(LifecycleError, match=r"no previous champion to roll back to: v1 is the first one"):
        rollback_target(history, "1", MODEL)


def test_a_kept_champion_is_not_a_previous_one():
    history = [_move("1", None), _move("1", "1"), _move("1", "1")]
    assert champion_stack(history, "1") == ["1"]
    with pytest.raises(LifecycleError, match="no previous champion"):
        rollback_target(history, "1", MODEL)


def test_an_alias_moved_outside_the_platform_counts_as_the_current_champion():
    history = [_move("1", None), _move("2", "1")]
    # Someone pointed the alias at 5 in MLflow's UI: rolling back returns to the last recorded champion.
    assert rollback_target(history, "5", MODEL) == "2"


def test_rollback_without_a_champion_is_refused():
    with pytest.raises(LifecycleError, match="has no champion to roll back"):
        rollback_target([], None, MODEL)


@pytest.mark.parametrize(
    ("version", "champion", "message"),
    [
        ("9", "1", r"has no version '9' \(registered versions: 1, 2, 10\)"),
        ("1", "1", "version 1 is already the champion"),
    ],
)
def test_promotion_of_a_missing_version_or_the_champion_is_refused(version, champion, message):
    with pytest.raises(LifecycleError, match=message):
        check_promotion({"1": "btyd", "2": "xgboost", "10": "linear"}, champion, version, MODEL)
    check_promotion({"1": "btyd", "2": "xgboost"}, champion, "2", MODEL)


def test_a_move_by_hand_needs_a_reason():
    with pytest.raises(LifecycleError, match="a reason is required"):
        check_reason("  ")
    assert check_reason(" bad\n week ") == "bad week"


def _outcome(before: str, promoted: str, evaluated_at: str = "2026-01-05T00:00:00") -> EvaluationOutcome:
    decision = ChampionDecision("promote", "xgboost", "xgboost passed every gate and is promoted", False)
    return EvaluationOutcome(
        "e1", evaluated_at, MODEL, {"xgboost": promoted}, "xgboost", "", None, decision, before, None, "2025-06-30", (),
        365, 0, 0, "d", "", "c", pd.DataFrame(), pd.DataFrame(), 1.0, True,
    )  # fmt: skip


def test_a_decision_is_stale_once_the_champion_was_moved_by_hand_after_it():
    outcome = _outcome(before="3", promoted="7")
    history = [
        _move("7", "3", GATE_DECISION, at="2026-01-05T00:01:00"),
        _move("3", "7", ROLLBACK, at="2026-01-06T09:00:00", who="ana"),
    ]
    by_hand = latest_manual_move(history, outcome.evaluated_at)
    assert by_hand is history[-1]
    # Without the history the rollback to v3 looks like the champion the decision was judged against.
    assert outcome.stale_reason("3") is None
    reason = outcome.stale_reason("3", by_hand)
    assert reason.startswith("the champion was set by hand after evaluation e1 (rollback to v3 by ana")
    # A manual move before the evaluation does not make it stale: the evaluation judged against it.
    later = _outcome(before="3", promoted="7", evaluated_at="2026-01-07T00:00:00")
    assert latest_manual_move(history, later.evaluated_at) is None


def test_the_history_keeps_gate_decisions_and_manual_moves_in_one_table():
    with duckdb.connect() as con:
        save_champion(con, _move("1", None, at="2026-01-01T00:00:00", who="ml/champion (run abc)"))
        save_champion(con, _move("2", "1", MANUAL_PROMOTE, at="2026-01-02T00:00:00", who="ana"))
        save_champion(con, _move("1", "2", ROLLBACK, at="2026-01-03T00:00:00", who="bo"))
        history = load_history(con, MODEL)
        assert [(r.from_version, r.champion_version, r.how, r.who) for r in history] == [
            (None, "1", GATE_DECISION, "ml/champion (run abc)"),
            ("1", "2", MANUAL_PROMOTE, "ana"),
            ("2", "1", ROLLBACK, "bo"),
        ]
        assert load_champion(con).how == ROLLBACK
        assert load_history(con, "other_model") == []
    rows = history_rows(history)
    assert [(r["from"], r["to"], r["how"]) for r in rows] == [
        ("v2", "v1", "rollback"),
        ("v1", "v2", "manual promote"),
        ("-", "v1", "gate decision"),
    ]
    table = history_markdown(history, limit=2)
    assert table.count("\n") == 3 and "| bo |" in table and "ml/champion" not in table


def test_an_older_history_table_gains_the_new_columns_and_keeps_its_rows():
    with duckdb.connect() as con:
        con.execute("create schema ml")
        # The table as ml/champion wrote it before moves by hand were recorded.
        con.execute(
            """create table ml.champion_history (applied_at timestamp not null, evaluation_id varchar not null,
               model_name varchar not null, champion_version varchar not null, champion_rung varchar not null,
               action varchar not null, reason varchar not null, baseline_serves boolean not null,
               mae double, spearman double, normalized_gini double, fairness_ratio double)"""
        )
        con.execute(
            "insert into ml.champion_history values ('2026-01-01', 'e0', ?, '1', 'btyd', 'baseline', 'r', true, 1, 1, 1, 1)",
            [MODEL],
        )
        save_champion(con, _move("2", "1", MANUAL_PROMOTE, at="2026-01-02T00:00:00", who="ana"))
        old, new = load_history(con, MODEL)
    assert (old.evaluation_id, old.how, old.from_version, old.metrics["mae"]) == ("e0", GATE_DECISION, None, 1.0)
    assert (new.evaluation_id, new.how, new.who) == (None, MANUAL_PROMOTE, "ana")
    assert rollback_target([old, new], "2", MODEL) == "1"


def test_the_promotion_job_names_who_launched_it():
    from clv_platform.defs.training.promotion import launched_by

    assert launched_by({"dagster/user": "ana@example.com"}, "0123456789") == "ana@example.com"
    assert launched_by({"dagster/from_ui": "true"}, "0123456789") == "Dagster UI (run 01234567)"
    assert launched_by({}, "0123456789") == "Dagster (run 01234567)"


def _challenger(to: str, frm: str | None, at: str, who: str = "ml/challenger (run abc)") -> ChampionRecord:
    action = "set" if to else "remove"
    return ChampionRecord(at, "e1", MODEL, to, "xgboost", action, "gates", False, {}, from_version=frm, who=who, alias=CHALLENGER)


def test_challenger_moves_share_the_history_but_are_no_champions():
    history = [
        _move("1", None, at="2026-01-01T00:00:00"),
        _challenger("2", None, at="2026-01-02T00:00:00"),
        _move("2", "1", at="2026-01-02T00:00:01"),
        _challenger("5", "2", at="2026-01-03T00:00:00"),
        _challenger("", "5", at="2026-01-04T00:00:00", who="ana"),
    ]
    # The challenger named 5 and was removed (by hand): neither is a champion to roll back to.
    assert champion_stack(history, "2") == ["1", "2"]
    assert rollback_target(history, "2", MODEL) == "1"
    # A challenger moved by hand after an evaluation does not make its champion decision stale.
    assert latest_manual_move(history, "2026-01-03T12:00:00") is None
    with duckdb.connect() as con:
        for record in history:
            save_champion(con, record)
        assert [r.alias for r in load_history(con, MODEL)] == ["champion", "challenger", "champion", "challenger", "challenger"]
        assert (load_champion(con).alias, load_champion(con).champion_version) == ("champion", "2")
    rows = history_rows(history)
    assert [(r["alias"], r["from"], r["to"], r["who"]) for r in rows[:2]] == [
        ("challenger", "v5", "- (removed)", "ana"),
        ("challenger", "v2", "v5", "ml/challenger (run abc)"),
    ]
    assert "| challenger | v5 | - (removed) |" in history_markdown(history)


def test_a_history_of_challenger_moves_alone_has_no_champion():
    with duckdb.connect() as con:
        save_champion(con, _challenger("3", None, at="2026-01-01T00:00:00"))
        with pytest.raises(LookupError, match="holds no move of the champion"):
            load_champion(con)
