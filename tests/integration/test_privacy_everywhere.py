"""Privacy applies to everything stored or logged about a row: a real `dagster asset materialize` of
raw/transactions and of the data profile on a fresh state directory, then every byte under it searched.

Every PII column (hashed or dropped) of every kind of bad line holds a sentinel; no file under the state
directory (the DuckDB warehouse, Dagster's sqlite event log, its compute logs, the HTML profile) may hold it.
A control value outside the PII columns shows that the search finds what is there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAY = "2010-12-01"


def _materialize(env: dict, *selection: str) -> None:
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "clv_platform.definitions",
        "--select",
        ",".join(selection),
    ]
    if selection == ("raw/transactions",):
        command += ["--partition", DAY]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _files_holding(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes hold ``needle`` as UTF-8 or UTF-16 text."""
    forms = (needle.encode(), needle.encode("utf-16-le"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms))


def _warehouse_cells_holding(database: Path, needle: str) -> list[str]:
    """``table.column`` of every warehouse cell whose text holds ``needle``: the search in the bytes cannot
    see through DuckDB's string compression."""
    found = []
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute("select table_schema, table_name, column_name from information_schema.columns").fetchall()
        for schema, table, column in columns:
            hits = con.execute(
                f'select count(*) from "{schema}"."{table}" where cast("{column}" as varchar) like ?', [f"%{needle}%"]
            ).fetchone()[0]
            if hits:
                found.append(f"{schema}.{table}.{column}")
    return found


@pytest.mark.parametrize(
    "pii",
    [{"customer_id": "hmac", "description": "drop", "country": "drop"}, {"description": "drop", "country": "drop"}],
    ids=["hmac_and_drop", "drop_only"],
)
def test_no_byte_of_a_hashed_or_dropped_field_is_stored_or_logged_anywhere(tmp_path, environment_for, pii_bad_lines, pii):
    bad = pii_bad_lines(pii)
    inputs = tmp_path / "in"  # outside the state directory: the input file holds the sentinel, of course
    inputs.mkdir()
    (inputs / "sales.csv").write_bytes(bad.content)
    columns = ", ".join(f"{column}: {how}" for column, how in bad.pii.items())
    spec = tmp_path / "source.yaml"
    spec.write_text(
        f"transactions: {{kind: files, path: in/sales.csv, preset: online_retail}}\n"
        f"pii: {{columns: {{{columns}}}}}\n"
        "limits: {max_quarantine_share: 1.0}\n"
    )  # almost every line is bad: the run goes on to the profile
    home = tmp_path / "state"
    key = {"CLV_PII_KEY": "test-key-not-secret"} if "hmac" in pii.values() else {}  # a spec that only drops needs none
    env = environment_for(home, CLV_SOURCE_CONFIG=str(spec), **key)
    if not key:
        env.pop("CLV_PII_KEY", None)

    _materialize(env, "raw/transactions")
    _materialize(env, "monitoring/data_profile")

    database = home / "warehouse.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        accepted = con.execute("select count(*) from raw.transactions").fetchone()[0]
        quarantined = con.execute("select rule, column_name from raw.transactions_quarantine").fetchall()
    assert accepted + len(quarantined) == bad.records  # nothing lost
    assert set(bad.rules) <= {rule for rule, _ in quarantined}
    assert all(column != "nan" for _, column in quarantined)

    written = [p for p in home.rglob("*") if p.is_file()]
    event_logs = [p for p in written if p.suffix == ".db" and "dagster" in p.parts]
    compute_logs = [p for p in written if p.suffix in (".err", ".out")]
    profiles = [p for p in written if p.suffix == ".html"]
    assert event_logs and compute_logs and profiles, sorted(str(p.relative_to(home)) for p in written)

    assert _files_holding(home, bad.sentinel) == []
    assert _warehouse_cells_holding(database, bad.sentinel) == []
    # The control: a value that is not PII is found where quarantined values go, so the searches above can fail.
    assert {"raw.transactions_quarantine.value", "raw.transactions_quarantine.message"} <= set(
        _warehouse_cells_holding(database, bad.control)
    )
    assert any(name.endswith(".db") and name.startswith("dagster") for name in _files_holding(home, bad.control))
    # The compute logs hold the run's log lines, the example of a quarantined row among them (the first bad line).
    assert any(b"row(s) quarantined, e.g." in p.read_bytes() for p in compute_logs)
