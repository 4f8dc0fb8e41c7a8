"""What the API serves, without the web layer: the live snapshot and model, and scoring posted lines.

:class:`Served` is immutable: the poller builds a new one beside the live one and swaps one reference,
so a request sees one snapshot and one model version from start to end.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml import online
from clv_platform.ml.rollout import CHALLENGER_ARM, CHAMPION_ARM, Rollout, assign_arms

log = logging.getLogger("clv_platform.serving")
# One line per POST that a challenger also scored in shadow: what it would have answered, never returned.
shadow_log = logging.getLogger("clv_platform.serving.shadow")

TOP_DRIVERS = 3


class RequestRuleError(ValueError):
    """Posted rows that break a row rule: the field path, and one line as ingestion words it."""

    def __init__(self, loc: list, message: str, rule: str):
        super().__init__(message)
        self.loc, self.message, self.rule = loc, message, rule


@dataclass(frozen=True)
class Served:
    """One snapshot, the champion version and (when one distinct is set) the challenger version, loaded together.

    ``rollout`` is the registry's: POST assigns arms by it. GET answers the arm and version the snapshot stores.
    """

    snapshot: online.Snapshot
    model_name: str
    model_version: str
    model_rung: str
    model: Any = field(repr=False)
    by_customer: dict[str, dict] = field(repr=False)
    raw_customers: pd.DataFrame = field(repr=False)
    features: online.FeatureBuilder = field(repr=False)
    rollout: Rollout = field(default_factory=Rollout)
    challenger_version: str | None = None
    challenger_rung: str = ""
    challenger: Any = field(default=None, repr=False)

    @property
    def cutoff_date(self) -> str:
        return self.snapshot.manifest["cutoff_date"]

    def arm_of(self, customer_id: str) -> str:
        """The customer's arm: the registry's rollout when it splits and a challenger is loaded, else the champion."""
        if self.challenger is None or not self.rollout.splits:
            return CHAMPION_ARM
        return str(assign_arms([customer_id], self.rollout)[0])

    def arm_model(self, arm: str) -> tuple[Any, str, str]:
        """The loaded model, version and rung of ``arm``."""
        if arm == CHALLENGER_ARM:
            return self.challenger, str(self.challenger_version), self.challenger_rung
        return self.model, self.model_version, self.model_rung


def _drivers(row: dict) -> list[dict]:
    drivers = []
    for i in range(1, TOP_DRIVERS + 1):
        name = row.get(f"driver_{i}")
        if isinstance(name, str) and name:
            drivers.append({"feature": name, "contribution": float(row[f"driver_{i}_contribution"])})
    return drivers


def _segment(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def customer_answers(snapshot: online.Snapshot) -> dict[str, dict]:
    """The GET answer of every customer in the snapshot, built once per load."""
    table = snapshot.tables["customers"]
    rungs = snapshot.manifest.get("model_rungs") or {}
    answers = {}
    for row in table.to_dict("records"):
        version = str(row["model_version"])
        arm = row.get("arm")
        answers[str(row["customer_id"])] = {
            "customer_id": str(row["customer_id"]),
            "cutoff_date": str(row["cutoff_date"])[:10],
            "predicted_clv": float(row["predicted_clv"]),
            "probability_alive": float(row["probability_alive"]),
            "value_tier": str(row["value_tier"]),
            "segment": _segment(row["segment"]),
            "top_drivers": _drivers(row),
            "drivers": None if pd.isna(row.get("drivers")) else str(row["drivers"]),
            "model_name": str(row["model_name"]),
            "model_version": version,
            "model_rung": rungs.get(version) or snapshot.manifest.get("model_rung", ""),
            "arm": arm if isinstance(arm, str) and arm else CHAMPION_ARM,
            "snapshot_id": snapshot.id,
        }
    return answers


def load_served(
    state_dir: Path,
    manifest: dict,
    model_name: str,
    model_version: str,
    challenger_version: str | None = None,
    rollout: Rollout | None = None,
    reuse: Served | None = None,
) -> Served:
    """Load the snapshot ``manifest`` names, ``model_version`` of ``model_name`` and the challenger version if any.

    What ``reuse`` (the served state) already holds is not loaded again: its snapshot when it is the same
    one, and a model version it already has loaded.
    """
    from clv_platform.ml import registry

    loaded = {}
    if reuse is not None:
        loaded = {reuse.model_version: (reuse.model, reuse.model_rung)}
        if reuse.challenger is not None:
            loaded[str(reuse.challenger_version)] = (reuse.challenger, reuse.challenger_rung)

    def model_of(version: str) -> tuple[Any, str]:
        if version not in loaded:
            model = registry.load_model_version(model_name, version)
            loaded[version] = (model, registry.estimator_of(model).name)
        return loaded[version]

    if reuse is not None and reuse.snapshot.id == manifest["snapshot_id"]:
        snapshot, answers, raw, builder = reuse.snapshot, reuse.by_customer, reuse.raw_customers, reuse.features
    else:
        snapshot = online.load_snapshot(state_dir, manifest)
        answers, raw, builder = customer_answers(snapshot), snapshot.tables["raw_customers"], feature_builder(snapshot)
    model, rung = model_of(str(model_version))
    challenger, challenger_rung = model_of(str(challenger_version)) if challenger_version else (None, "")
    return Served(
        snapshot,
        model_name,
        str(model_version),
        rung,
        model,
        answers,
        raw,
        builder,
        rollout or Rollout(),
        str(challenger_version) if challenger_version else None,
        challenger_rung,
        challenger,
    )


def feature_builder(snapshot: online.Snapshot) -> online.FeatureBuilder:
    """The online feature build of ``snapshot``: its compiled SQL and the batch's population tables."""
    tables = snapshot.tables
    return online.FeatureBuilder(
        snapshot.sql,
        {name: tables[name] for name in online.POPULATION_MODELS},
        {column: tables[column] for column in online.POPULATION_COLUMNS},
    )


# --- POST /v1/score -------------------------------------------------------------------------


def _rule_error(validated, kind: str, fields: dict[str, str]) -> RequestRuleError:
    from clv_platform.ingest.validate import describe_quarantined

    first = validated.quarantine.iloc[0]
    column = first["column_name"]
    index = int(first["source_row"]) - 1
    loc = ["body", kind, index] + ([fields.get(column, column)] if isinstance(column, str) else [])
    return RequestRuleError(loc, describe_quarantined(first), str(first["rule"]))


def validated_rows(
    kind: str, rows: list[dict], customer_id: str, now: datetime, cutoff: pd.Timestamp, ingestion=None
) -> pd.DataFrame:
    """Posted lines or events checked by ingestion's own row rules, as ``raw.<table>`` rows; the first broken rule raises.

    Every value goes in as text, as a file's would, so the ingestion parsers judge it. A row dated on or
    after the snapshot's cutoff is refused too: the features describe the customer as of that cutoff.
    """
    from clv_platform.ingest.readers import SourceFrame
    from clv_platform.ingest.spec import IngestionSpec, PiiSpec, SourceSpec
    from clv_platform.ingest.validate import EVENTS, TRANSACTIONS, validate

    contract = TRANSACTIONS if kind == "lines" else EVENTS
    if not rows and kind in _NO_ROWS:
        # No rows break no rule: the typed empty frame validation gave once (most bodies post no events).
        return _NO_ROWS[kind].copy()
    spec = ingestion or IngestionSpec()
    frame = pd.DataFrame(
        [
            {
                **{k: None if v is None else (repr(v) if isinstance(v, float) else str(v)) for k, v in row.items()},
                "customer_id": customer_id,
            }
            for row in rows
        ],
        columns=[*contract.fields],
    )
    source = SourceFrame(name=f"request body {kind}", frame=frame, rows=np.arange(1, len(frame) + 1))
    # The source spec's limits and history start; ids arrive as the warehouse stores them, so no PII transform.
    validated = validate([source], contract, SourceSpec(), spec.limits, PiiSpec(), None, now, spec.first_day)
    if validated.rows_quarantined:
        raise _rule_error(validated, kind, {})
    accepted = validated.accepted
    late = accepted[contract.timestamp] >= cutoff
    if late.any():
        index = int(np.flatnonzero(late.to_numpy())[0])
        message = (
            f"request body {kind}: row {index + 1}: column '{contract.timestamp}': {accepted[contract.timestamp].iloc[index]} "
            f"is not before the snapshot's cutoff {cutoff.date()} (rule: before_cutoff)"
        )
        raise RequestRuleError(["body", kind, index, contract.timestamp], message, "before_cutoff")
    if not rows:
        _NO_ROWS[kind] = accepted.copy()
    return accepted


# The accepted frame of an empty list of rows, by kind: its columns and dtypes depend only on the contract.
_NO_ROWS: dict[str, pd.DataFrame] = {}


def score_posted(
    served: Served,
    customer_id: str,
    lines: list[dict],
    events: list[dict],
    customer: dict | None,
    now: datetime,
    ingestion=None,
) -> dict:
    """The features and score of one customer from posted lines (and events), by the live snapshot and model.

    ``ingestion`` is the source spec (an ``IngestionSpec``) whose row limits and history start judge the rows.
    """
    from clv_platform.ml import scoring
    from clv_platform.ml.explain import explain_customers
    from clv_platform.ml.registry import estimator_of, predict

    cutoff = pd.Timestamp(served.cutoff_date)
    transactions = validated_rows("lines", lines, customer_id, now, cutoff, ingestion)
    web = validated_rows("events", events, customer_id, now, cutoff, ingestion)
    known = served.raw_customers[served.raw_customers["customer_id"] == customer_id]
    if len(known) or customer is None:
        attributes = known
    else:
        attributes = pd.DataFrame(
            [{"customer_id": customer_id, **customer, "signup_date": pd.Timestamp(customer["signup_date"])}],
            columns=served.raw_customers.columns,
        ).astype(served.raw_customers.dtypes.to_dict())
    tables = served.snapshot.tables
    features = served.features.build(
        {"raw.transactions": transactions, "raw.behavioral_events": web, "raw.customers": attributes}
    )
    if features.empty:
        raise RequestRuleError(
            ["body", "lines"],
            f"request body lines: customer {customer_id} has no purchase before the cutoff {cutoff.date()} (rule: has_purchase)",
            "has_purchase",
        )
    arm = served.arm_of(customer_id)
    model, version, rung = served.arm_model(arm)
    output = predict(model, features)
    scores = scoring.score_customers(model, features, served.model_name, version, predictions=output, arm=arm)
    if served.challenger is not None and arm == CHAMPION_ARM:
        _log_shadow(served, customer_id, features, float(scores["predicted_clv"].iloc[0]))
    alive = float(output["probability_alive"].iloc[0])
    value = float(scores["predicted_clv"].iloc[0])
    snapshot_rows = tables["customers"]
    labels = scoring.TIER_LABELS
    cut_points = [float(snapshot_rows[f"{scoring._column_stem(label)}_cut_point"].iloc[0]) for label in labels[1:]]
    drivers = explain_customers(estimator_of(model), features, k=TOP_DRIVERS).iloc[0].to_dict()
    batch = served.by_customer.get(customer_id)
    feature_values = {
        c: (None if pd.isna(v) else (v.isoformat()[:10] if isinstance(v, pd.Timestamp | datetime) else v))
        for c, v in features.iloc[0].items()
        if c not in ("customer_id",)
    }
    return {
        "customer_id": customer_id,
        "cutoff_date": served.cutoff_date,
        "predicted_clv": value,
        "probability_alive": alive,
        "value_tier": str(scoring.tiers_at([value], cut_points, labels)[0]),
        "segment": batch["segment"] if batch else None,
        "top_drivers": _drivers(drivers),
        "drivers": None if pd.isna(drivers.get("drivers")) else str(drivers["drivers"]),
        "model_name": served.model_name,
        "model_version": version,
        "model_rung": rung,
        "arm": arm,
        "snapshot_id": served.snapshot.id,
        "features": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in feature_values.items()},
    }


def _log_shadow(served: Served, customer_id: str, features: pd.DataFrame, champion_clv: float) -> None:
    """The challenger's prediction for a customer the champion answered, logged as one JSON line; a failure only logged."""
    import json

    from clv_platform.ml.registry import predict

    try:
        shadow = max(float(predict(served.challenger, features)["predicted_clv"].iloc[0]), 0.0)
    except Exception as error:  # the answer is the champion's: a shadow failure must not fail the request
        shadow_log.warning("shadow scoring by v%s failed for customer %s: %s", served.challenger_version, customer_id, error)
        return
    record = {
        "customer_id": customer_id,
        "cutoff_date": served.cutoff_date,
        "champion_version": served.model_version,
        "champion_clv": champion_clv,
        "challenger_version": served.challenger_version,
        "challenger_clv": shadow,
        "rollout": served.rollout.mode,
    }
    shadow_log.info("shadow %s", json.dumps(record))


# --- hot swap -------------------------------------------------------------------------------


class Live:
    """The served snapshot and models, reloaded in a background thread when the manifest, either alias or the rollout moves."""

    def __init__(self, state_dir: Path, model_name: str, poll_seconds: float):
        self.state_dir, self.model_name, self.poll_seconds = Path(state_dir), model_name, poll_seconds
        self.served: Served | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self) -> tuple[dict | None, str | None, str | None, Rollout]:
        """The manifest on disk, the champion's version (the snapshot's when no alias names one), the challenger's when
        one distinct is set, and the rollout: read in one registry call."""
        from clv_platform.ml import registry

        manifest = online.read_manifest(self.state_dir)
        champion, challenger, rollout = registry.serving_state(self.model_name)
        version = champion if champion is not None else (manifest or {}).get("model_version")
        return manifest, version, challenger, rollout

    def refresh(self) -> bool:
        """Load and swap in what is wanted if it differs from what is served; True when it swapped."""
        manifest, version, challenger, rollout = self.wanted()
        if manifest is None or version is None:
            return False
        current = self.served
        if current is not None and (current.snapshot.id, current.model_version, current.challenger_version, current.rollout) == (
            manifest["snapshot_id"],
            version,
            challenger,
            rollout,
        ):
            return False
        fresh = load_served(self.state_dir, manifest, self.model_name, version, challenger, rollout, reuse=current)
        self.served = fresh  # one reference: a request holds the old one or the new one, never a mix
        log.warning(
            "serving snapshot %s (cutoff %s) and %s version %s, challenger %s, rollout %s",
            fresh.snapshot.id,
            fresh.cutoff_date,
            self.model_name,
            version,
            f"v{challenger}" if challenger else "none",
            rollout.describe(),
        )
        return True

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                self.last_error = None
            except Exception as error:  # a bad snapshot or an unreachable registry: keep serving what is loaded
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("reload failed, still serving the loaded snapshot and model: %s", self.last_error)
            self._stop.wait(self.poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="clv-serving-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
