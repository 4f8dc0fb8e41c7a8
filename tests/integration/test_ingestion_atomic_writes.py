"""A run killed half-way through its write leaves the previous state readable; a rerun completes it.

Real processes and a real SIGKILL: 200,000 order lines are loaded, then separate processes
materialize a changed file over them and are killed inside the write (after the old rows were
deleted in the open transaction) and while the commit reaches the WAL. The warehouse must open,
hold exactly the old or exactly the new state, never a mix, and a rerun must produce the new one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

FIRST, LAST = "2024-01-01", "2024-03-31"
LINES = 200_000
CSV_TYPES = {
    "invoice_no": "varchar",
    "stock_code": "varchar",
    "description": "varchar",
    "quantity": "bigint",
    "invoice_date": "timestamp",
    "unit_price": "double",
    "customer_id": "varchar",
    "country": "varchar",
}
CANONICAL = ", ".join(CSV_TYPES)

# The run in a process of its own. Test scaffolding only, the product code runs unchanged: the
# warehouse connection is opened when the test says go (the run then reads and stages the file),
# and replace_window's statements leave marks ('deleted' once the old rows are gone inside the
# open transaction, 'commit' just before the commit) so the test knows where the write is.
RUN = textwrap.dedent("""
    import sys, time
    from contextlib import contextmanager
    from pathlib import Path

    import dagster as dg
    from dagster_aws.s3 import S3Resource
    from dagster_duckdb import DuckDBResource

    import clv_platform.defs.ingestion.assets as assets
    import clv_platform.lib.raw_load as raw_load
    from clv_platform.lib.ingestion import RawSource, partition_range_tags

    spec, database, first, last, marks = sys.argv[1:6]
    marks = Path(marks)


    class MarkedStatements:
        def __init__(self, con):
            self._con = con

        def __getattr__(self, name):
            return getattr(self._con, name)

        def execute(self, statement, *args):
            if statement == "commit":
                (marks / "commit").touch()
            result = self._con.execute(statement, *args)
            if statement.startswith("delete from raw.transactions "):
                (marks / "deleted").touch()
            return result


    real_replace_window = raw_load.replace_window
    raw_load.replace_window = lambda con, writes, sources: real_replace_window(MarkedStatements(con), writes, sources)


    class WarehouseOnGo(DuckDBResource):
        @contextmanager
        def get_connection(self):
            (marks / "ready").touch()
            while not (marks / "go").exists():
                time.sleep(0.01)
            with super().get_connection() as con:
                yield con


    result = dg.materialize(
        [assets.raw_daily], selection=[dg.AssetKey(["raw", "transactions"])],
        resources={"raw_source": RawSource(spec_path=spec), "warehouse": WarehouseOnGo(database=database),
                   "s3": S3Resource(region_name="us-east-1")},
        tags=partition_range_tags(first, last),
    )
    (marks / ("done" if result.success else "failed")).touch()
""")


def _order_lines(seed: int, n: int) -> pd.DataFrame:
    """n order lines spread over the quarter, three per invoice; about 0.05% without a customer."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 91 * 86_400, n))
    customers = np.char.add("c", rng.integers(0, 5_000, n).astype(str)).astype(object)
    customers[rng.random(n) < 0.0005] = None
    return pd.DataFrame(
        {
            "invoice_no": np.char.add(f"s{seed}-", (np.arange(n) // 3).astype(str)),
            "stock_code": np.char.add("sku", (np.arange(n) % 3).astype(str)),
            "description": "item",
            "quantity": rng.integers(1, 6, n),
            "invoice_date": pd.Timestamp(FIRST) + pd.to_timedelta(seconds, unit="s"),
            "unit_price": np.round(rng.uniform(1, 50, n), 2),
            "customer_id": customers,
            "country": "United Kingdom",
        }
    )


def _write_source(folder: Path, name: str, lines: pd.DataFrame) -> Path:
    folder.mkdir()
    lines.to_csv(folder / "orders.csv", index=False, date_format="%Y-%m-%d %H:%M:%S")
    spec = folder / f"{name}.yaml"
    spec.write_text("transactions: {kind: files, path: orders.csv, preset: canonical}\n")
    return spec


def _expected(csv: Path, lines: pd.DataFrame) -> tuple:
    """The state a complete load of ``csv`` must leave: the checksum of its lines with a customer, read by
    DuckDB's own CSV reader, and the file rows (the header is row 1) of those without, which are quarantined."""
    with duckdb.connect() as con:
        accepted = con.execute(
            f"select count(*), sum(hash({CANONICAL})) from read_csv('{csv}', header = true, "
            f"columns = {CSV_TYPES}) where customer_id is not null"
        ).fetchone()
    return accepted, [int(i) + 2 for i in np.flatnonzero(lines["customer_id"].isna().to_numpy())]


def _state(database: Path) -> dict:
    """Counts and checksums of both tables; opening read-write also replays a WAL left by a killed run."""
    with duckdb.connect(str(database)) as con:
        return {
            "rows": con.execute("select count(*), sum(hash(t)) from raw.transactions t").fetchone(),
            "canonical": con.execute(f"select count(*), sum(hash({CANONICAL})) from raw.transactions").fetchone(),
            "quarantine": con.execute("select count(*), sum(hash(q)) from raw.transactions_quarantine q").fetchone(),
            "quarantined_rows": con.execute(
                "select list(source_row order by source_row) from raw.transactions_quarantine where rule = 'customer_id_present'"
            ).fetchone()[0],
        }


def _is_new(state: dict, expected: tuple) -> bool:
    accepted, quarantined = expected
    return state["canonical"] == accepted and state["quarantined_rows"] == quarantined


class Run:
    """The changed file's load in its own process, waiting for go before it opens the warehouse."""

    def __init__(self, spec: Path, database: Path, marks: Path, script: Path):
        marks.mkdir()
        self.marks, self.log = marks, marks / "run.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(script), str(spec), str(database), FIRST, LAST, str(marks)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the run exited {self.process.returncode} before {what}:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.001)

    def mark(self, name: str) -> bool:
        return (self.marks / name).exists()

    def go(self) -> None:
        self.wait_for(lambda: self.mark("ready"), "'ready' (the run asks for the warehouse)")
        (self.marks / "go").touch()

    def kill(self) -> int:
        """SIGKILL the run; its exit status (0 if it had just finished on its own)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def test_killed_write_leaves_old_state_and_rerun_completes(tmp_path, materialize_raw):
    old_lines = _order_lines(seed=1, n=LINES)
    # The changed file: every price corrected, every tenth line gone, new lines, other lines without a customer.
    new_lines = (
        pd.concat(
            [
                old_lines.assign(unit_price=(old_lines["unit_price"] + 0.5).round(2)).iloc[np.arange(LINES) % 10 != 0],
                _order_lines(seed=2, n=LINES // 10),
            ]
        )
        .sort_values("invoice_date", kind="stable")
        .reset_index(drop=True)
    )
    old_spec = _write_source(tmp_path / "v1", "v1", old_lines)
    new_spec = _write_source(tmp_path / "v2", "v2", new_lines)
    database = tmp_path / "warehouse.duckdb"
    script = tmp_path / "run.py"
    script.write_text(RUN)
    # Three runs of the changed file, started now so that they load their code while the old one loads.
    runs = {name: Run(new_spec, database, tmp_path / name, script) for name in ("killed_mid_write", "killed_at_commit", "rerun")}
    try:
        assert materialize_raw(old_spec, database, FIRST, LAST).success
        old = _state(database)
        old_expected = _expected(tmp_path / "v1" / "orders.csv", old_lines)
        new_expected = _expected(tmp_path / "v2" / "orders.csv", new_lines)
        assert _is_new(old, old_expected) and old["rows"][0] == LINES - len(old_expected[1])
        assert old_expected != new_expected and len(new_expected[1]) > 0

        # 1. Killed inside the write: the old rows are deleted in the open transaction, the new ones are being inserted.
        run = runs["killed_mid_write"]
        run.go()
        run.wait_for(lambda: run.mark("deleted"), "the delete inside the transaction")
        assert run.kill() == -signal.SIGKILL
        state = _state(database)
        if not run.mark("commit"):  # the commit was never issued: only the old state is possible
            assert state == old
        assert state == old or _is_new(state, new_expected), "the warehouse holds a mix of the old and the new load"

        # 2. Killed while the commit reaches the write-ahead log: old or new, never a mix.
        run = runs["killed_at_commit"]
        wal = database.with_name(database.name + ".wal")
        assert not wal.exists()
        run.go()
        # Staging writes to the log before the swap: wait for the swap's commit to be issued.
        run.wait_for(lambda: (run.mark("commit") and wal.exists()) or run.mark("done"), "the commit in the write-ahead log")
        assert run.kill() in (-signal.SIGKILL, 0)
        state = _state(database)
        assert state == old or _is_new(state, new_expected), "the warehouse holds a mix of the old and the new load"

        # 3. A rerun completes: exactly the changed file, nothing doubled, nothing of the old load left.
        run = runs["rerun"]
        run.go()
        run.wait_for(lambda: run.mark("done"), "the rerun's end")
        assert run.process.wait(timeout=60) == 0
        final = _state(database)
        assert _is_new(final, new_expected)
        assert final["rows"][0] == len(new_lines) - len(new_expected[1]) and final["quarantine"][0] == len(new_expected[1])
    finally:
        for run in runs.values():
            run.stop()
