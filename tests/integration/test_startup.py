"""Start-up from the checkout as the README shows it: ``.venv/bin/dagster`` without the venv on PATH (no activated
venv, no ``uv run``), on a fresh state, with no telemetry written anywhere."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from clv_platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
LOCATION = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"


def _bare_env(tmp_path: Path) -> dict:
    """A shell without the venv: PATH holds only the system's folders; a fresh state dir and HOME."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DAGSTER_HOME",
            "CLV_WAREHOUSE_PATH",
            "MLFLOW_TRACKING_URI",
            "DBT_TARGET_PATH",
            "DBT_LOG_PATH",
            "CLV_SOURCE_CONFIG",
            "VIRTUAL_ENV",
        )
    }
    path = [d for d in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d and Path(d).resolve() != BIN.resolve()]
    (tmp_path / "home").mkdir()
    env.update(PATH=os.pathsep.join(path), CLV_HOME=str(tmp_path / "state"), HOME=str(tmp_path / "home"))
    return env


def test_venv_dagster_without_the_venv_on_path_loads_the_project(tmp_path):
    # A fresh state has no dbt manifest: loading the definitions runs `dbt parse`, found beside the interpreter.
    env = _bare_env(tmp_path)
    assert subprocess.run(["sh", "-c", "command -v dbt"], env=env, capture_output=True).returncode != 0
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "list", "-m", "clv_platform.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"raw/transactions", "marts/customer_features", "scoring/clv_scores"} <= set(done.stdout.split())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _location_loaded(port: int) -> str | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": LOCATION}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except OSError:
        return None
    return entries[0]["locationOrLoadError"]["__typename"] if entries and entries[0]["locationOrLoadError"] else None


def test_dagster_dev_from_the_checkout_records_no_telemetry(tmp_path):
    """`dagster dev` with no DAGSTER_HOME keeps its instance in a temporary folder configured by the checkout's
    dagster.yaml; without `telemetry: enabled: false` there, Dagster writes telemetry from its first start."""
    env = _bare_env(tmp_path)
    port = _free_port()
    log = tmp_path / "dagster_dev.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 600
        while (loaded := _location_loaded(port)) is None:
            assert process.poll() is None, f"dagster dev exited {process.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"dagster dev did not serve the location:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        assert loaded == "RepositoryLocation", log.read_text()[-3000:]
        instance_dir = Path(re.search(r"Using temporary directory (\S+) for storage", log.read_text()).group(1))
        assert instance_dir.is_dir()
        # Where Dagster writes telemetry: the instance's logs/ and .telemetry/, and the user's ~/.dagster/.telemetry/.
        assert not (instance_dir / "logs").exists() and not (instance_dir / ".telemetry").exists()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Dagster's upload thread makes empty ~/.dagster/logs folders whatever the setting; no entry, no id in them.
    assert [str(p) for p in (tmp_path / "home").rglob("*") if p.is_file()] == []
