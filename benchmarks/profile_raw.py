"""Profile the UCI Online Retail log loaded into DuckDB: seconds per profile, at 1x and repeated Nx.

The ratio that travels between machines is against DuckDB's own ``SUMMARIZE`` of the same table
(approximate distinct counts and quartiles, no top values) run in the same process: what the exact
per-column profile costs over the built-in one. The Nx table repeats the log N times, to show how
the profile grows with rows.

Usage::

    uv run python benchmarks/profile_raw.py --csv ../shared/data/online_retail.csv.gz --repeat 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

from clv_platform.ingest.profile import profile_table

LOAD = """
create or replace table raw.transactions as
select "InvoiceNo" as invoice_no, "StockCode" as stock_code, "Description" as description, "Quantity" as quantity,
       "InvoiceDate" as invoice_date, "UnitPrice" as unit_price, "CustomerID" as customer_id, "Country" as country
from read_csv(?, types = {'InvoiceNo': 'VARCHAR', 'StockCode': 'VARCHAR', 'CustomerID': 'VARCHAR', 'InvoiceDate': 'TIMESTAMP'})
"""


def _best_of(runs: int, action) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path("../shared/data/online_retail.csv.gz"), help="the UCI log")
    parser.add_argument("--repeat", type=int, default=10, help="also profile the log repeated this many times")
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(LOAD, [str(args.csv)])
    tables = {"raw.transactions": 1}
    if args.repeat > 1:
        con.execute(f"create table raw.transactions_x{args.repeat} as select t.* from raw.transactions t, range({args.repeat})")
        tables[f"raw.transactions_x{args.repeat}"] = args.repeat

    print(f"duckdb {duckdb.__version__}, {con.execute('select current_setting(?)', ['threads']).fetchone()[0]} threads")
    print("| table | rows | profile s | SUMMARIZE s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for table in tables:
        rows = con.execute(f"select count(*) from {table}").fetchone()[0]
        profile_s = _best_of(args.runs, lambda table=table: profile_table(con, table))
        summarize_s = _best_of(args.runs, lambda table=table: con.execute(f"summarize {table}").fetchall())
        print(f"| {table} | {rows:,} | {profile_s:.2f} | {summarize_s:.2f} | {profile_s / summarize_s:.1f} |")


if __name__ == "__main__":
    main()
