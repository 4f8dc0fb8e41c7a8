"""Manual promotion and rollback of the ``champion`` alias, recorded in the one history of the alias.

The gates move the alias through ``ml/champion``; a person moves it here, from ``clv-platform model`` or
the ``model_promotion`` job. Every move lands in ``ml.champion_history`` (:func:`~clv_platform.ml.outcome.save_champion`)
with when, from which version, to which, who, why and how, so the history of the alias is one table.

"Previous champion" is read from that history as a stack: a gate decision or a manual promote pushes the
new champion, a rollback pops the current one. So two rollbacks in a row go back two champions, never
back and forth between the same two, and a version rolled back from is not returned to by the next
rollback. The pure parts (:func:`champion_stack`, :func:`check_promotion`, :func:`rollback_target`) take the
history and the registry's state as arguments; :func:`move_champion` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from clv_platform.ml.gates import ChampionDecision
from clv_platform.ml.outcome import (
    CHALLENGER,
    CHAMPION,
    GATE_DECISION,
    MANUAL_PROMOTE,
    ROLLBACK,
    ROLLOUT,
    ChampionRecord,
    load_history,
    save_champion,
)
from clv_platform.ml.rollout import Rollout, RolloutError, make_rollout

ACTIONS = ("promote", "rollback")


class LifecycleError(ValueError):
    """A promotion or rollback that cannot be done as asked (a user error)."""


def champion_stack(history: Iterable[ChampionRecord], champion_now: str | None) -> list[str]:
    """The champions that a run of rollbacks would go back through, oldest first, ``champion_now`` last.

    Kept champions (no move) are skipped; a rollback removes the version it left. When the alias was moved
    outside the platform (in MLflow directly), ``champion_now`` is pushed as the newest champion. Records of
    other aliases (the ``challenger``'s moves share the table) are no champions and are ignored.

    Examples
    --------
    >>> def move(to, how="gate decision", frm=None):
    ...     return ChampionRecord("2026-01-01T00:00:00", None, "m", to, "", "", "", False, {}, from_version=frm, how=how)
    >>> history = [move("1"), move("2", frm="1"), move("3", "manual promote", "2"), move("2", "rollback", "3")]
    >>> champion_stack(history, "2")
    ['1', '2']
    >>> champion_stack(history, "5")
    ['1', '2', '5']
    """
    stack: list[str] = []
    for record in history:
        if record.alias != CHAMPION:
            continue
        if not record.moved and stack:
            continue
        if record.how == ROLLBACK:
            if stack and stack[-1] == record.from_version:
                stack.pop()
            if not stack or stack[-1] != record.champion_version:
                stack.append(record.champion_version)
        elif not stack or stack[-1] != record.champion_version:
            stack.append(record.champion_version)
    if champion_now is not None and (not stack or stack[-1] != champion_now):
        stack.append(champion_now)
    return stack


def rollback_target(history: Sequence[ChampionRecord], champion_now: str | None, model_name: str) -> str:
    """The previous champion: the version a rollback moves the alias to; :class:`LifecycleError` if there is none."""
    if champion_now is None:
        raise LifecycleError(f"model {model_name!r} has no champion to roll back: nothing carries the 'champion' alias")
    stack = champion_stack(history, champion_now)
    if len(stack) < 2:
        raise LifecycleError(
            f"model {model_name!r} has no previous champion to roll back to: v{champion_now} is the first one in "
            "ml.champion_history; promote a version instead (clv-platform model promote --version N --reason TEXT)"
        )
    return stack[-2]


def check_promotion(versions: Mapping[str, str], champion_now: str | None, version: str, model_name: str) -> None:
    """Refuse (:class:`LifecycleError`) promoting a ``version`` that is not registered or already the champion.

    ``versions`` maps every registered version of ``model_name`` to its rung.
    """
    if version not in versions:
        known = ", ".join(sorted(versions, key=lambda v: (len(v), v))) or "none"
        raise LifecycleError(f"model {model_name!r} has no version {version!r} (registered versions: {known})")
    if version == champion_now:
        raise LifecycleError(f"model {model_name!r} version {version} is already the champion: nothing to promote")


def check_reason(reason: str) -> str:
    """The reason, stripped; :class:`LifecycleError` when it is empty (a move by hand must say why)."""
    if not reason or not reason.strip():
        raise LifecycleError("a reason is required: say why the champion moves (--reason TEXT)")
    return " ".join(reason.split())


def move_champion(con, model_name: str, action: str, *, version: str | None, reason: str, who: str) -> ChampionRecord:
    """Promote ``version``, or roll back to the previous champion; move the alias in MLflow and record the move.

    ``con`` is a writable warehouse connection (the history table). Returns the record written.
    """
    from clv_platform.ml import registry

    if action not in ACTIONS:
        raise LifecycleError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    reason = check_reason(reason)
    current = registry.champion_version(model_name)
    champion_now = str(current.version) if current is not None else None
    versions = registry.version_rungs(model_name)
    if action == "promote":
        if not version:
            raise LifecycleError("promote needs a version (--version N)")
        target = str(version).strip().removeprefix("v")
        check_promotion(versions, champion_now, target, model_name)
    else:
        if version:
            raise LifecycleError("rollback takes no version: it goes back to the previous champion (use promote for a version)")
        target = rollback_target(load_history(con, model_name), champion_now, model_name)
    registry.set_alias(model_name, registry.CHAMPION_ALIAS, target)
    from clv_platform.ml.ladder import BASELINES

    rung = versions.get(target, "")
    record = ChampionRecord(
        applied_at=_now(),
        evaluation_id=None,
        model_name=model_name,
        champion_version=target,
        champion_rung=rung,
        action=action,
        reason=reason,
        baseline_serves=rung in BASELINES,
        metrics={},
        from_version=champion_now,
        who=who,
        how=MANUAL_PROMOTE if action == "promote" else ROLLBACK,
    )
    save_champion(con, record)
    return record


def move_challenger(
    con,
    model_name: str,
    version: str | None,
    *,
    reason: str,
    who: str,
    how: str = GATE_DECISION,
    evaluation_id: str | None = None,
) -> ChampionRecord | None:
    """Point the ``challenger`` alias at ``version`` (``None``: remove it) and record the move in the alias history.

    The row has alias ``challenger``, ``from_version`` the version it left (``None`` when unset) and
    ``champion_version`` the version it names now (``""`` once removed). Nothing is recorded when the alias
    already is where it is asked to be: the history holds moves. Returns the record written, or ``None``.
    """
    from clv_platform.ml import registry

    current = registry.get_alias_version(model_name, registry.CHALLENGER_ALIAS)
    before = str(current.version) if current is not None else None
    target = str(version) if version is not None else None
    if before == target:
        return None
    if target is None:
        registry.delete_alias(model_name, registry.CHALLENGER_ALIAS)
        rung = ""
    else:
        registry.set_alias(model_name, registry.CHALLENGER_ALIAS, target)
        rung = registry.version_rungs(model_name).get(target, "")
    action = "set" if target is not None else "remove"
    return _record_challenger(con, model_name, target or "", rung, action, reason, before, who, how, evaluation_id)


def staged_decision(
    decision: ChampionDecision, rollout: Rollout, champion_before: str | None, candidate_version: str | None
) -> ChampionDecision:
    """The decision ``ml/champion`` applies: in a staged rollout (not ``none``) a passing candidate waits as challenger.

    Only a promotion waits, and only when there is a champion to keep; a person promotes the challenger later.

    >>> promote = ChampionDecision("promote", "xgboost", "xgboost passed every gate and is promoted", False)
    >>> staged_decision(promote, Rollout("none"), "3", "7") is promote
    True
    >>> staged_decision(promote, Rollout("canary", 0.05, "s"), "3", "7").action
    'keep'
    """
    if decision.action != "promote" or not rollout.stages or champion_before is None:
        return decision
    return ChampionDecision(
        "keep",
        "champion",
        f"{decision.reason}, but the rollout is {rollout.describe()}: v{candidate_version} waits as challenger and "
        f"champion v{champion_before} stays (promote by hand: clv-platform model promote --version {candidate_version})",
        decision.baseline_serves,
    )


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def set_challenger(con, model_name: str, *, version: str, reason: str, who: str) -> ChampionRecord:
    """Point the ``challenger`` alias at ``version`` by hand and record it (alias ``challenger``) in the history.

    Refused (:class:`LifecycleError`) for a version that is not registered or is the champion: a challenger
    equal to the champion compares nothing.
    """
    from clv_platform.ml import registry

    reason = check_reason(reason)
    target = str(version or "").strip().removeprefix("v")
    if not target:
        raise LifecycleError("challenger needs a version (--version N)")
    versions = registry.version_rungs(model_name)
    champion_now = registry.serving_state(model_name)[0]
    if target not in versions:
        check_promotion(versions, champion_now, target, model_name)
    if target == champion_now:
        raise LifecycleError(f"model {model_name!r} version {target} is the champion: a challenger must be another version")
    record = move_challenger(con, model_name, target, reason=reason, who=who, how=MANUAL_PROMOTE)
    if record is None:
        raise LifecycleError(f"model {model_name!r} version {target} already is the challenger")
    return record


def change_rollout(
    con, model_name: str, *, mode: str, share: float | str | None, salt: str | None, reason: str, who: str
) -> tuple[Rollout, ChampionRecord]:
    """Set the rollout (tags of the registered model) and record the change (how ``rollout``) in the history.

    The record's version is the challenger the rollout applies to (empty when there is none); its action
    says the rollout. Refused (:class:`LifecycleError`) for an unknown mode, a share outside (0, 1), or a
    model that is not registered.
    """
    from clv_platform.ml import registry

    try:
        make_rollout(mode, share, salt or "-")  # the request's own errors first, before the registry is read
    except RolloutError as error:
        raise LifecycleError(str(error)) from None
    reason = check_reason(reason)
    versions = registry.version_rungs(model_name)
    if not versions:
        raise LifecycleError(f"model {model_name!r} has no registered version: run `clv-platform run` first")
    _, challenger_now, current = registry.serving_state(model_name)
    rollout = make_rollout(mode, share, salt, current)
    registry.set_rollout(model_name, rollout)
    version = challenger_now or ""
    record = _record_challenger(
        con, model_name, version, versions.get(version, ""), rollout.describe(), reason, challenger_now, who, ROLLOUT
    )
    return rollout, record


def _record_challenger(
    con, model_name, version, rung, action, reason, from_version, who, how, evaluation_id=None
) -> ChampionRecord:
    """Write a move of the challenger alias or a change of the rollout to the history (alias ``challenger``)."""
    from clv_platform.ml.ladder import BASELINES

    record = ChampionRecord(
        applied_at=_now(),
        evaluation_id=evaluation_id,
        model_name=model_name,
        champion_version=version,
        champion_rung=rung,
        action=action,
        reason=reason,
        baseline_serves=rung in BASELINES,
        metrics={},
        from_version=from_version,
        who=who,
        how=how,
        alias=CHALLENGER,
    )
    save_champion(con, record)
    return record


def latest_manual_move(history: Sequence[ChampionRecord], since: str) -> ChampionRecord | None:
    """The latest move of the champion by hand after ``since`` (an ISO time, naive UTC like ``applied_at``), or ``None``."""
    after = [
        r
        for r in history
        if r.alias == CHAMPION and r.how != GATE_DECISION and datetime.fromisoformat(r.applied_at) > datetime.fromisoformat(since)
    ]
    return after[-1] if after else None


HISTORY_COLUMNS = ("applied_at", "alias", "from", "to", "rung", "who", "how", "reason")


def history_rows(history: Sequence[ChampionRecord], limit: int | None = None) -> list[dict[str, str]]:
    """The history newest first, as rows of :data:`HISTORY_COLUMNS` for a terminal or a markdown table."""
    newest = list(reversed(history))[:limit] if limit else list(reversed(history))
    return [
        {
            "applied_at": r.applied_at,
            "alias": r.alias,
            "from": f"v{r.from_version}" if r.from_version else "-",
            "to": r.action if r.how == ROLLOUT else (f"v{r.champion_version}" if r.champion_version else "- (removed)"),
            "rung": r.champion_rung,
            "who": r.who or "-",
            "how": r.how if r.moved or r.how == ROLLOUT else f"{r.how} (kept)",
            "reason": r.reason,
        }
        for r in newest
    ]


def history_markdown(history: Sequence[ChampionRecord], limit: int = 20) -> str:
    """The latest ``limit`` moves as a markdown table (newest first), for the UI."""
    rows = history_rows(history, limit)
    lines = ["| " + " | ".join(HISTORY_COLUMNS) + " |", "|" + "---|" * len(HISTORY_COLUMNS)]
    lines += ["| " + " | ".join(row[c].replace("|", "/") for c in HISTORY_COLUMNS) + " |" for row in rows]
    return "\n".join(lines)
