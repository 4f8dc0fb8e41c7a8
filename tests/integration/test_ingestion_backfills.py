"""Backfills of raw/transactions from the CLI and from the UI, for real: a range of days is replaced in one run.

The state directory (warehouse, DAGSTER_HOME, dbt manifest) is one per module; each test loads the
first version of a small log for every day, changes the log, backfills a range of days and checks that
exactly those days now hold the new version (nothing doubled, nothing lost) and the others the old one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from clv_platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
DAYS = [date(2024, 3, 1) + timedelta(days=d) for d in range(6)]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _old_log() -> list[tuple[str, date, str]]:
    """(customer, day, amount): 3 + d lines on day d, and one amount that is not a number on the last day."""
    lines = [(f"c{(d + i) % 5}", day, f"{10 + 2.5 * i + d:.2f}") for d, day in enumerate(DAYS) for i in range(3 + d)]
    return lines + [("c9", DAYS[-1], "abc")]


def _new_log() -> list[tuple[str, date, str]]:
    """Every amount corrected, one more line a day, another unreadable amount on the fourth day."""
    lines = [(c, day, f"{float(a) + 1:.2f}" if a != "abc" else a) for c, day, a in _old_log()]
    return lines + [("c7", day, "4.00") for day in DAYS] + [("c8", DAYS[3], "n/a")]


def _write_log(home: Path, lines: list[tuple[str, date, str]]) -> None:
    (home / "sales.csv").write_text("customer,day,total\n" + "".join(f"{c},{day},{a}\n" for c, day, a in lines))


def _expected(first: date, last: date) -> tuple[list[tuple], list[tuple]]:
    """Stored lines and quarantined (day, value) after backfilling [first, last] of the new log over the old one."""
    chosen = [line for line in _new_log() if first <= line[1] <= last] + [
        line for line in _old_log() if not first <= line[1] <= last
    ]
    numeric = [(c, day, float(a)) for c, day, a in chosen if a.replace(".", "").isdigit()]
    return sorted(numeric), sorted((day, a) for _, day, a in chosen if not a.replace(".", "").isdigit())


def _stored(home: Path) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        lines = con.execute("select customer_id, invoice_date::date, quantity * unit_price from raw.transactions").fetchall()
        quarantined = con.execute("select partition_date::date, value from raw.transactions_quarantine").fetchall()
    return sorted(lines), sorted(quarantined)


@pytest.fixture(scope="module")
def home(tmp_path_factory, environment_for) -> Path:
    """CLV_HOME for the module: the log, its source spec and the state every process here shares."""
    home = tmp_path_factory.mktemp("backfills")
    (home / "source.yaml").write_text(
        "transactions: {kind: files, path: sales.csv, columns: {customer_id: customer, invoice_date: day, amount: total}}\n"
    )
    # The session's dbt manifest, copied in before the processes below start: none of them parses the project
    # (two parsing at once would collide).
    environment_for(home)
    return home


@pytest.fixture(scope="module")
def dagster_dev_on_home(home, start_dagster_dev):
    """``dagster dev`` on the module's state, started at once: it loads while the CLI test runs."""
    return start_dagster_dev(home, wait=False, CLV_SOURCE_CONFIG=str(home / "source.yaml"))


def _load_old_log_everywhere(home: Path, materialize_raw) -> None:
    """The starting point: the old log loaded for every day (in-process, outside DAGSTER_HOME's run history)."""
    _write_log(home, _old_log())
    assert materialize_raw(home / "source.yaml", home / "warehouse.duckdb", DAYS[0], DAYS[-1]).success
    after_the_log = DAYS[-1] + timedelta(days=1)
    assert _stored(home) == _expected(after_the_log, after_the_log)  # no day of the new log
    _write_log(home, _new_log())


def _assert_one_run_replaced(home: Path, run: dg.DagsterRun, first: date, last: date) -> None:
    """The run materialized each day of [first, last] once, its counts add up, and the warehouse holds what it should."""
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
        str(first),
        str(last),
    )
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = [r for r in instance.fetch_materializations(TRANSACTIONS, limit=100).records if r.run_id == run.run_id]
    days = [str(first + timedelta(days=d)) for d in range((last - first).days + 1)]
    assert sorted(r.partition_key for r in records) == days
    meta = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    lines, quarantined = _expected(first, last)
    in_range = [line for line in lines if first <= line[1] <= last]
    assert (meta["rows_accepted"], meta["rows_quarantined"]) == (
        len(in_range),
        len([q for q in quarantined if first <= q[0] <= last]),
    )
    assert _stored(home) == (lines, quarantined)


@pytest.mark.usefixtures("dagster_dev_on_home")  # the UI may be open meanwhile, as for a user
def test_cli_backfill_replaces_the_range_in_one_run(home, environment_for, materialize_raw):
    _load_old_log_everywhere(home, materialize_raw)
    first, last = DAYS[1], DAYS[3]
    env = environment_for(home, CLV_SOURCE_CONFIG=str(home / "source.yaml"))
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        before = {r.run_id for r in instance.get_runs()}
    # The command README.md documents.
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "clv_platform.definitions",
        "--select",
        "raw/transactions",
        "--partition-range",
        f"{first}...{last}",
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run,) = [r for r in instance.get_runs() if r.run_id not in before]
    _assert_one_run_replaced(home, run, first, last)


LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL_RUNS = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status runs { runId status } }
  }
}
"""


def test_ui_backfill_replaces_the_range_in_one_run(home, dagster_dev_on_home, materialize_raw):
    _load_old_log_everywhere(home, materialize_raw)
    first, last = DAYS[3], DAYS[5]
    server = dagster_dev_on_home.wait_until_serving()
    # What the UI sends from the asset's page (Materialize -> choose a range of partitions -> Launch backfill).
    params = {
        "assetSelection": [{"path": TRANSACTIONS.path}],
        "fromFailure": False,
        "tags": [],
        "partitionNames": [str(first + timedelta(days=d)) for d in range((last - first).days + 1)],
    }
    launched = server.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    # The daemon in dagster dev picks the backfill up (it looks every 30 s) and launches its run.
    deadline = time.monotonic() + 240
    while True:
        backfill = server.graphql(BACKFILL_RUNS, {"backfillId": launched["backfillId"]})["partitionBackfillOrError"]
        if backfill["runs"] and all(r["status"] in TERMINAL for r in backfill["runs"]):
            break
        assert time.monotonic() < deadline, f"backfill not done: {backfill}\n{server.log_tail()}"
        time.sleep(1)
    (run_id,) = [r["runId"] for r in backfill["runs"]]  # the single-run backfill policy: one run for the range
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_by_id(run_id)
    assert run.tags["dagster/backfill"] == launched["backfillId"]
    _assert_one_run_replaced(home, run, first, last)
