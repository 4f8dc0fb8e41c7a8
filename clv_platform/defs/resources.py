"""Every resource, bound once. Values come from the environment so the same code runs embedded or scaled out."""

from __future__ import annotations

import os
import shutil
import sys

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource

from clv_platform.lib.dbt import build_dbt_project
from clv_platform.lib.environment import get_environment
from clv_platform.lib.resources import DriftPolicy, MlflowResource


def _dbt_executable() -> str:
    # The venv's dbt, so `dagster dev` works without an activated venv.
    beside_python = os.path.join(os.path.dirname(sys.executable), "dbt")
    return beside_python if os.path.exists(beside_python) else (shutil.which("dbt") or "dbt")


@dg.definitions
def resources() -> dg.Definitions:
    environment = get_environment()
    dbt_target = os.environ.get("CLV_DBT_TARGET") or ("duckdb" if environment == "local" else "spark")
    key_features = os.environ.get("CLV_DRIFT_KEY_FEATURES")
    drift_policy = DriftPolicy(
        psi_threshold=float(os.environ.get("CLV_DRIFT_PSI_THRESHOLD", "0.25")),
        **({"key_features": [f.strip() for f in key_features.split(",") if f.strip()]} if key_features else {}),
    )
    return dg.Definitions(
        resources={
            "warehouse": DuckDBResource(database=dg.EnvVar("CLV_WAREHOUSE_PATH")),
            "dbt": DbtCliResource(
                project_dir=build_dbt_project(), target=dbt_target, dbt_executable=_dbt_executable()
            ),
            "mlflow": MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
            "drift_policy": drift_policy,
        }
    )
