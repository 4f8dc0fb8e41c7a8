"""Every test gets its own state directory: nothing touches the checkout's .clv/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before any clv_platform import reads it; one directory for the session, per-test ones below.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="clv-tests-"))
os.environ["CLV_HOME"] = str(_SESSION_HOME)
for _var in ("DAGSTER_HOME", "CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI", "DBT_TARGET_PATH", "DBT_LOG_PATH"):
    os.environ.pop(_var, None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
