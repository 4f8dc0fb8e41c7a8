"""``model_promotion``: promote a registered version or roll back to the previous champion, from the UI.

The same move as ``clv-platform model promote|rollback`` (:func:`clv_platform.ml.lifecycle.move_champion`),
with typed config. The move is recorded in ``ml.champion_history`` and reported as a materialization of
``ml/champion`` (the alias is that asset), whose metadata lists the latest moves.
"""

from typing import Literal

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource

CHAMPION_KEY = dg.AssetKey(["ml", "champion"])


class PromotionConfig(dg.Config):
    """What to do with the champion or challenger alias or the rollout, and why."""

    action: Literal["promote", "rollback", "challenger", "rollout"] = Field(
        description="promote: point the champion alias at `version`; rollback: back to the previous champion; "
        "challenger: point the challenger alias at `version`; rollout: set `mode` (and `share`, `salt`)."
    )
    version: str = Field(default="", description="The registered version to promote or make the challenger.")
    mode: str = Field(default="", description="rollout only: none | shadow | canary | ab.")
    share: float | None = Field(default=None, description="rollout only: the challenger's share (default canary 0.05, ab 0.5).")
    salt: str = Field(default="", description="rollout only: salt of the arm assignment (empty = keep the current one).")
    reason: str = Field(description="Why it moves; recorded in ml.champion_history.")


def launched_by(tags: dict[str, str], run_id: str) -> str:
    """Who moved the alias: the run's user tag when the deployment sets one, else how the run was launched."""
    user = tags.get("dagster/user") or tags.get("user")
    if user:
        return user
    via = "Dagster UI" if tags.get("dagster/from_ui") == "true" else "Dagster"
    return f"{via} (run {run_id[:8]})"


@dg.op(out={}, description="Promote a version or roll back the champion alias; record who, how and why.")
def move_champion_alias(
    context: dg.OpExecutionContext, config: PromotionConfig, warehouse: DuckDBResource, mlflow: MlflowResource
):
    from clv_platform import settings
    from clv_platform.ml.lifecycle import LifecycleError, change_rollout, history_markdown, move_champion, set_challenger
    from clv_platform.ml.outcome import load_history
    from clv_platform.state_lock import StateBusy, hold_state_lock

    mlflow.activate()
    who = launched_by(dict(context.run.tags), context.run.run_id)
    try:
        # The warehouse takes one writer: a `clv-platform run` holding the state lock goes first.
        with hold_state_lock(settings.state_dir(), "model_promotion"), warehouse.get_connection() as con:
            if config.action == "rollout":
                _, record = change_rollout(
                    con,
                    mlflow.model_name,
                    mode=config.mode,
                    share=config.share,
                    salt=config.salt or None,
                    reason=config.reason,
                    who=who,
                )
            elif config.action == "challenger":
                record = set_challenger(con, mlflow.model_name, version=config.version, reason=config.reason, who=who)
            else:
                record = move_champion(
                    con, mlflow.model_name, config.action, version=config.version or None, reason=config.reason, who=who
                )
            history = load_history(con, mlflow.model_name)
    except (LifecycleError, StateBusy) as error:
        raise dg.Failure(description=str(error), metadata={"rule": config.action}) from None
    moved_to = record.action if record.how == "rollout" else f"v{record.champion_version}"
    context.log.info(f"{record.alias} {record.how}: v{record.from_version} -> {moved_to} by {who}: {record.reason}")
    if record.alias != "champion":
        return
    yield dg.AssetMaterialization(
        asset_key=CHAMPION_KEY,
        description=f"{record.how} by {who}: {record.reason}",
        metadata={
            "model_name": record.model_name,
            "champion_version": record.champion_version,
            "champion_rung": record.champion_rung,
            "from_version": record.from_version or "",
            "how": record.how,
            "who": who,
            "reason": record.reason,
            "history": dg.MetadataValue.md(history_markdown(history)),
        },
    )


@dg.job(
    description="Move an alias by hand: promote a version, roll back to the previous champion, name the challenger, "
    "or set the rollout (none, shadow, canary, ab)."
)
def model_promotion():
    move_champion_alias()
