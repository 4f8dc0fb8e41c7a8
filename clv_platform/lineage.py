"""Versions that tie a model to the data and code that made it."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache

import pandas as pd

from clv_platform.settings import DBT_PROJECT_DIR, PROJECT_ROOT


def data_version(frame: pd.DataFrame) -> str:
    """Content hash of a frame (row order and column names included): same data, same version."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the code that shapes a model (``clv_platform/`` and ``dbt_project/`` sources).

    A content hash rather than only a git commit: it is right in a dirty tree, an sdist or a
    container without ``.git``. The git commit, when there is one, is reported by :func:`git_commit`.
    """
    digest = hashlib.sha256()
    roots = [PROJECT_ROOT / "clv_platform", DBT_PROJECT_DIR]
    files = sorted(
        p
        for root in roots
        for pattern in ("*.py", "*.sql", "*.yml")
        for p in root.rglob(pattern)
        if not {"target", "logs", "__pycache__"} & set(p.parts)
    )
    for path in files:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
