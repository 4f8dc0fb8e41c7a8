"""The dbt project as Dagster sees it: one DbtProject, one translator, a manifest kept fresh."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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


def build_dbt_project(parse_vars: Mapping[str, Any] | None = None) -> DbtProject:
    """The project, its manifest parsed with ``parse_vars`` as ``--vars``.

    dbt reuses a parse (partial parsing, from the ``partial_parse.msgpack`` dagster-dbt copies into each
    run's target dir) only for a run with the same vars and target: the feature assets pass their run
    config's defaults, so a run with them skips a full parse of the project.
    """
    settings.configure_environment()
    # The runs' target too: dbt's parse checksum includes it.
    parse_args = ["parse", "--quiet", "--target", settings.dbt_target(), *(vars_args(parse_vars) if parse_vars else [])]
    return DbtProject(
        project_dir=settings.DBT_PROJECT_DIR,
        target_path=settings.dbt_target_dir(),
        profiles_dir=settings.DBT_PROJECT_DIR,
        prepare_project_cli_args=parse_args,
    )


def _newest_source_mtime(project_dir: Path) -> float:
    patterns = ("*.sql", "*.yml", "*.yaml", "*.csv")
    files = [p for pattern in patterns for p in project_dir.rglob(pattern) if "target" not in p.parts]
    return max((p.stat().st_mtime for p in files), default=0.0)


def ensure_manifest(project: DbtProject) -> Path:
    """Parse the dbt project when its manifest is missing or older than any model, test or yml.

    ``@dbt_assets`` reads the manifest at import; ``prepare_if_dev`` only acts under
    ``dagster dev``, so the CLI, tests and deployed code servers would otherwise load a stale
    graph. A fresh manifest costs one ``stat`` per project file.
    """
    manifest = project.manifest_path
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project.project_dir):
        project.preparer.prepare(project)
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
