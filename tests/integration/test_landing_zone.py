"""The landing-zone sensor: each file that lands in a folder or under an S3 prefix is ingested exactly once.

The first tests evaluate the sensor tick by tick (``build_sensor_context`` with the real resources,
real files and a real moto_server), carrying the cursor from one tick to the next as the daemon
does. The last one runs a real ``dagster-daemon`` on the project's workspace, restarts it, and reads
the runs and the cursor back from the instance's storage.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from clv_platform.defs.ingestion import sensors
from clv_platform.defs.ingestion.assets import raw_daily
from clv_platform.defs.ingestion.sensors import LANDED_COUNT_TAG, LANDED_FILES_TAG, landing_zone_sensor
from clv_platform.lib.ingestion import RawSource
from clv_platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
COLUMNS = "columns: {customer_id: customer, invoice_date: day, amount: total}"

# Days 2024-03-01..03; the rows without a valid date (unparseable, in the future, before 1970)
# widen nothing: the load quarantines them.
FILE_A = """\
customer,day,total
c1,2024-03-01 09:30:00,12.50
c2,2024-03-02,7.00
c1,2024-03-03 18:00:00,-2.50
c3,not a date,5.00
c3,2099-01-01,5.00
c3,1969-12-31,5.00
"""
FILE_B = "customer,day,total\nc4,2024-03-10,3.00\nc5,2024-03-12,4.00\n"


def _parquet(days: list[str]) -> bytes:
    frame = pd.DataFrame(
        {
            "customer": [f"p{i}" for i in range(len(days))],
            "day": pd.to_datetime(days, format="ISO8601"),
            "total": [9.5] * len(days),
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _write(path: Path, data: str | bytes, mtime: float | None = None) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:  # a distinct mtime even on coarse-grained filesystems
        os.utime(path, (mtime, mtime))
    return path


class Sensor:
    """Evaluates the sensor tick after tick, carrying the cursor forward as the daemon does."""

    def __init__(self, resources: dict):
        self.resources, self.cursor = resources, None
        self.instance = dg.DagsterInstance.ephemeral()

    def tick(self):
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = landing_zone_sensor.evaluate_tick(context)
        self.cursor = result.cursor if result.cursor is not None else self.cursor
        return result

    @property
    def state(self) -> dict:
        return json.loads(self.cursor)


def _files_spec(tmp_path: Path, where: str) -> dict:
    spec = tmp_path / "source.yaml"
    spec.write_text(f"transactions: {{kind: files, path: {where}, {COLUMNS}}}\n")
    return {"raw_source": RawSource(spec_path=str(spec)), "s3": S3Resource(region_name="us-east-1")}


def _requested(result) -> list[tuple[str, str, list[str]]]:
    return [(r.tags[RANGE_START], r.tags[RANGE_END], json.loads(r.tags[LANDED_FILES_TAG])) for r in result.run_requests]


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def test_each_file_in_a_folder_is_requested_once_per_version(tmp_path, landing):
    a = _write(landing / "a.csv", FILE_A, mtime=1_700_000_000)
    b = _write(landing / "b.csv.gz", gzip.compress(FILE_B.encode()), mtime=1_700_000_000)
    _write(landing / "README.txt", "Exports land here.\n")  # not a data file
    _write(landing / "c.parquet.part", b"half-copied")  # a copy in progress under a temporary name
    sensor = Sensor(_files_spec(tmp_path, str(landing)))

    # First tick: both files, in one run covering the days of each (2024-03-01..03 and 03-10..12).
    first = sensor.tick()
    assert _requested(first) == [("2024-03-01", "2024-03-12", [str(a), str(b)])]
    (request,) = first.run_requests
    assert request.tags[LANDED_COUNT_TAG] == "2" and request.run_key.startswith("landed-")
    assert sensor.state["files"] == {
        str(a): f"{a.stat().st_size}-{a.stat().st_mtime_ns}",
        str(b): f"{b.stat().st_size}-{b.stat().st_mtime_ns}",
    }
    assert sensor.state["unreadable"] == {}

    # Nothing changed: no request, the cursor stays.
    before = sensor.cursor
    second = sensor.tick()
    assert second.run_requests == [] and "No new or changed files" in second.skip_message
    assert sensor.cursor == before

    # A new file: exactly one request, for its days only.
    c = _write(landing / "c.parquet", _parquet(["2024-04-01", "2024-04-02 23:59"]))
    third = sensor.tick()
    assert _requested(third) == [("2024-04-01", "2024-04-02", [str(c)])]
    assert set(sensor.state["files"]) == {str(a), str(b), str(c)}

    # A file rewritten with a later day: one request for that file, for its new range.
    _write(a, FILE_A + "c6,2024-03-20,1.00\n", mtime=1_700_000_100)
    fourth = sensor.tick()
    assert _requested(fourth) == [("2024-03-01", "2024-03-20", [str(a)])]
    assert fourth.run_requests[0].run_key != request.run_key
    assert sensor.tick().run_requests == []

    # A file removed from the folder leaves the cursor; the others stay judged.
    b.unlink()
    assert sensor.tick().run_requests == []
    assert set(sensor.state["files"]) == {str(a), str(c)}


def test_an_unreadable_file_is_reported_once_and_blocks_no_other(tmp_path, landing):
    bad = _write(landing / "bad.csv", "customer;day;total\nc1;2024-03-01;5\n", mtime=1_700_000_000)
    good = _write(landing / "good.csv", FILE_B)
    sensor = Sensor(_files_spec(tmp_path, str(landing)))

    first = sensor.tick()
    assert _requested(first) == [("2024-03-10", "2024-03-12", [str(good)])]
    error = sensor.state["unreadable"][str(bad)]
    assert error.startswith(f"{bad}: row 1: column 'customer': missing (mapped to customer_id)")
    assert "wrong delimiter?" in error and error.endswith("(rule: required_column)") and "\n" not in error

    # Judged at this version: not read again, not requested, until it changes.
    again = sensor.tick()
    assert again.run_requests == [] and "No new or changed files" in again.skip_message

    # Only unreadable files new in a tick: the tick is skipped with the one-line message.
    worse = _write(landing / "worse.csv.gz", gzip.compress(FILE_B.encode())[:30])
    skipped = sensor.tick()
    assert skipped.run_requests == []
    assert skipped.skip_message.startswith(f"{worse}: corrupt or truncated gzip stream")
    assert skipped.skip_message.endswith("(rule: readable_file)") and "\n" not in skipped.skip_message

    # Fixed: a new version, requested.
    _write(bad, "customer,day,total\nc1,2024-03-01,5\n", mtime=1_700_000_100)
    fixed = sensor.tick()
    assert _requested(fixed) == [("2024-03-01", "2024-03-01", [str(bad)])]
    assert set(sensor.state["unreadable"]) == {str(worse)}


def test_a_file_without_a_valid_date_is_judged_without_a_run(tmp_path, landing):
    undated = _write(landing / "undated.csv", "customer,day,total\nc1,soon,5\n")
    empty = _write(landing / "empty.csv", "")
    sensor = Sensor(_files_spec(tmp_path, str(landing)))
    result = sensor.tick()
    assert result.run_requests == []
    assert result.skip_message == (
        f"{empty}: no row with a valid timestamp, no days to load; {undated}: no row with a valid timestamp, no days to load"
    )
    assert set(sensor.state["files"]) == {str(empty), str(undated)}
    assert sensor.tick().run_requests == []


def test_a_file_of_us_style_dates_is_judged_naming_the_format_to_set(tmp_path, landing):
    us = _write(landing / "us.csv", "customer,day,total\nc1,12/1/2010 8:26,5\nc2,12/13/2010 17:05,7\n")
    result = Sensor(_files_spec(tmp_path, str(landing))).tick()
    assert result.run_requests == []
    assert result.skip_message == (
        f"{us}: no row with a valid timestamp, no days to load (most timestamps look like "
        "'%m/%d/%Y %H:%M': add timestamp_formats: ['%m/%d/%Y %H:%M'] to the source spec)"
    )


def test_a_backlog_is_read_over_several_ticks_within_the_read_budget(tmp_path, landing, monkeypatch):
    monkeypatch.setattr(sensors, "READ_BUDGET_SECONDS", 0.0)  # one file per tick
    a = _write(landing / "a.csv", FILE_A)
    b = _write(landing / "b.csv", FILE_B)
    sensor = Sensor(_files_spec(tmp_path, str(landing)))
    assert _requested(sensor.tick()) == [("2024-03-01", "2024-03-03", [str(a)])]
    assert _requested(sensor.tick()) == [("2024-03-10", "2024-03-12", [str(b)])]
    assert sensor.tick().run_requests == []


def test_a_file_whose_read_would_overrun_the_tick_is_left_for_the_next_tick(tmp_path, landing, monkeypatch):
    """The budget predicts each read at the tick's rate so far: a big file after a small one waits, then goes first."""
    monkeypatch.setattr(sensors, "READ_BUDGET_SECONDS", 30.0)
    small = _write(landing / "a.csv", FILE_A)
    # 5.7 MB: at the small file's rate (a few ms for 153 bytes) its read is predicted at minutes, not seconds.
    big = _write(landing / "b.csv", "customer,day,total\n" + "c7,2024-03-15,1.00\n" * 300_000)
    sensor = Sensor(_files_spec(tmp_path, str(landing)))

    first = sensor.tick()
    assert _requested(first) == [("2024-03-01", "2024-03-03", [str(small)])]
    assert set(sensor.state["files"]) == {str(small)}  # what the tick read is recorded; the big file is not
    second = sensor.tick()
    assert _requested(second) == [("2024-03-15", "2024-03-15", [str(big)])]
    assert set(sensor.state["files"]) == {str(small), str(big)}
    assert sensor.tick().run_requests == []


def test_a_glob_source_is_watched_too(tmp_path, landing):
    a = _write(landing / "2024-03-a.csv", FILE_A)
    _write(landing / "2024-04-b.csv", FILE_B)
    sensor = Sensor(_files_spec(tmp_path, str(landing / "2024-03-*.csv")))
    assert _requested(sensor.tick()) == [("2024-03-01", "2024-03-03", [str(a)])]


def test_sources_without_a_landing_zone_are_skipped(tmp_path):
    resources = _files_spec(tmp_path, str(tmp_path / "not-yet-created"))
    missing = Sensor(resources).tick()
    assert missing.run_requests == []
    assert missing.skip_message == f"{tmp_path / 'not-yet-created'}: no such file or folder (rule: input_present)"

    for spec, kind in (
        ("generator: {n_customers: 10}\n", "generator"),
        ("transactions: {kind: postgres, table: shop.orders}\n", "postgres"),
    ):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(spec)
        result = Sensor({"raw_source": RawSource(spec_path=str(path)), "s3": S3Resource(region_name="us-east-1")}).tick()
        assert result.run_requests == [] and result.cursor is None
        assert result.skip_message.startswith(f"The transaction source is '{kind}': nothing lands there")


def test_a_requested_run_loads_the_days_of_the_landed_files(clv_state, tmp_path, landing):
    a = _write(landing / "a.csv", FILE_A)
    b = _write(landing / "b.csv", FILE_B)
    resources = _files_spec(tmp_path, str(landing))
    (request,) = Sensor(resources).tick().run_requests
    database = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [raw_daily],
        selection=[dg.AssetKey(["raw", "transactions"])],
        tags=request.tags,
        resources={**resources, "warehouse": DuckDBResource(database=str(database))},
    )
    assert result.success
    with duckdb.connect(str(database), read_only=True) as con:
        loaded = con.execute(
            "select _source, count(*), min(invoice_date)::date::varchar, max(invoice_date)::date::varchar "
            "from raw.transactions group by _source order by _source"
        ).fetchall()
        quarantined = con.execute("select source_row, rule from raw.transactions_quarantine order by source_row").fetchall()
    assert loaded == [(str(a), 3, "2024-03-01", "2024-03-03"), (str(b), 2, "2024-03-10", "2024-03-12")]
    assert quarantined == [(5, "timestamp_parseable"), (6, "timestamp_not_in_future"), (7, "timestamp_in_history")]


def test_objects_under_an_s3_prefix_are_requested_once_per_etag(tmp_path, s3_client, aws_env):
    bucket = f"clv-landing-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_object(Bucket=bucket, Key="landing/a.csv", Body=FILE_A.encode())
    s3_client.put_object(Bucket=bucket, Key="landing/2024/b.parquet", Body=_parquet(["2024-05-01"]))
    s3_client.put_object(Bucket=bucket, Key="landing/README.txt", Body=b"Exports land here.\n")
    s3_client.put_object(Bucket=bucket, Key="elsewhere/c.csv", Body=FILE_B.encode())
    spec = tmp_path / "source.yaml"
    spec.write_text(f"transactions: {{kind: s3, bucket: {bucket}, prefix: landing/, {COLUMNS}}}\n")
    from clv_platform.defs.resources import s3_from_environment

    sensor = Sensor({"raw_source": RawSource(spec_path=str(spec)), "s3": s3_from_environment()})
    uri = f"s3://{bucket}/landing"
    assert _requested(sensor.tick()) == [("2024-03-01", "2024-05-01", [f"{uri}/2024/b.parquet", f"{uri}/a.csv"])]
    etag = s3_client.head_object(Bucket=bucket, Key="landing/a.csv")["ETag"].strip('"')
    assert sensor.state["files"][f"{uri}/a.csv"] == f"{len(FILE_A)}-{etag}"
    assert sensor.tick().run_requests == []

    # Overwritten with other content: a new ETag, one request. The same content again: nothing.
    s3_client.put_object(Bucket=bucket, Key="landing/a.csv", Body=FILE_B.encode())
    assert _requested(sensor.tick()) == [("2024-03-10", "2024-03-12", [f"{uri}/a.csv"])]
    s3_client.put_object(Bucket=bucket, Key="landing/a.csv", Body=FILE_B.encode())
    assert sensor.tick().run_requests == []


# A real daemon, restarted. Slow: two loads of the code location (the session's dbt manifest copied in, not parsed)
# and the 30 s sensor interval (its time: benchmarks/RESULTS.md). Deselect with -m "not slow".
# Each wait on the daemon: generous, as a load average of 10 on 2 cores makes every step several times slower.
DAEMON_TIMEOUT = 600


def _daemon(env: dict, log: Path) -> subprocess.Popen:
    daemon = Path(sys.executable).parent / "dagster-daemon"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(daemon), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own process group (with the code server it spawns), so teardown can stop them all.
            start_new_session=True,
            # Background processes inherit an ignored SIGINT; Dagster maps SIGTERM onto SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def _stop(process: subprocess.Popen, timeout: float = 60) -> int | None:
    """SIGTERM, then the return code; the process group (the code server too) is killed if anything is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if code is None:
        process.wait()
    return code


def _landing_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "landing_zone_sensor"}))
    return sorted(runs, key=lambda run: run.tags[RANGE_START])


def _wait_until(read, done, failure, process: subprocess.Popen, log: Path, timeout: float):
    """``read()`` once ``done`` says yes to it; an AssertionError (``failure`` of the last value, the daemon's log)
    after ``timeout`` seconds or as soon as the daemon exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if process.poll() is not None:
            raise AssertionError(f"dagster-daemon exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure(value)} after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _wait_for_runs(instance, count: int, process: subprocess.Popen, log: Path, timeout: float) -> list[dg.DagsterRun]:
    """The sensor's runs once ``count`` of them are queued (a run is created, then submitted to the queue)."""
    return _wait_until(
        lambda: _landing_runs(instance),
        lambda runs: len(runs) >= count and all(run.status != dg.DagsterRunStatus.NOT_STARTED for run in runs),
        lambda runs: f"{len(runs)} landing run(s), expected {count},",
        process,
        log,
        timeout,
    )


def _sensor_cursor(instance: dg.DagsterInstance) -> dict | None:
    """The cursor the daemon stored for the sensor, or None before its first tick ends."""
    from dagster._core.scheduler.instigation import InstigatorType

    (state,) = [
        s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR) if s.name == "landing_zone_sensor"
    ]
    cursor = state.instigator_data.cursor if state.instigator_data else None
    return json.loads(cursor) if cursor else None


def _wait_for_cursor(instance, files: set[str], process: subprocess.Popen, log: Path, timeout: float) -> dict:
    """The stored cursor once it records exactly ``files``.

    The daemon stores a tick's cursor when the tick ends, after it has queued the tick's runs (seconds later
    on a loaded machine): a queued run is no sign that the cursor holds its files yet.
    """
    return _wait_until(
        lambda: _sensor_cursor(instance),
        lambda cursor: cursor is not None and set(cursor["files"]) == files,
        lambda cursor: f"the sensor's cursor {cursor}, expected the files {sorted(files)},",
        process,
        log,
        timeout,
    )


@pytest.mark.slow
def test_a_daemon_restart_neither_loses_nor_repeats_a_file(tmp_path, environment_for):
    """Slow: file A, a daemon, its restart, file B; one run each and both in the stored cursor.

    Runs are only queued (``max_concurrent_runs: 0``): the sensor's requests are what is tested; running
    them (ingestion and dbt, a minute each) is what test_ingestion_files and test_pipeline cover.
    """
    home, landing = tmp_path / "clv_home", tmp_path / "landing"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    landing.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        textwrap.dedent("""\
        telemetry:
          enabled: false
        run_queue:
          max_concurrent_runs: 0
    """)
    )
    spec = tmp_path / "source.yaml"
    spec.write_text(f"transactions: {{kind: files, path: {landing}, {COLUMNS}}}\n")
    env = environment_for(
        home, CLV_SOURCE_CONFIG=str(spec), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    log = tmp_path / "daemon.log"
    a = _write(landing / "a.csv", FILE_A)

    processes = []
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            processes.append(_daemon(env, log))
            # Turned on the README's way, as a user does while the daemon runs.
            dagster = Path(sys.executable).parent / "dagster"
            started = subprocess.run(
                [str(dagster), "sensor", "start", "landing_zone_sensor", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
            # A handled: its tick has ended, so the cursor records it (it is stored after the run is queued).
            _wait_for_cursor(instance, {str(a)}, processes[-1], log, timeout=DAEMON_TIMEOUT)
            (run_a,) = _wait_for_runs(instance, 1, processes[-1], log, timeout=DAEMON_TIMEOUT)
            assert json.loads(run_a.tags[LANDED_FILES_TAG]) == [str(a)]
            assert (run_a.tags[RANGE_START], run_a.tags[RANGE_END], run_a.job_name) == (
                "2024-03-01",
                "2024-03-03",
                "ingest_and_features",
            )
            assert run_a.status == dg.DagsterRunStatus.QUEUED

            assert _stop(processes[-1]) is not None, "dagster-daemon did not stop on SIGTERM within 60 s"
            processes.append(_daemon(env, log))
            b = _write(landing / "b.csv", FILE_B)
            _wait_for_cursor(instance, {str(a), str(b)}, processes[-1], log, timeout=DAEMON_TIMEOUT)
            # The tick after the restart saw A and B and requested B alone.
            runs = _wait_for_runs(instance, 2, processes[-1], log, timeout=DAEMON_TIMEOUT)
            assert [json.loads(run.tags[LANDED_FILES_TAG]) for run in runs] == [[str(a)], [str(b)]]
            assert (runs[1].tags[RANGE_START], runs[1].tags[RANGE_END]) == ("2024-03-10", "2024-03-12")
    finally:
        for process in processes:
            _stop(process)
