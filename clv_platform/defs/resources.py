"""Every resource, bound once. Values come from the environment so the same code runs embedded or scaled out."""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource

from clv_platform import settings
from clv_platform.lib.dbt import dbt_executable, dbt_project
from clv_platform.lib.ingestion import RawSource
from clv_platform.lib.resources import DriftPolicy, MlflowResource


def _from_environment(variable: str, default: str) -> str | dg.EnvVar:
    """``variable`` when set (read by Dagster at run time), else the embedded default under the state dir."""
    return dg.EnvVar(variable) if os.environ.get(variable) else default


def s3_from_environment() -> S3Resource:
    """S3 (or an S3-compatible server such as MinIO) with boto3's usual credential chain.

    ``AWS_ENDPOINT_URL`` when set, ``AWS_REGION`` (default us-east-1); keys from ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or ``AWS_PROFILE``, read by boto3 itself.
    """
    return S3Resource(
        endpoint_url=dg.EnvVar("AWS_ENDPOINT_URL") if os.environ.get("AWS_ENDPOINT_URL") else None,
        region_name=dg.EnvVar("AWS_REGION") if os.environ.get("AWS_REGION") else "us-east-1",
    )


@dg.definitions
def resources() -> dg.Definitions:
    key_features = os.environ.get("CLV_DRIFT_KEY_FEATURES")
    drift_policy = DriftPolicy(
        psi_threshold=float(os.environ.get("CLV_DRIFT_PSI_THRESHOLD", "0.25")),
        **({"key_features": [f.strip() for f in key_features.split(",") if f.strip()]} if key_features else {}),
    )
    return dg.Definitions(
        resources={
            "warehouse": DuckDBResource(database=_from_environment("CLV_WAREHOUSE_PATH", str(settings.warehouse_path()))),
            # The source spec file; unset means the built-in generator.
            "raw_source": RawSource(),
            "dbt": DbtCliResource(project_dir=dbt_project(), target=settings.dbt_target(), dbt_executable=dbt_executable()),
            "mlflow": MlflowResource(tracking_uri=_from_environment("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri())),
            "drift_policy": drift_policy,
            "s3": s3_from_environment(),
        }
    )
