"""`clv-platform evaluate` on a log as public benchmarks ship it: whitespace-separated, no header, yyyymmdd dates.

The CDNOW shape (``customer yyyymmdd count amount``, columns named by position) starting in 2009: read by the
product's readers into the warehouse, every row kept by default; a history_start the user sets counts what it
excludes; flags that cannot apply say why; the BTYD compile cache is the user's one, whatever the state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from clv_platform import settings

pytestmark = pytest.mark.integration

# The label window of a 364-day horizon after 2010-01-01 ends on LAST: evaluate loads every day of the log.
FIRST, LAST = date(2009, 3, 1), date(2010, 12, 30)
# Position 1 the customer, 2 the yyyymmdd day, 4 the amount (3 is a count of items the amount already sums).
CDNOW = ("--file", "cdnow.txt", "--no-header", "--delimiter", "whitespace", "--mapping", "customer_id=1,invoice_date=2,amount=4")


def _cdnow_log(path: Path, customers: int = 150, seed: int = 7) -> list[date]:
    """A CDNOW-shaped log from a seeded buy-till-you-die generator (Poisson purchases, a dropout chance after each),
    right-aligned by runs of spaces as the benchmark ships it; the day of every line."""
    rng = np.random.default_rng(seed)
    span = (LAST - FIRST).days
    lines, days = [], []
    for customer in range(1, customers + 1):
        t, rate, dropout = float(rng.integers(0, 300)), rng.gamma(1.0, 1 / 30), rng.beta(1.0, 4.0)
        while t <= span:
            day = FIRST + timedelta(days=int(t))
            count = int(rng.integers(1, 6))
            lines.append(f"{customer:05d} {day:%Y%m%d} {count:>3d} {round(count * rng.uniform(9.0, 16.0), 2):>8.2f}")
            days.append(day)
            if rng.random() < dropout:
                break
            t += 1 + rng.exponential(1 / rate)
    days[0], lines[0] = FIRST, f"{1:05d} {FIRST:%Y%m%d}   1    11.77"  # the log's first and last days are known
    days.append(LAST)
    lines.append(f"{customers:05d} {LAST:%Y%m%d}   2    25.10")
    path.write_text("\n".join(lines) + "\n")
    return days


def _evaluate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLV_HOME": str(tmp_path / "user_state")}
    env.pop("PYTENSOR_FLAGS", None)  # the product's own choice of compile cache, not the suite's
    cli = Path(sys.executable).parent / "clv-platform"
    return subprocess.run([str(cli), "evaluate", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)


def _counts(state: Path) -> tuple[int, int, date, int]:
    with duckdb.connect(str(state / "warehouse.duckdb"), read_only=True) as con:
        accepted, first = con.execute("select count(*), min(invoice_date)::date from raw.transactions").fetchone()
        quarantined = con.execute("select count(*) from raw.transactions_quarantine").fetchone()[0]
        early = con.execute("select count(*) from raw.transactions_quarantine where rule = 'timestamp_in_history'").fetchone()[0]
    return accepted, quarantined, first, early


def test_a_headerless_whitespace_log_from_2009_is_evaluated_whole(tmp_path):
    days = _cdnow_log(tmp_path / "cdnow.txt")
    # The spec file's way of saying what the flags say (the other tests use the flags).
    spec = tmp_path / "cdnow.yaml"
    spec.write_text(
        "transactions: {kind: files, path: cdnow.txt, header: false, delimiter: whitespace,\n"
        "               columns: {customer_id: 1, invoice_date: 2, amount: 4}}\n"
    )
    # A year's horizon on 10 months of history: no training cutoff's label window ends by the cutoff.
    done = _evaluate(tmp_path, "--source", str(spec), "--cutoff", "2010-01-01", "--horizon", "364", "--tune", "--out", "report")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    accepted, quarantined, first, _ = _counts(tmp_path / "report" / "state")
    # No default history start drops the log's early days: every line read is accepted, from its first day.
    assert (accepted, quarantined, first) == (len(days), 0, FIRST)
    report = (tmp_path / "report" / "metrics.md").read_text()
    assert (
        "no supervised model trained: no training cutoff's 364-day label window ends by the evaluation cutoff 2010-01-01"
    ) in report
    assert "trained on cutoffs none" not in report and "customer-cutoff rows" not in report
    assert "| btyd |" in report and "| xgboost |" not in report
    # --tune is refused with its reason, on one line of stderr, not silently dropped.
    (note,) = [line for line in done.stderr.splitlines() if "--tune" in line]
    assert note.startswith("note: --tune refused: no supervised model trained") and "nothing to tune" in note
    # The BTYD fit compiled into the user's cache, not into this evaluation's own state.
    assert not (tmp_path / "report" / "state" / "cache" / "pytensor").exists()
    assert any(settings.pytensor_compiledir().glob("compiledir_*"))


def test_a_history_start_the_user_sets_reports_the_rows_it_excludes(tmp_path):
    days = _cdnow_log(tmp_path / "cdnow.txt")
    start = date(2009, 6, 1)
    before = sum(day < start for day in days)
    assert 0 < before < len(days) / 2
    done = _evaluate(
        tmp_path, *CDNOW, "--history-start", str(start), "--cutoff", "2010-01-01", "--horizon", "364", "--out", "report"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    accepted, quarantined, first, early = _counts(tmp_path / "report" / "state")
    assert (early, quarantined, accepted + quarantined) == (before, before, len(days))  # quarantined, never lost
    assert first >= start
    sentence = f"history_start {start} excluded {before:,} rows dated before it (quarantined, rule timestamp_in_history)"
    assert sentence in (tmp_path / "report" / "metrics.md").read_text()
    assert sentence in done.stdout


def test_a_log_older_than_history_start_is_refused_naming_the_rule_and_the_dates(tmp_path):
    _cdnow_log(tmp_path / "cdnow.txt")
    done = _evaluate(tmp_path, *CDNOW, "--history-start", "2011-01-01", "--cutoff", "2010-06-01", "--horizon", "91")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: every row of the transaction source is dated before history_start 2011-01-01")
    assert "timestamp_in_history" in line and f"its days are {FIRST} .. {LAST}" in line
    assert "no rows with a valid timestamp" not in line


def test_file_options_with_a_source_spec_are_refused_naming_them(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("transactions: {kind: files, path: cdnow.txt}\n")
    done = _evaluate(tmp_path, "--source", str(spec), "--history-start", "2009-01-01", "--no-header", "--cutoff", "2010-06-01")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == f"error: --no-header, --history-start apply to --file only: with --source, set them in {spec}"
