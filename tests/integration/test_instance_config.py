"""The Dagster instance settings the platform ships: valid against Dagster's own config schema, and what they
promise (telemetry off, one run at a time, run monitoring with a launcher that can tell a dead CLI run)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher.base import WorkerStatus

from clv_platform import settings
from clv_platform.lib.runs import ClvRunLauncher
from clv_platform.state_lock import hold_state_lock

pytestmark = pytest.mark.integration

ROOT_YAML = settings.PROJECT_ROOT / "dagster.yaml"
DEPLOY_YAML = settings.PROJECT_ROOT / "deploy" / "dagster.yaml"


def _validated(yaml_file: Path, tmp_path: Path) -> dict:
    """The file's settings as Dagster validates them when an instance loads it (raises on any schema error)."""
    shutil.copy(yaml_file, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return config


@pytest.mark.parametrize("yaml_file", [ROOT_YAML, DEPLOY_YAML], ids=["embedded", "deploy"])
def test_shipped_dagster_yaml_is_valid_and_keeps_its_promises(yaml_file, tmp_path):
    config = _validated(yaml_file, tmp_path)
    assert config["telemetry"] == {"enabled": False}
    assert config["run_queue"]["max_concurrent_runs"] == 1
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_launcher"] == {"module": "clv_platform.lib.runs", "class": "ClvRunLauncher"}


def test_deploy_yaml_keeps_storage_in_postgres(tmp_path):
    storage = _validated(DEPLOY_YAML, tmp_path)["storage"]
    assert set(storage) == {"postgres"}
    assert storage["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}


def test_embedded_instance_runs_queue_monitoring_and_the_launcher(tmp_path):
    settings.ensure_dagster_yaml(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert not instance.telemetry_enabled
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, ClvRunLauncher)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


def test_ensure_dagster_yaml_updates_its_own_older_copy_and_keeps_a_users(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "dagster.yaml").write_text("# Written by clv_platform: local storage\ntelemetry:\n  enabled: false\n")
    settings.ensure_dagster_yaml(old)
    assert (old / "dagster.yaml").read_text() == ROOT_YAML.read_text()
    users = tmp_path / "users"
    users.mkdir()
    (users / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    settings.ensure_dagster_yaml(users)
    assert (users / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_launcher_reports_a_dead_cli_run_failed_and_leaves_other_runs_alone(tmp_path):
    launcher = ClvRunLauncher()
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\nfrom pathlib import Path\nfrom clv_platform.state_lock import hold_state_lock\n"
                "with hold_state_lock(Path(sys.argv[1]), 'run') as lock:\n"
                "    lock.record(run_id='cli-run')\n"
                "    print(' '.join(f'{k}={v}' for k, v in lock.run_tags().items()), flush=True)\n"
                "    time.sleep(600)\n"
            ),
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    tags = dict(pair.split("=", 1) for pair in holder.stdout.readline().split())
    run = dg.DagsterRun(job_name="clv_full_pipeline", run_id="cli-run", tags=tags, status=dg.DagsterRunStatus.STARTED)
    try:
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=120)
    health = launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and f"pid {holder.pid}" in health.msg
    other = dg.DagsterRun(job_name="__ASSET_JOB", run_id="daemon-run", status=dg.DagsterRunStatus.STARTED)
    assert launcher.check_run_worker_health(other).status == WorkerStatus.RUNNING
    with hold_state_lock(state, "run"):  # the lock is free again
        pass
