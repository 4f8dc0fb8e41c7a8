"""One switch between the embedded default and the scale-out deployment."""

from __future__ import annotations

import os
from typing import Literal

Environment = Literal["local", "scale_out"]
ENVIRONMENT_ENV = "CLV_ENVIRONMENT"


def get_environment() -> Environment:
    """``local`` (DuckDB, sqlite MLflow, Dagster local storage) unless ``CLV_ENVIRONMENT`` says otherwise.

    Call it only inside resource factories, never at import time in asset modules.
    """
    value = os.environ.get(ENVIRONMENT_ENV, "local").strip().lower() or "local"
    if value not in ("local", "scale_out"):
        raise ValueError(f"{ENVIRONMENT_ENV}={value!r}: expected 'local' or 'scale_out'")
    return value  # type: ignore[return-value]
