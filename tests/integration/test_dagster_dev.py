"""`dagster dev` serves the code location: the asset graph with its groups, the jobs, schedules and sensor."""

from __future__ import annotations

import pytest

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
