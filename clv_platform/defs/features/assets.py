"""staging -> intermediate -> marts: the dbt models, with dbt tests as asset checks."""


import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from clv_platform.lib.dbt import ClvDbtTranslator, build_dbt_project, ensure_manifest

dbt_project = build_dbt_project()
ensure_manifest(dbt_project)


class FeatureConfig(dg.Config):
    """Point-in-time parameters passed to dbt as --vars."""

    cutoff_date: str = Field(default="", description="Scoring cutoff (YYYY-MM-DD); empty = the day after the latest transaction.")
    horizon_days: int = Field(default=365, description="Label horizon in days after each training cutoff.")
    training_cutoffs: int = Field(default=4, description="How many past cutoffs training_examples stacks.")
    cutoff_spacing_days: int = Field(default=90, description="Days between consecutive training cutoffs.")

    def dbt_vars(self) -> dict:
        return {
            "cutoff_date": self.cutoff_date or None,
            "horizon_days": self.horizon_days,
            "training_cutoffs": self.training_cutoffs,
            "cutoff_spacing_days": self.cutoff_spacing_days,
        }


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=ClvDbtTranslator())
def clv_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: FeatureConfig):
    yield from dbt.cli(["build", "--vars", json.dumps(config.dbt_vars())], context=context).stream()
