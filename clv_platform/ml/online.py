"""The online feature snapshot and the online feature build: pure Python, no Dagster.

A snapshot is a folder of Parquet files and the dbt models' compiled SQL, built aside and renamed into
``<state>/online/snapshots/<id>``; ``<state>/online/manifest.json`` names the live one and is written last
(temp file and rename), so a reader sees a whole snapshot or the previous one, never half of one.

The online features of posted purchase lines are computed by the dbt models' own compiled SQL, run in
dependency order on an in-memory DuckDB over those lines. Quantities of the whole population (the
scoring cutoff and the order-value cap of ``POPULATION_MODELS``, the country shares of
``POPULATION_COLUMNS``) cannot come from one customer's lines: they are the batch run's, kept in the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST_NAME = "manifest.json"
SNAPSHOTS_DIR = "snapshots"
KEEP_SNAPSHOTS = 3  # a server may still be loading the one before the live one
FEATURE_MODEL = "customer_features"
# Models whose rows are of the whole population: loaded from the batch run, never recomputed online.
POPULATION_MODELS = ("int_cutoffs", "int_order_value_caps")
# Feature columns computed from the whole population inside a model: the batch value, by these keys.
POPULATION_COLUMNS = {"country_customer_share": ("country",)}
# The snapshot's tables, each a Parquet file.
TABLES = ("customers", "raw_customers", "int_cutoffs", "int_order_value_caps", "country_customer_share")
SQL_FILE = "feature_models.json"


@dataclass(frozen=True)
class FeatureModel:
    """One dbt model as the online build runs it: the relation it creates and its compiled SELECT."""

    name: str
    relation: str
    sql: str


def online_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "online"


def feature_models(manifest: Mapping[str, Any], target: str = FEATURE_MODEL) -> tuple[str, list[FeatureModel]]:
    """The compiled models ``target`` is built from, in dependency order, and the database their SQL names.

    ``manifest`` is a dbt ``manifest.json`` written by ``dbt compile`` of ``+<target>``: every model upstream
    of ``target`` must carry its ``compiled_code``.

    >>> def model(name, parents):
    ...     return {"resource_type": "model", "name": name, "database": "online", "relation_name": f"main.{name}",
    ...             "compiled_code": f"select 1 as {name}", "depends_on": {"nodes": [f"model.p.{p}" for p in parents]}}
    >>> manifest = {"nodes": {f"model.p.{m['name']}": m for m in
    ...     [model("mart", ["days", "cutoffs"]), model("days", ["lines"]), model("lines", []), model("cutoffs", [])]}}
    >>> database, models = feature_models(manifest, "mart")
    >>> database, [m.name for m in models]
    ('online', ['lines', 'days', 'cutoffs', 'mart'])
    """
    nodes = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    by_name = {node["name"]: uid for uid, node in nodes.items()}
    if target not in by_name:
        raise ValueError(f"the dbt manifest has no model '{target}'")
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(uid: str) -> None:
        if uid in ordered or uid not in nodes:
            return
        if uid in visiting:
            raise ValueError(f"dbt models form a cycle at {uid}")
        visiting.add(uid)
        for parent in nodes[uid]["depends_on"].get("nodes", []):
            visit(parent)
        visiting.discard(uid)
        ordered.append(uid)

    visit(by_name[target])
    models = []
    for uid in ordered:
        node = nodes[uid]
        if not node.get("compiled_code"):
            raise ValueError(f"dbt model '{node['name']}' has no compiled SQL in the manifest: run `dbt compile` first")
        models.append(FeatureModel(node["name"], node["relation_name"], node["compiled_code"]))
    return nodes[by_name[target]]["database"], models


def source_relations(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``raw.transactions`` -> the relation name the compiled SQL reads it by."""
    return {f"{s['source_name']}.{s['name']}": s["relation_name"] for s in manifest["sources"].values()}


@dataclass(frozen=True)
class FeatureSql:
    """Everything the online build needs from dbt: the database name, the source relations, the models in order."""

    database: str
    sources: dict[str, str]
    models: list[FeatureModel]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FeatureSql:
        database, models = feature_models(manifest)
        return cls(database, source_relations(manifest), models)

    def relation(self, name: str) -> str:
        return next(m.relation for m in self.models if m.name == name)

    def to_json(self) -> str:
        return json.dumps(
            {"database": self.database, "sources": self.sources, "models": [m.__dict__ for m in self.models]}, indent=1
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSql:
        data = json.loads(text)
        return cls(data["database"], data["sources"], [FeatureModel(**m) for m in data["models"]])


class FeatureBuilder:
    """``marts.customer_features`` of posted rows, by the dbt models' compiled SQL on in-memory DuckDB connections.

    A connection with the schemas and the population tables loaded is reused by the next build: opening an
    in-memory DuckDB and loading the batch's tables cost about as much as the models themselves. The models
    are views, created once per connection over the raw tables, so a build is the raw tables replaced and one
    query (a table per model per build spent most of a request on statements over a few hundred rows). Each
    build replaces every raw table, so nothing of one build reaches the next; a connection is held by one
    build at a time (a small pool, one per concurrent build), and one whose build failed is closed.

    Parameters
    ----------
    sql
        The compiled models, from :meth:`FeatureSql.from_manifest`.
    population
        The batch run's rows of each of :data:`POPULATION_MODELS`, used in place of their SQL.
    population_columns
        For each of :data:`POPULATION_COLUMNS`, the batch's values by its key columns; a key the batch has
        no row for gets 0.
    """

    def __init__(self, sql: FeatureSql, population: Mapping[str, pd.DataFrame], population_columns: Mapping[str, pd.DataFrame]):
        import queue
        import weakref

        self.sql, self.population, self.population_columns = sql, dict(population), dict(population_columns)
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._with_views: weakref.WeakSet = weakref.WeakSet()

    def _connect(self):
        import duckdb

        sql = self.sql
        con = duckdb.connect(":memory:")
        con.execute(f"attach ':memory:' as \"{sql.database}\"")
        con.execute(f'use "{sql.database}"')
        relations = [*sql.sources.values(), *(m.relation for m in sql.models)]
        for schema in sorted({relation.rsplit(".", 1)[0] for relation in relations}):
            con.execute(f"create schema if not exists {schema}")
        for name, frame in self.population.items():
            _load(con, sql.relation(name), frame)
        return con

    def build(self, raw: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The features of the rows in ``raw`` (``raw.transactions``, ``raw.behavioral_events``, ``raw.customers``)."""
        import queue

        try:
            con = self._idle.get_nowait()
        except queue.Empty:
            con = self._connect()
        try:
            for key, frame in raw.items():
                _load(con, self.sql.sources[key], frame)
            if con not in self._with_views:
                # A view binds its inputs when created: the raw tables exist from the first build on.
                for model in self.sql.models:
                    if model.name not in self.population:
                        con.execute(f"create or replace view {model.relation} as {model.sql}")
                self._with_views.add(con)
            features = con.execute(f"select * from {self.sql.relation(FEATURE_MODEL)} order by customer_id").df()
        except BaseException:
            con.close()
            raise
        self._idle.put(con)
        for column, keys in POPULATION_COLUMNS.items():
            batch = self.population_columns[column]
            values = features[list(keys)].merge(batch[[*keys, column]], on=list(keys), how="left")[column]
            features[column] = values.fillna(0.0).astype("float64").to_numpy()
        return features

    def close(self) -> None:
        """Close the idle connections."""
        import queue

        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _load(con, relation: str, frame: pd.DataFrame) -> None:
    con.register("_input", frame)
    try:
        con.execute(f"create or replace table {relation} as select * from _input")
    finally:
        con.unregister("_input")


def build_features(
    sql: FeatureSql,
    raw: Mapping[str, pd.DataFrame],
    population: Mapping[str, pd.DataFrame],
    population_columns: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """``marts.customer_features`` of the rows in ``raw`` on a fresh connection: :meth:`FeatureBuilder.build` once."""
    builder = FeatureBuilder(sql, population, population_columns)
    try:
        return builder.build(raw)
    finally:
        builder.close()


# --- the snapshot on disk -------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: its manifest, its tables and the feature SQL."""

    manifest: dict
    tables: dict[str, pd.DataFrame]
    sql: FeatureSql

    @property
    def id(self) -> str:
        return self.manifest["snapshot_id"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(state_dir: Path, tables: Mapping[str, pd.DataFrame], sql: FeatureSql, info: Mapping[str, Any]) -> dict:
    """Write a snapshot aside, rename it into place, then point ``manifest.json`` at it; returns the manifest.

    ``info`` is merged into the manifest (cutoff, model name, version and rung). The manifest's ``sha256``
    covers every file, in name order, so a reader can tell a snapshot from a corrupted one.
    """
    missing = sorted(set(TABLES) - set(tables))
    if missing:
        raise ValueError(f"a snapshot needs the tables {', '.join(missing)}")
    root = online_dir(state_dir)
    snapshots = root / SNAPSHOTS_DIR
    snapshots.mkdir(parents=True, exist_ok=True)
    # Ids sort by creation time (to the microsecond), which is the order pruning keeps.
    snapshot_id = f"{pd.Timestamp.now(tz='UTC').strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"
    building = root / f".building-{snapshot_id}"
    building.mkdir()
    try:
        for name in TABLES:
            tables[name].to_parquet(building / f"{name}.parquet", index=False)
        (building / SQL_FILE).write_text(sql.to_json())
        files = {p.name: _sha256(p) for p in sorted(building.iterdir())}
        for path in building.iterdir():
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(building)
        os.rename(building, snapshots / snapshot_id)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _fsync_dir(snapshots)
    digest = hashlib.sha256("".join(f"{name}:{sha}\n" for name, sha in files.items()).encode()).hexdigest()
    manifest = {
        "snapshot_id": snapshot_id,
        "path": f"{SNAPSHOTS_DIR}/{snapshot_id}",
        **info,
        "rows": len(tables["customers"]),
        "files": files,
        "sha256": digest,
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    temporary = root / f".{MANIFEST_NAME}.{snapshot_id}"
    with open(temporary, "w") as handle:
        json.dump(manifest, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / MANIFEST_NAME)
    _fsync_dir(root)
    _prune(snapshots, keep=snapshot_id)
    return manifest


def _prune(snapshots: Path, keep: str) -> None:
    """Remove all but the newest :data:`KEEP_SNAPSHOTS` snapshots (ids sort by time)."""
    old = sorted(p.name for p in snapshots.iterdir() if p.is_dir())
    for name in old[:-KEEP_SNAPSHOTS]:
        if name != keep:
            shutil.rmtree(snapshots / name, ignore_errors=True)


def read_manifest(state_dir: Path) -> dict | None:
    """The live snapshot's manifest, or ``None`` when no snapshot has been written."""
    path = online_dir(state_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def load_snapshot(state_dir: Path, manifest: Mapping[str, Any]) -> Snapshot:
    """The snapshot ``manifest`` names, its files checked against the manifest's hashes."""
    folder = online_dir(state_dir) / manifest["path"]
    for name, expected in manifest["files"].items():
        if _sha256(folder / name) != expected:
            raise ValueError(f"snapshot {manifest['snapshot_id']}: {name} does not match the sha256 in its manifest")
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    return Snapshot(dict(manifest), tables, FeatureSql.from_json((folder / SQL_FILE).read_text()))


def snapshot_tables(
    scores: pd.DataFrame,
    predictions: pd.DataFrame,
    tiers: pd.DataFrame,
    explanations: pd.DataFrame,
    segments: pd.DataFrame,
    features: pd.DataFrame,
    raw_customers: pd.DataFrame,
    population: Mapping[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """The snapshot's tables from one cutoff's batch outputs.

    ``customers`` holds one row per scored customer: the stored score, its model version and rollout arm,
    ``probability_alive`` (``predictions``, made by that row's version), value tier, segment, top drivers
    and every feature. ``features`` is the whole ``marts.customer_features`` at the cutoff: the
    country shares are read from it.

    Raises
    ------
    ValueError
        If a scored customer has no tier, explanation or features of those scores, or ``predictions``
        disagree with the stored scores (they must be of the version that made them).
    """
    keys = ["customer_id", "cutoff_date"]
    model = ["model_name", "model_version"]
    arm = ["arm"] if "arm" in scores else []
    table = scores[[*keys, "predicted_clv", *model, *arm]].merge(
        predictions[["customer_id", "probability_alive", "predicted_clv"]].rename(columns={"predicted_clv": "_check"}),
        on="customer_id",
        how="left",
    )
    if table["probability_alive"].isna().any() or (table["_check"].clip(lower=0) - table["predicted_clv"]).abs().max() > 1e-9:
        raise ValueError("the model's predictions do not reproduce the stored scores: the snapshot needs the scoring version")
    table = table.drop(columns="_check")
    tier_columns = [c for c in tiers.columns if c == "value_tier" or c.endswith(("_quantile", "_cut_point"))]
    driver_columns = [c for c in explanations.columns if c not in (*keys, *model, *arm)]
    for name, frame, columns in (
        ("value tier", tiers, tier_columns),
        ("explanation", explanations, driver_columns),
        ("features", features.drop(columns="cutoff_date"), [c for c in features.columns if c not in keys]),
    ):
        joined = table.merge(frame[["customer_id", *columns]], on="customer_id", how="left", indicator=True)
        unmatched = int((joined.pop("_merge") != "both").sum())
        if unmatched:
            raise ValueError(f"{unmatched} of {len(table)} scored customers have no {name} row at the cutoff")
        table = joined
    table = table.merge(segments[["customer_id", "segment"]], on="customer_id", how="left")
    table["segment"] = table["segment"].astype("Int64")
    shares = features[["country", "country_customer_share"]].drop_duplicates("country").reset_index(drop=True)
    return {
        "customers": table.reset_index(drop=True),
        "raw_customers": raw_customers.reset_index(drop=True),
        **{name: population[name].reset_index(drop=True) for name in POPULATION_MODELS},
        "country_customer_share": shares,
    }
