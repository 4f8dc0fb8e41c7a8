"""Runs whose process died: found and marked failed, so they do not hold the run queue for ever.

``clv-platform run`` executes in-process: no daemon launched it, so none watches it. Its run carries the
state lock's path and its pid (:mod:`clv_platform.state_lock`); whoever looks next can tell whether that
process still runs it. Two lookers use this: the CLI on start-up, and Dagster's run monitoring in the
daemon, through :class:`ClvRunLauncher`.
"""

from __future__ import annotations

import dagster as dg

# The one private Dagster import of the platform: the run-monitoring hook (check_run_worker_health) of the
# public DefaultRunLauncher must return these types, which Dagster does not export. Pinned by
# tests/integration/test_instance_config.py (the daemon's view of a dead CLI run) and allowed only here by
# tests/unit/test_import_contracts.py.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from clv_platform.state_lock import PID_TAG, cli_run_alive

# A killed process can leave its run in any of these.
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def dead_run_reason(run: dg.DagsterRun) -> str:
    return (
        f"the clv-platform process (pid {run.tags.get(PID_TAG, '?')}) executing this run ended without finishing it "
        "(killed or crashed)"
    )


def fail_dead_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run on ``instance`` whose CLI process is gone; return their ids."""
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        run = record.dagster_run
        if cli_run_alive(run.run_id, run.tags) is False:
            instance.report_run_failed(
                run, f"Marked failed on start-up of the next clv-platform command: {dead_run_reason(run)}."
            )
            failed.append(run.run_id)
    return failed


class ClvRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher, plus a worker health check for the runs the CLI executes in-process.

    With ``run_monitoring`` enabled, the daemon asks the launcher whether each started run's worker
    lives; the default launcher cannot tell, so a killed run would stay STARTED and fill the run queue.
    Runs this launcher cannot judge (the ones it launched itself) report RUNNING, as without a check.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if cli_run_alive(run.run_id, run.tags) is False:
            return CheckRunHealthResult(WorkerStatus.FAILED, dead_run_reason(run))
        return CheckRunHealthResult(WorkerStatus.RUNNING, "")
