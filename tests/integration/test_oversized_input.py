"""`clv-platform run --source` on a gzip that expands to 10 GiB: one line naming the file and the rule, exit code 2.

The process runs with its address space capped at 4 GiB, so reading the file whole (as a decompress-in-memory
reader does) ends in a MemoryError traceback; a streaming reader stops at the configured limit instead.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.integration

LIMIT_BYTES = 20_000_000
ADDRESS_SPACE = 4 << 30


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_gzip_bomb_stops_with_one_line_and_exit_2(tmp_path, environment_for, gzip_bomb):
    bomb = gzip_bomb(tmp_path / "orders.csv.gz", expands_to=10 << 30, block=16 << 20)
    assert bomb.stat().st_size < 64 << 20
    spec = tmp_path / "source.yaml"
    spec.write_text(
        f"transactions: {{kind: files, path: orders.csv.gz, preset: canonical}}\nlimits: {{max_file_bytes: {LIMIT_BYTES}}}\n"
    )
    env = environment_for(tmp_path / "state")
    for key in ("DAGSTER_HOME", "CLV_SOURCE_CONFIG"):
        env.pop(key, None)
    cli = Path(sys.executable).parent / "clv-platform"
    done = subprocess.run(
        [str(cli), "run", "--source", str(spec)], env=env, capture_output=True, text=True, timeout=900, preexec_fn=_capped
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"error: {bomb}: larger than 19.1 MiB once decompressed, the limit set by limits.max_file_bytes in the source "
        "config: raise it to read this file, or split the file (rule: file_size_within_limit)"
    ]
    warehouse = tmp_path / "state" / "warehouse.duckdb"
    if warehouse.exists():  # nothing of the file was loaded
        with duckdb.connect(str(warehouse), read_only=True) as con:
            assert con.execute("select count(*) from information_schema.tables where table_schema = 'raw'").fetchone() == (0,)
