"""Runs that die and runs that clash, with real processes: ``clv-platform run`` killed with SIGKILL, a second
``clv-platform run`` on the same state, and ``dagster dev``'s daemon with a run left STARTED by a dead process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from clv_platform.state_lock import LOCK_FILE, read_holder

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).parent / "clv-platform"


def _cli_env(environment_for, home: Path) -> dict:
    env = environment_for(home)
    env.pop("CLV_SOURCE_CONFIG", None)
    return env


def _poll(what: str, check, timeout: float = 600, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _run_status(home: Path, run_id: str) -> dg.DagsterRunStatus | None:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status if run else None


def _start_and_kill_a_cli_run(home: Path, env: dict) -> tuple[str, int]:
    """A ``clv-platform run`` started, seen STARTED on the instance, then killed with SIGKILL: its run id and pid."""
    log = open(home / "killed_run.log", "w")  # noqa: SIM115 (the child writes to it until it is killed)
    process = subprocess.Popen([str(CLI), "run", "--customers", "300"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def started_run_id():
            if process.poll() is not None:
                raise AssertionError(
                    f"clv-platform run exited {process.returncode}:\n{(home / 'killed_run.log').read_text()[-3000:]}"
                )
            run_id = read_holder(home / LOCK_FILE).get("run_id")
            return run_id if run_id and _run_status(home, run_id) == dg.DagsterRunStatus.STARTED else None

        run_id = _poll("the CLI run to start", started_run_id, timeout=600)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=120)
        log.close()
    assert _run_status(home, run_id) == dg.DagsterRunStatus.STARTED  # what a kill -9 leaves behind
    return run_id, process.pid


def _failure_message(home: Path, run_id: str) -> str:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        return records[-1].event_log_entry.dagster_event.message


def test_second_run_is_refused_and_a_killed_run_is_failed_by_the_next(tmp_path, environment_for):
    home = tmp_path / "state"
    env = _cli_env(environment_for, home)
    first = subprocess.Popen(
        [str(CLI), "run", "--customers", "300"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        holder = _poll(
            "the first run to hold the state",
            lambda: read_holder(home / LOCK_FILE).get("run_id") and read_holder(home / LOCK_FILE),
        )
        second = subprocess.run([str(CLI), "run", "--customers", "300"], env=env, capture_output=True, text=True, timeout=600)
        assert second.returncode == 2
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"error: {home} is in use by clv-platform run (pid {first.pid}, run {holder['run_id']}, since "), (
            line
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=120)

    killed_run, pid = _start_and_kill_a_cli_run(home, env)
    third = subprocess.run([str(CLI), "run", "--customers", "300"], env=env, capture_output=True, text=True, timeout=2400)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert f"Run {killed_run} was left unfinished by a clv-platform process that died: marked failed." in third.stdout
    assert _run_status(home, killed_run) == dg.DagsterRunStatus.FAILURE
    assert f"the clv-platform process (pid {pid}) executing this run ended without finishing it" in _failure_message(
        home, killed_run
    )
    # The first, killed before it started, and the second, refused, left no run behind that holds the queue.
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        unfinished = instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
            )
        )
    assert unfinished == []


LAUNCH = """
mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message } } }
"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_daemon_fails_a_run_whose_cli_process_died_and_the_queue_moves(tmp_path, environment_for, start_dagster_dev):
    home = tmp_path / "state"
    dead_run, pid = _start_and_kill_a_cli_run(home, _cli_env(environment_for, home))
    server = start_dagster_dev(home)
    # One run at a time: this run queues behind the dead one until run monitoring marks that failed.
    launched = server.graphql(
        LAUNCH,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": "clv_platform",
                    "repositoryName": "__repository__",
                    "pipelineName": "__ASSET_JOB",
                    "assetSelection": [{"path": ["raw", "customers"]}],
                },
                "runConfigData": {},
            }
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    queued = launched["run"]["runId"]

    def status(run_id: str) -> str:
        return server.graphql(STATUS, {"id": run_id})["runOrError"]["status"]

    _poll("the daemon to mark the dead run failed", lambda: status(dead_run) == "FAILURE", timeout=900, interval=2)
    assert f"the clv-platform process (pid {pid}) executing this run ended without finishing it" in _failure_message(
        home, dead_run
    )
    final = _poll(
        "the queued run to finish",
        lambda: (s := status(queued)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        timeout=900,
        interval=2,
    )
    assert final == "SUCCESS", server.log_tail()


def test_cli_run_is_refused_while_a_run_the_daemon_launched_is_in_progress(tmp_path, environment_for):
    home = tmp_path / "state"
    env = _cli_env(environment_for, home)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        # As the daemon's launcher leaves it while its worker runs: STARTED, with no CLI lock tags.
        busy = instance.run_storage.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
    done = subprocess.run([str(CLI), "run", "--customers", "300"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: run {busy.run_id} of __ASSET_JOB is STARTED on the Dagster instance in {home / 'dagster'}: wait for it to "
        "finish (or cancel it in the UI); the warehouse takes one run at a time"
    ]
    assert _run_status(home, busy.run_id) == dg.DagsterRunStatus.STARTED  # not the CLI's to judge
