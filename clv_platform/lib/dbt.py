"""The dbt project as Dagster sees it: one DbtProject, one translator, a manifest kept fresh."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from clv_platform import settings

# Folder under models/ -> asset key prefix; sources are the raw layer written by ingestion.
_LAYERS = ("staging", "intermediate", "marts")


def vars_args(dbt_vars: Mapping[str, Any]) -> list[str]:
    """``--vars`` for a dbt command: the parse and the runs write them alike, so dbt can match them."""
    return ["--vars", json.dumps(dict(dbt_vars))]


# The feature parameters Dagster passes to dbt as --vars; their defaults are dbt_project.yml's vars.
FEATURE_VARS = (
    "cutoff_date",
    "horizon_days",
    "training_cutoffs",
    "cutoff_spacing_days",
    "order_value_cap_quantile",
    "incremental_lookback_days",
)


def default_feature_vars() -> dict[str, Any]:
    """The ``--vars`` of a feature build with the default run config (dbt_project.yml's values)."""
    defaults = settings.dbt_var_defaults()
    return {name: defaults[name] or None if name == "cutoff_date" else defaults[name] for name in FEATURE_VARS}


def dbt_executable() -> str:
    """The venv's dbt beside this interpreter, so `.venv/bin/dagster` works without an activated venv."""
    beside_python = os.path.join(os.path.dirname(sys.executable), "dbt")
    return beside_python if os.path.exists(beside_python) else (shutil.which("dbt") or "dbt")


@cache
def dbt_project() -> DbtProject:
    """The one dbt project of the process, built on first need (not at import): the resource and the assets share it.

    Its manifest is parsed with the feature assets' default ``--vars`` and the runs' target: dbt reuses a
    parse (partial parsing, from the ``partial_parse.msgpack`` dagster-dbt copies into each run's target
    dir) only for a run with the same vars and target (dbt's parse checksum includes both), so a run with
    the default config skips a full parse. ``dagster-dbt project prepare-and-package`` runs the same parse.
    """
    return DbtProject(
        project_dir=settings.DBT_PROJECT_DIR,
        target_path=settings.dbt_target_dir(),
        profiles_dir=settings.DBT_PROJECT_DIR,
        prepare_project_cli_args=parse_args(),
    )


def parse_args() -> list[str]:
    """The dbt command that writes the manifest: ``parse`` with the runs' target and default feature vars."""
    return ["parse", "--quiet", "--target", settings.dbt_target(), *vars_args(default_feature_vars())]


def _newest_source_mtime(project_dir: Path) -> float:
    patterns = ("*.sql", "*.yml", "*.yaml", "*.csv")
    files = [p for pattern in patterns for p in project_dir.rglob(pattern) if "target" not in p.parts]
    return max((p.stat().st_mtime for p in files), default=0.0)


def ensure_manifest(project: DbtProject) -> Path:
    """Parse the dbt project when its manifest is missing or older than any model, test or yml; its path.

    ``@dbt_assets`` needs the manifest when the definitions load; ``prepare_if_dev`` only acts under
    ``dagster dev``, so the CLI, tests and deployed code servers would otherwise load a stale graph. A
    fresh manifest costs one ``stat`` per project file. The parse writes to a folder of its own whose
    files are renamed into place (the manifest last), so a process loading the definitions meanwhile
    reads the old manifest or the new one, never half of one.
    """
    from dagster_dbt import DbtCliResource

    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir):
        return manifest
    target = manifest.parent
    scratch = target / f".parse-{uuid.uuid4().hex}"
    try:
        resource = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
        scratch.mkdir(parents=True)
        resource.cli(parse_args(), target_path=scratch).wait()
        for name in ("partial_parse.msgpack", "manifest.json"):
            if (scratch / name).exists():
                os.replace(scratch / name, target / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def incremental_definition_fingerprint(manifest: Mapping[str, Any]) -> str:
    """A hash of everything that shapes the rows of the project's incremental models.

    The SQL checksums of the incremental models and of every model upstream of them, and the text of
    every macro they call (dbt's own included, so a dbt upgrade counts). Days an incremental run keeps
    were built by the definitions of their day: when this hash changes, those rows are stale (or no
    longer fit the table's columns) and only a full refresh makes the tables right again.
    """
    nodes, macros = manifest["nodes"], manifest["macros"]
    todo = [
        uid
        for uid, node in nodes.items()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
    ]
    models: set[str] = set()
    called: set[str] = set()
    while todo:
        uid = todo.pop()
        if uid in models or uid in called:
            continue
        if uid in nodes:
            models.add(uid)
            todo += nodes[uid]["depends_on"].get("nodes", []) + nodes[uid]["depends_on"].get("macros", [])
        elif uid in macros:
            called.add(uid)
            todo += macros[uid]["depends_on"].get("macros", [])
    digest = hashlib.sha256()
    for uid in sorted(models):
        digest.update(f"{uid}:{nodes[uid]['checksum']['checksum']}\n".encode())
    for uid in sorted(called):
        digest.update(f"{uid}:{macros[uid]['macro_sql']}\n".encode())
    return digest.hexdigest()[:16]


class ClvDbtTranslator(DagsterDbtTranslator):
    """Keys models as ``[layer, model]`` and sources as ``[source, table]`` (``raw/transactions``)."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        resource_type = dbt_resource_props["resource_type"]
        if resource_type == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        fqn = dbt_resource_props.get("fqn", [])
        layer = next((part for part in fqn if part in _LAYERS), None)
        if layer is None:
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([layer, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "features"
