"""Where the embedded default keeps its state, and the process environment it needs.

Everything the platform writes locally lives under one directory: ``.clv/`` in the checkout,
moved by the ``CLV_HOME`` environment variable. Pure Python: no Dagster import, so ``ml/`` and
``datagen/`` may use it too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
STATE_DIR_ENV = "CLV_HOME"
EXPORT_URI_ENV = "CLV_EXPORT_URI"

# The instance settings (telemetry off, one run at a time, dead runs failed), checked in at the root.
DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
_DAGSTER_YAML_MARK = "# clv_platform's Dagster instance settings"


def dbt_var_defaults() -> dict:
    """The ``vars:`` of ``dbt_project.yml``: the one place the feature parameters' defaults are written.

    A hand-run ``dbt build`` uses them, and Dagster's feature config takes its defaults from them.
    """
    import yaml

    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def state_dir() -> Path:
    """The single directory holding all local state (``$CLV_HOME``, default ``<checkout>/.clv``)."""
    return Path(os.environ.get(STATE_DIR_ENV) or PROJECT_ROOT / ".clv").resolve()


def warehouse_path() -> Path:
    """The DuckDB warehouse file."""
    return state_dir() / "warehouse.duckdb"


def mlflow_tracking_uri() -> str:
    """MLflow tracking store: ``$MLFLOW_TRACKING_URI`` if set, else a sqlite file in the state dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    """Where MLflow experiments created by the platform keep their artifacts."""
    return state_dir() / "mlartifacts"


def dagster_home() -> Path:
    return state_dir() / "dagster"


def reports_dir() -> Path:
    """HTML reports (drift, profiles) linked from materializations."""
    return state_dir() / "reports"


def exports_dir() -> Path:
    """Default destination of the analyst exports (``scoring/clv_scores_export``)."""
    return state_dir() / "exports"


def export_uri() -> str:
    """Where exports go: ``$CLV_EXPORT_URI`` (a folder, ``file://`` URI or ``s3://bucket/prefix``), else :func:`exports_dir`."""
    return (os.environ.get(EXPORT_URI_ENV) or "").strip() or str(exports_dir())


def dbt_target() -> str:
    """The target of dbt_project/profiles.yml dbt runs against: CLV_DBT_TARGET, or the embedded DuckDB."""
    return os.environ.get("CLV_DBT_TARGET") or "duckdb"


def dbt_target_dir() -> Path:
    """dbt's target/ (manifest, run results), kept out of the checkout."""
    return state_dir() / "dbt" / "target"


def dbt_log_dir() -> Path:
    return state_dir() / "dbt" / "logs"


def spark_dir() -> Path:
    """Local Spark state for dbt's ``spark`` target: warehouse, Derby metastore and ``derby.log``."""
    return state_dir() / "spark"


def pytensor_compiledir() -> Path:
    """pytensor's compile cache, one per user: ``$XDG_CACHE_HOME/clv_platform/pytensor`` (default ``~/.cache``).

    The first BG/NBD fit compiles its graph (about 30 s), later ones reuse it, whatever their state directory:
    every ``evaluate`` has its own. Sharing is safe: pytensor keys the cache by its version, Python and
    platform, and locks it while it compiles, so concurrent runs wait for each other instead of clobbering.
    """
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").resolve() / "clv_platform" / "pytensor"


def configure_pytensor_cache() -> None:
    """Point pytensor's compile cache at :func:`pytensor_compiledir` unless the user set ``PYTENSOR_FLAGS``.

    pytensor reads the flags once, at import: call this before the first ``import pymc_marketing``.
    """
    os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={pytensor_compiledir()}")


def configure_environment() -> None:
    """Set up the state dir for a process the platform starts: its folders, Dagster's home and the variables
    that point every component (Dagster, dbt, MLflow, Spark, matplotlib) at it, telemetry off.

    Called by the entry points (the CLI, the tests) before they load the definitions, never on import
    or by the definitions: those read the environment through resources, with the same defaults.
    Idempotent; variables the user already set win, so a scale-out deployment can point MLflow,
    Dagster or the warehouse elsewhere.
    """
    root = state_dir()
    defaults = {
        "DAGSTER_HOME": str(dagster_home()),
        "CLV_WAREHOUSE_PATH": str(warehouse_path()),
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(dbt_target_dir()),
        "DBT_LOG_PATH": str(dbt_log_dir()),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        # Read by the `spark` target in dbt_project/profiles.yml.
        "CLV_SPARK_DIR": str(spark_dir()),
        # matplotlib's cache would otherwise land in $HOME.
        "MPLCONFIGDIR": str(root / "cache" / "matplotlib"),
    }
    configure_pytensor_cache()
    # The console scripts beside this interpreter (dbt, which dagster-dbt runs by name): `.venv/bin/dagster`
    # then works without the venv on PATH, as an activated venv or `uv run` would.
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, [bin_dir, path]))
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for path in (root, Path(os.environ["DAGSTER_HOME"]), reports_dir(), mlflow_artifact_root()):
        path.mkdir(parents=True, exist_ok=True)
    ensure_dagster_yaml(Path(os.environ["DAGSTER_HOME"]))


def ensure_dagster_yaml(dagster_home: Path) -> None:
    """Write the platform's ``dagster.yaml`` into ``dagster_home`` unless the user has their own there.

    A file the platform wrote itself (it starts with the mark) is brought up to date.
    """
    dagster_yaml = dagster_home / "dagster.yaml"
    current = dagster_yaml.read_text() if dagster_yaml.exists() else None
    wanted = DAGSTER_YAML.read_text()
    # Older copies began "# Written by clv_platform".
    ours = current is not None and current.startswith((_DAGSTER_YAML_MARK, "# Written by clv_platform"))
    if current is None or (ours and current != wanted):
        dagster_yaml.write_text(wanted)
