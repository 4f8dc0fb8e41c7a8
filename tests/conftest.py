"""Every test gets its own state directory: nothing touches the checkout's .clv/.

The suite runs on pytest-xdist (``-n auto --dist loadscope`` in pyproject.toml): each worker is a process with
its own session directory, and a module's tests stay on one worker, so module-scoped state is built once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from clv_platform.settings import configure_pytensor_cache

# pytensor's compile cache outlives the run, as the product's does: the user's one (settings.pytensor_compiledir),
# shared by xdist workers and runs, so the suite compiles the BG/NBD fit once.
configure_pytensor_cache()
# OpenMP threads that spin while waiting (the default) steal the other worker's core on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Set before any clv_platform import reads it; one directory for the session, per-test ones below.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="clv-tests-"))
os.environ["CLV_HOME"] = str(_SESSION_HOME)
for _var in ("DAGSTER_HOME", "CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI", "DBT_TARGET_PATH", "DBT_LOG_PATH"):
    os.environ.pop(_var, None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

# The slowest modules first, longest first (measured on a 2-worker run; numbers in benchmarks/RESULTS.md), so
# that no worker starts a long module when the others are nearly done; xdist keeps this order
# (--no-loadscope-reorder). Others follow as collected.
SLOWEST_FIRST = [
    "integration/test_pipeline.py",
    "integration/test_run_lifecycle.py",
    "integration/test_serving_api.py",
    "integration/test_serving_uci_parity.py",
    "integration/test_spark_parity.py",
    "integration/test_serving_hot_swap.py",
    "integration/test_model_lifecycle.py",
    "integration/test_rollout_analysis.py",
    "integration/test_cli_own_data.py",
    "integration/test_cli_evaluate.py",
    "component/test_ml_baselines.py",
    "integration/test_cli_errors.py",
    "integration/test_ingestion_backfills.py",
    "integration/test_landing_zone.py",
    "integration/test_ingestion_files.py",
    "integration/test_privacy_everywhere.py",
    "integration/test_startup.py",
    "integration/test_dagster_dev.py",
    "integration/test_champion_decisions.py",
    "integration/test_feature_determinism.py",
    "component/test_ml_ladder.py",
    "test_defs.py",
    "integration/test_rfm_summary.py",
    "integration/test_point_in_time.py",
    "integration/test_ingestion_atomic_writes.py",
    "integration/test_scoring_outputs.py",
]


def pytest_collection_modifyitems(config, items) -> None:
    tests_dir = Path(__file__).parent
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}

    def module_rank(item) -> int:
        try:
            name = Path(item.fspath).relative_to(tests_dir).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=module_rank)  # stable: a module's tests keep their order


@dataclass(frozen=True)
class BadLines:
    """A UCI-shaped CSV with every kind of line a load quarantines, a sentinel in every PII column of each."""

    content: bytes  # header and lines
    records: int  # records a reader finds (an unclosed quote swallows the line after it)
    sentinel: str  # in every PII column of every line: no stored or logged byte may hold it
    control: str  # a bad timestamp in a line of its own, not PII: shown wherever quarantined values are
    pii: dict[str, str]  # the spec's pii.columns
    rules: tuple[str, ...]  # the rules the lines break, each at least once


def bad_lines(pii: dict[str, str]) -> BadLines:
    """:class:`BadLines` with the sentinel in the columns ``pii`` hashes or drops (and only there)."""
    sentinel, control = "ZQXS", "CTRLMARK7"
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    good = "536365,85123A,WHITE HEART,6,2010-12-01 08:26,2.55,17850,United Kingdom"
    from clv_platform.ingest.spec import PRESETS

    private = {PRESETS["online_retail"][c] for c in pii}  # the UCI columns the spec hashes or drops

    def mark(column: str, n: int, text: str) -> str:
        return f"{sentinel}{n}{text}" if column in private else f"{n}{text}"

    def line(n: int, **changes: str) -> bytes:
        fields = dict(zip(header.split(","), good.split(","), strict=True))
        fields.update({"InvoiceNo": str(536400 + n), **{c: mark(c, n, f" {fields[c]}") for c in private}, **changes})
        return ",".join(fields.values()).encode()

    lines = [
        line(0),  # accepted
        line(1, Description=mark("Description", 1, " WHITE,") + mark("Description", 1, " HEART")),  # one field too many
        line(2, InvoiceDate=control),
        line(3).replace(b"536403,", b"", 1),  # the invoice number left out: every field shifted left
        line(4, InvoiceDate="2010-13-45 08:26"),
        line(5, UnitPrice="-2.55"),
        line(6, Quantity="six"),
        line(7, InvoiceDate="2031-01-01 08:00"),
        line(8, InvoiceDate="1969-06-01 08:00"),  # before the earliest day a log may start
        line(9, CustomerID=""),
        line(10),
        line(10),  # a duplicate
        line(11, Quantity="0"),
        line(12, UnitPrice="999999"),
        line(13, Description=mark("Description", 13, " CAF\x00")).replace(b"\x00", b"\xc9"),  # not UTF-8
        line(14, CustomerID=mark("CustomerID", 14, "\x00")).replace(b"\x00", b"\xe9"),  # an id not UTF-8
        line(15, Description='"' + mark("Description", 15, " OPEN")),  # an unclosed quote swallows the next line
        line(16),
    ]
    rules = (
        "field_count",
        "valid_encoding",
        "customer_id_present",
        "timestamp_parseable",
        "timestamp_not_in_future",
        "timestamp_in_history",
        "quantity_integer",
        "quantity_in_range",
        "unit_price_non_negative",
        "unit_price_in_range",
        "duplicate_line",
    )
    return BadLines(header.encode() + b"\n" + b"\n".join(lines) + b"\n", len(lines) - 1, sentinel, control, pii, rules)


@pytest.fixture(scope="session")
def pii_bad_lines():
    """``pii_bad_lines(pii)``: :class:`BadLines` for the spec's ``pii.columns``."""
    return bad_lines


ORDER_HEADER = b"invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"
ORDER_LINE = b"536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"


def _gzip_bomb(path: Path, expands_to: int, block: int = 4 << 20) -> Path:
    import gzip

    data = ORDER_LINE * (block // len(ORDER_LINE))
    member = gzip.compress(data, 9)
    with open(path, "wb") as out:
        out.write(gzip.compress(ORDER_HEADER))
        for _ in range(expands_to // len(data) + 1):
            out.write(member)
    return path


@pytest.fixture(scope="session")
def gzip_bomb():
    """``gzip_bomb(path, expands_to, block=4 MiB)``: a CSV of order lines (canonical columns) gzipped to a few KB per
    block, as identical gzip members one after another: ``expands_to`` bytes of text in about 1/300 of that."""
    return _gzip_bomb
