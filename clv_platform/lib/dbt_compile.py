"""The dbt models' compiled SQL, compiled against an empty DuckDB of its own.

Compiling against the warehouse would see the incremental models' tables and compile their
incremental filters; an empty database compiles every model as a full build, which is what the
online feature build (``clv_platform.ml.online``) runs over a customer's lines. The warehouse is not
opened (it takes one writer).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clv_platform import settings
from clv_platform.lib.dbt import dbt_executable

ONLINE_DATABASE = "online"


def compile_models(select: str, dbt_vars: Mapping[str, Any]) -> dict:
    """``dbt compile --select SELECT`` with ``dbt_vars``; returns the manifest, with the selected models' compiled SQL."""
    with tempfile.TemporaryDirectory(prefix="clv-dbt-compile-") as tmp:
        root = Path(tmp)
        (root / "profiles.yml").write_text(
            "clv_platform:\n  target: online\n  outputs:\n    online:\n      type: duckdb\n"
            f"      path: '{root / (ONLINE_DATABASE + '.duckdb')}'\n      threads: 1\n"
        )
        environment = {
            **os.environ,
            "DBT_TARGET_PATH": str(root / "target"),
            "DBT_LOG_PATH": str(root / "logs"),
            "DBT_PROFILES_DIR": str(root),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        command = [
            dbt_executable(),
            "compile",
            "--project-dir",
            str(settings.DBT_PROJECT_DIR),
            "--profiles-dir",
            str(root),
            "--target-path",
            str(root / "target"),
            "--select",
            select,
            "--vars",
            json.dumps(dict(dbt_vars)),
            "--quiet",
        ]
        done = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=settings.DBT_PROJECT_DIR)
        if done.returncode != 0:
            raise RuntimeError(f"dbt compile failed ({done.returncode}): {(done.stdout + done.stderr)[-3000:]}")
        return json.loads((root / "target" / "manifest.json").read_text())
