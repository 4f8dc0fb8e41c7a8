"""`dagster dev` serves the code location: the asset graph with its groups, the jobs, schedules and sensor; and
`clv-platform dev` starts the scoring API beside it, and stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import DagsterDev, _free_port
from serving_support import CLI, request

pytestmark = pytest.mark.integration

QUERY = """
{
  assetNodes { assetKey { path } groupName }
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on RepositoryLocation { repositories {
      jobs { name } schedules { name cronSchedule } sensors { name } } } } } } }
}
"""


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, start_dagster_dev):
    server = start_dagster_dev(tmp_path_factory.mktemp("dagster_dev"))
    yield server.port, server.graphql(QUERY)


def test_ui_serves_the_graph_with_its_groups(dagster_dev):
    _, data = dagster_dev
    groups = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in data["assetNodes"]}
    assert groups["raw/transactions"] == "ingestion"
    assert groups["marts/customer_features"] == "features"
    assert groups["ml/champion"] == "training"
    assert groups["scoring/clv_scores"] == "scoring"
    assert groups["monitoring/drift_report"] == "monitoring"
    assert set(groups.values()) >= {"ingestion", "features", "training", "scoring", "monitoring"}


def test_ui_serves_jobs_schedules_and_sensor(dagster_dev):
    _, data = dagster_dev
    location = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    (repository,) = location["repositories"]
    assert {"clv_full_pipeline", "ingest_and_features", "weekly_scoring", "clv_retraining"} <= {
        j["name"] for j in repository["jobs"]
    }
    assert {s["name"]: s["cronSchedule"] for s in repository["schedules"]} == {
        "daily_ingest_and_features": "0 2 * * *",
        "weekly_scoring": "0 4 * * 1",
    }
    assert sorted(s["name"] for s in repository["sensors"]) == ["drift_retraining_sensor", "landing_zone_sensor"]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, read from /proc (children first found by their parent pid)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_dev_starts_the_scoring_api_beside_the_ui_and_a_sigterm_stops_every_process(tmp_path, environment_for):
    from clv_platform.settings import PROJECT_ROOT

    home = tmp_path / "state"
    home.mkdir()
    ui_port, api_port = _free_port(), _free_port()
    log = tmp_path / "dev.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [CLI, "dev", "--port", str(ui_port), "--api-port", str(api_port)],
            cwd=PROJECT_ROOT,
            env=environment_for(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        server = DagsterDev(ui_port, process, log).wait_until_serving(timeout=300)
        assert f"scoring API on http://127.0.0.1:{api_port}" in log.read_text()
        # No snapshot yet: the API is up and says so, rather than exiting.
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                status, body = request(f"http://127.0.0.1:{api_port}/v1/health", timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        assert status == 503, body
        assert "no online snapshot loaded yet" in body["detail"]
        assert server.graphql("{ version }")["version"]
        processes = _descendants(process.pid)
        assert len(processes) >= 3, processes  # the API, dagster dev and its webserver at least

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        deadline = time.monotonic() + 60
        while [pid for pid in processes if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in processes if _alive(pid)], log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
