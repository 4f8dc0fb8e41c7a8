"""`dagster dev` serves the code location: the asset graph with its groups, the jobs, schedules and sensor."""

from __future__ import annotations

import json
import os
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

QUERY = """
{
  assetNodes { assetKey { path } groupName }
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on RepositoryLocation { repositories {
      jobs { name } schedules { name cronSchedule } sensors { name } } } } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_dev")
    port = _free_port()
    env = {**os.environ, "CLV_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for var in ("CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    (home / "dagster").mkdir()
    dagster = Path(sys.executable).parent / "dagster"
    log = open(home / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # Background processes inherit an ignored SIGINT, which dagster dev needs to stop.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"dagster dev exited {process.returncode}:\n{(home / 'dagster_dev.log').read_text()[-3000:]}")
            try:
                data = _graphql(port, QUERY)
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"] and data["assetNodes"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"dagster dev did not serve the location:\n{(home / 'dagster_dev.log').read_text()[-3000:]}")
            time.sleep(1)
        yield port, data
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_ui_serves_the_graph_with_its_groups(dagster_dev):
    _, data = dagster_dev
    groups = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in data["assetNodes"]}
    assert groups["raw/transactions"] == "ingestion"
    assert groups["marts/customer_features"] == "features"
    assert groups["ml/clv_model"] == "training"
    assert groups["scoring/clv_scores"] == "scoring"
    assert groups["monitoring/drift_report"] == "monitoring"
    assert set(groups.values()) >= {"ingestion", "features", "training", "scoring", "monitoring"}


def test_ui_serves_jobs_schedules_and_sensor(dagster_dev):
    _, data = dagster_dev
    location = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    (repository,) = location["repositories"]
    assert {"clv_full_pipeline", "ingest_and_features", "weekly_scoring", "clv_retraining"} <= {j["name"] for j in repository["jobs"]}
    assert {s["name"]: s["cronSchedule"] for s in repository["schedules"]} == {
        "daily_ingest_and_features": "0 2 * * *",
        "weekly_scoring": "0 4 * * 1",
    }
    assert sorted(s["name"] for s in repository["sensors"]) == ["drift_retraining_sensor", "landing_zone_sensor"]
