"""A fresh embedded state (warehouse, MLflow store, reports) per test module."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def clv_state(tmp_path_factory):
    """Point the warehouse, MLflow and reports at a new directory for one module, then restore."""
    root = tmp_path_factory.mktemp("clv_state")
    values = {
        "CLV_HOME": str(root),
        "CLV_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    from clv_platform import settings

    settings.configure_environment()
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
