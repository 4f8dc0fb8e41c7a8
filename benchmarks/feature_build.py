"""The dbt feature build against the BTYD core computed by pandas and by one hand-written DuckDB query.

One run, one machine, one generated dataset: every contender runs in its own subprocess, so its
wall time and peak RSS (``ru_maxrss`` of that process, from ``os.wait4``) are its own.

Contenders
----------
``floor``
    One hand-written DuckDB query computing the BTYD core (frequency, recency, T, monetary_value)
    per customer at the scoring cutoff from ``raw.transactions``, with staging's cleaning rules.
    The floor every ratio is taken against.
``dbt_scoring``
    ``dbt run`` of every model customer_features needs, one cutoff (``training_cutoffs: 0``):
    the same columns as the floor plus the other 36 features.
``dbt_full``
    ``dbt run`` of the whole feature layer: customer_features and training_examples with
    4 training cutoffs (5 cutoffs in all) and labels.
``dbt_full_build``
    ``dbt build`` of the same: the models plus every data and unit test.
``rfm_summary``
    pymc-marketing's ``rfm_summary`` on the purchase lines read from Parquet with pandas.
``pandas_groupby``
    The same summary as a hand-written pandas groupby.

The generated data: ``--customers`` customers with ``mean_lines_per_order`` 2.2, about 11.5
transaction lines and 59 web events per customer. Loading the Parquet files into the warehouse's
raw tables is ingestion, not the feature build; its time is printed apart.

Usage::

    uv run python benchmarks/feature_build.py --customers 87000     # ~1M lines
    uv run python benchmarks/feature_build.py --customers 870000    # ~10M lines
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
LINES_PER_ORDER = 2.2

# Staging's rules (stg_shop__transactions.is_purchase), written out by hand.
FLOOR_SQL = """
with lines as (
    select distinct invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country
    from raw.transactions
),
purchases as (
    select trim(customer_id) as customer_id, cast(invoice_date as date) as day, quantity * unit_price as amount
    from lines
    where not starts_with(upper(invoice_no), 'C') and quantity > 0 and unit_price > 0
      and nullif(trim(customer_id), '') is not null
      and coalesce(not (upper(trim(stock_code)) in ({codes}) or upper(trim(stock_code)) like 'GIFT%'), true)
),
days as (
    select customer_id, day, sum(amount) as value from purchases group by customer_id, day
),
ranked as (
    select *, row_number() over (partition by customer_id order by day) as day_number from days
)
select
    customer_id,
    count(*) - 1 as frequency,
    date_diff('day', min(day), max(day)) as recency,
    date_diff('day', min(day), (select max(cast(invoice_date as date)) + 1 from raw.transactions)) as T,
    coalesce(avg(value) filter (where day_number > 1), 0) as monetary_value
from ranked
group by customer_id
"""

RAW_SELECTS = {
    "transactions": """select cast(InvoiceNo as varchar) as invoice_no, cast(StockCode as varchar) as stock_code,
        cast(Description as varchar) as description, cast(Quantity as bigint) as quantity,
        cast(InvoiceDate as timestamp) as invoice_date, cast(UnitPrice as double) as unit_price,
        cast(CustomerID as varchar) as customer_id, cast(Country as varchar) as country""",
    "behavioral_events": "select event_id, session_id, customer_id, event_type, cast(event_timestamp as timestamp) as event_timestamp",
    "customers": "select customer_id, country, acquisition_channel, cast(signup_date as timestamp) as signup_date",
}


def non_product_codes() -> list[str]:
    import yaml

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return [str(code).upper() for code in project["vars"]["non_product_stock_codes"]]


# ---------------------------------------------------------------- contenders (run in a subprocess)


def run_floor(work: Path) -> dict:
    import duckdb

    codes = ", ".join(f"'{code}'" for code in non_product_codes())
    start = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"select count(*), sum(frequency) from ({FLOOR_SQL.format(codes=codes)})").fetchone()
    return {"compute_s": time.perf_counter() - start, "customers": rows[0], "sum_frequency": int(rows[1])}


def _purchase_lines(work: Path):
    import pandas as pd

    codes = set(non_product_codes())
    lines = pd.read_parquet(work / "parquet" / "transactions.parquet").drop_duplicates()
    stock = lines["StockCode"].str.strip().str.upper()
    customer = lines["CustomerID"].str.strip().replace("", None)
    purchase = (
        ~lines["InvoiceNo"].str.upper().str.startswith("C")
        & (lines["Quantity"] > 0)
        & (lines["UnitPrice"] > 0)
        & customer.notna()
        & ~(stock.isin(codes) | stock.str.startswith("GIFT")).fillna(False).astype(bool)
    )
    frame = pd.DataFrame(
        {
            "customer_id": customer[purchase],
            "invoiced_at": lines.loc[purchase, "InvoiceDate"],
            "amount": lines.loc[purchase, "Quantity"] * lines.loc[purchase, "UnitPrice"],
        }
    )
    cutoff = lines["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    return frame, cutoff


def run_rfm_summary(work: Path) -> dict:
    from pymc_marketing.clv.utils import rfm_summary

    start = time.perf_counter()
    frame, cutoff = _purchase_lines(work)
    summary = rfm_summary(frame, "customer_id", "invoiced_at", monetary_value_col="amount", observation_period_end=cutoff)
    return {"compute_s": time.perf_counter() - start, "customers": len(summary), "sum_frequency": int(summary["frequency"].sum())}


def run_pandas_groupby(work: Path) -> dict:
    start = time.perf_counter()
    frame, cutoff = _purchase_lines(work)
    frame["day"] = frame["invoiced_at"].dt.normalize()
    days = frame.groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index()
    days["is_first"] = ~days.duplicated("customer_id")
    summary = days.groupby("customer_id").agg(first=("day", "min"), last=("day", "max"), n=("day", "size"))
    repeat = days[~days["is_first"]].groupby("customer_id")["amount"].mean()
    summary["frequency"] = summary["n"] - 1
    summary["recency"] = (summary["last"] - summary["first"]).dt.days
    summary["T"] = (cutoff - summary["first"]).dt.days
    summary["monetary_value"] = repeat.reindex(summary.index).fillna(0.0)
    return {"compute_s": time.perf_counter() - start, "customers": len(summary), "sum_frequency": int(summary["frequency"].sum())}


def _dbt(work: Path, command: str, training_cutoffs: int, select: str | None = None) -> dict:
    from dbt.cli.main import dbtRunner

    os.environ.update(
        CLV_WAREHOUSE_PATH=str(work / "warehouse.duckdb"),
        DBT_PROFILES_DIR=str(DBT_PROJECT_DIR),
        DBT_TARGET_PATH=str(work / "dbt_target"),
        DBT_LOG_PATH=str(work / "dbt_logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    args = [command, "--project-dir", str(DBT_PROJECT_DIR), "--full-refresh", "--quiet",
            "--vars", json.dumps({"training_cutoffs": training_cutoffs})]
    if select:
        args += ["--select", select]
    start = time.perf_counter()
    result = dbtRunner().invoke(args)
    compute = time.perf_counter() - start
    if not result.success:
        raise SystemExit(f"dbt {command} failed: {result.exception or [str(r.message) for r in result.result]}")
    import duckdb

    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        rows = con.execute("select count(*), sum(frequency) from marts.customer_features").fetchone()
    return {"compute_s": compute, "customers": rows[0], "sum_frequency": int(rows[1])}


def run_dbt_scoring(work: Path) -> dict:
    return _dbt(work, "run", training_cutoffs=0, select="+customer_features")


def run_dbt_full(work: Path) -> dict:
    return _dbt(work, "run", training_cutoffs=4)


def run_dbt_full_build(work: Path) -> dict:
    return _dbt(work, "build", training_cutoffs=4)


CONTENDERS = {
    "floor": run_floor,
    "dbt_scoring": run_dbt_scoring,
    "dbt_full": run_dbt_full,
    "dbt_full_build": run_dbt_full_build,
    "rfm_summary": run_rfm_summary,
    "pandas_groupby": run_pandas_groupby,
}


# ---------------------------------------------------------------- driver


def measure(name: str, work: Path) -> dict:
    """Run one contender in a fresh interpreter; its wall time and its own peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--run", name, "--work", str(work)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed with exit status {status}")
    result = json.loads(output.strip().splitlines()[-1])
    return {"name": name, "wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 2**20, **result}


def prepare(work: Path, customers: int, seed: int) -> dict:
    import duckdb

    from clv_platform.datagen import write_parquet

    start = time.perf_counter()
    written = write_parquet(work / "parquet", customers, chunk_customers=50_000, seed=seed,
                            mean_lines_per_order=LINES_PER_ORDER)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        con.execute("create schema raw")
        for table, select in RAW_SELECTS.items():
            con.execute(f"create table raw.{table} as {select} from read_parquet('{written.paths[table]}')")
    loaded = time.perf_counter() - start
    return {"rows": written.rows, "generate_s": generated, "load_s": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=87_000, help="customers to generate (~11.5 lines each)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(CONTENDERS), help="contenders to leave out")
    parser.add_argument("--run", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="prepare the data in this directory and keep it (reused when present)")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        print(json.dumps(CONTENDERS[args.run](args.work)))
        return
    if args.prepare:
        print(json.dumps(prepare(args.work, args.customers, args.seed)))
        return

    # The driver stays small (stdlib only): a forked child starts with its parent's peak RSS.
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv_feature_bench_"))
    try:
        if (work / "prepared.json").exists():
            data = json.loads((work / "prepared.json").read_text())
        else:
            work.mkdir(parents=True, exist_ok=True)
            output = subprocess.run(
                [sys.executable, __file__, "--prepare", "--work", str(work), "--customers", str(args.customers),
                 "--seed", str(args.seed)], check=True, stdout=subprocess.PIPE, text=True,
            ).stdout
            data = json.loads(output.strip().splitlines()[-1])
            (work / "prepared.json").write_text(json.dumps(data))
        print(f"transaction lines {data['rows']['transactions']:,}; events {data['rows']['behavioral_events']:,}; "
              f"customers {data['rows']['customers']:,}")
        print(f"generate {data['generate_s']:.1f} s; load into raw.* {data['load_s']:.1f} s (not counted below)")
        results = [measure(name, work) for name in CONTENDERS if name not in args.skip]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    floor = next(r for r in results if r["name"] == "floor")
    print("\nwall: the whole subprocess (interpreter, imports, work); work: the call itself, imports excluded")
    print("| contender | wall s | wall x floor | work s | work x floor | peak RSS GiB | customers | sum(frequency) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {r['wall_s']:.1f} | {r['wall_s'] / floor['wall_s']:.2f} | {r['compute_s']:.1f} "
              f"| {r['compute_s'] / floor['compute_s']:.2f} | {r['peak_rss_gib']:.2f} | {r['customers']:,} | {r['sum_frequency']:,} |")
    by_name = {r["name"]: r for r in results}
    for pandas_path in ("rfm_summary", "pandas_groupby"):
        for dbt_path in ("dbt_scoring", "dbt_full"):
            if pandas_path in by_name and dbt_path in by_name:
                wall = by_name[pandas_path]["wall_s"] / by_name[dbt_path]["wall_s"]
                work_ratio = by_name[pandas_path]["compute_s"] / by_name[dbt_path]["compute_s"]
                print(f"{pandas_path} / {dbt_path}: wall {wall:.2f}, work {work_ratio:.2f}")
    counts = {(r["customers"], r["sum_frequency"]) for r in results}
    print("same customers and frequencies everywhere" if len(counts) == 1 else f"DIFFERENT results: {counts}")


if __name__ == "__main__":
    main()
