"""The dbt feature build against hand-written DuckDB queries (BTYD core; every feature column) and pandas.

One run, one machine, one generated dataset: every contender runs in its own subprocess, so its
wall time and peak RSS (``ru_maxrss`` of that process, from ``os.wait4``) are its own. Before a dbt
contender, ``dbt parse`` with its vars runs untimed in another subprocess (its time is printed): a
scheduled run reuses the previous run's parse when the vars are the same, so the timed run is that
steady state (interpreter, dbt's imports and its partial-parse check included).

Contenders
----------
``floor``
    One hand-written DuckDB query computing the BTYD core (frequency, recency, T, monetary_value)
    per customer at the scoring cutoff from ``raw.transactions``, with staging's cleaning rules.
``floor_features``
    One hand-written DuckDB query computing every column of ``marts.customer_features`` at the
    scoring cutoff from the raw tables (the same cleaning, order-value cap and windows), stored as
    a table like dbt stores its marts: the floor "for the same columns". After the run its table
    is compared with dbt's ``marts.customer_features`` column by column (relative tolerance 1e-9).
``dbt_scoring``
    ``dbt run --full-refresh`` of every model customer_features needs, one cutoff
    (``training_cutoffs: 0``).
``dbt_scoring_incremental``
    The same without ``--full-refresh`` right after: the daily incremental models rebuild only the
    last ``incremental_lookback_days`` days, the production steady state.
``dbt_full``
    ``dbt run --full-refresh`` of the whole feature layer: customer_features and training_examples
    with 4 training cutoffs (5 cutoffs in all) and labels.
``dbt_full_80pct``
    ``dbt_full`` with DuckDB's own memory limit (80 % of RAM) instead of the profile's default: what
    the lower default costs in time.
``dbt_full_build``
    ``dbt build`` of the same: the models plus every data and unit test.
``rfm_summary``
    pymc-marketing's ``rfm_summary`` on the purchase lines read from Parquet with pandas.
``pandas_groupby``
    The same summary as a hand-written pandas groupby.

The hand-written queries run with the same DuckDB memory limit as the dbt profile
(``CLV_DUCKDB_MEMORY_LIMIT``, default in ``dbt_project/profiles.yml``).

The generated data: ``--customers`` customers with ``mean_lines_per_order`` 2.2, about 11.5
transaction lines and 59 web events per customer. Loading the Parquet files into the warehouse's
raw tables is ingestion, not the feature build; its time is printed apart.

Usage::

    uv run python benchmarks/feature_build.py --customers 87000     # ~1M lines
    uv run python benchmarks/feature_build.py --customers 870000    # ~10M lines
    uv run python benchmarks/feature_build.py --customers 870000 --keep /tmp/bench10m --skip dbt_full_build
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
FLOOR_FEATURES_TABLE = "bench.floor_features"
TOLERANCE = 1e-9

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

# Every column of marts.customer_features at the scoring cutoff, written by hand as one query with
# the same rules (staging's cleaning, the order-value cap, the windows): the floor for the same
# columns. Placeholders are filled from dbt_project.yml's vars by features_floor_sql().
FLOOR_FEATURES_SQL = """
with
lines as (
    select distinct
        trim(invoice_no) as invoice_no, nullif(trim(stock_code), '') as stock_code, trim(description) as description,
        quantity, invoice_date, unit_price, nullif(trim(customer_id), '') as customer_id, trim(country) as country
    from raw.transactions
),
cutoff as (
    select cast(max(cast(invoice_date as date)) + 1 as date) as cutoff_date from raw.transactions
),
product_lines as (
    select
        customer_id, invoice_no, stock_code, country, quantity, cast(invoice_date as date) as day,
        cast(round(cast(quantity as double) * unit_price, 4) as decimal(18, 4)) as amount,
        starts_with(upper(invoice_no), 'C') as is_cancellation,
        not starts_with(upper(invoice_no), 'C') and quantity > 0 and unit_price > 0 as is_purchase
    from lines
    where customer_id is not null
      and not coalesce(upper(stock_code) in ({codes}) or upper(stock_code) like 'GIFT%', false)
      and cast(invoice_date as date) < (select cutoff_date from cutoff)
),
days as (
    select
        customer_id, day,
        count(distinct invoice_no) filter (where is_purchase) as orders,
        count(*) filter (where is_purchase) as purchase_lines,
        cast(coalesce(sum(amount) filter (where is_purchase), 0) as decimal(18, 4)) as gross,
        cast(coalesce(sum(amount) filter (where is_cancellation), 0) as decimal(18, 4)) as cancelled,
        cast(sum(amount) as decimal(18, 4)) as net,
        coalesce(sum(quantity) filter (where is_purchase), 0) as items,
        max(country) as country
    from product_lines
    group by customer_id, day
),
cap as (
    select quantile_cont(cast(gross as double), {cap_quantile}) as cap_value from days where orders > 0
),
capped as (
    select
        days.*,
        least(gross, cast(cap_value as decimal(24, 10))) as gross_capped,
        greatest(cancelled, -cast(cap_value as decimal(24, 10))) as cancelled_capped,
        net - gross - cancelled + least(gross, cast(cap_value as decimal(24, 10)))
            + greatest(cancelled, -cast(cap_value as decimal(24, 10))) as net_capped,
        case when orders > 0 then day - lag(day) over (partition by customer_id, orders > 0 order by day) end as gap,
        (select cutoff_date from cutoff) as cutoff_date
    from days, cap
),
summary as (
    select
        customer_id, any_value(cutoff_date) as cutoff_date,
        count(*) filter (where orders > 0) as purchase_days,
        min(day) filter (where orders > 0) as first_purchase_date,
        max(day) filter (where orders > 0) as last_purchase_date,
        arg_max(country, day) filter (where orders > 0) as last_purchase_country,
        cast(sum(gross_capped) as double) as purchase_value,
        cast(coalesce(sum(gross_capped) filter (where gap is not null), 0) as double) as repeat_value,
        stddev_samp(gap) as gap_stddev,
        cast(sum(cancelled_capped) as double) as cancelled_value,
        sum(orders) as orders, sum(purchase_lines) as purchase_lines, sum(items) as items,
        cast(coalesce(sum(gross_capped) filter (where day >= cutoff_date - 90), 0) as double) as purchase_value_90d,
        {window_sums}
    from capped
    group by customer_id
    having count(*) filter (where orders > 0) > 0
),
products as (
    select
        customer_id,
        count(*) as distinct_products,
        {window_products}
    from (
        select customer_id, stock_code, max(day) as last_day
        from product_lines
        where is_purchase and stock_code is not null
        group by customer_id, stock_code
    )
    group by customer_id
),
events as (
    select
        nullif(trim(customer_id), '') as customer_id, trim(session_id) as session_id,
        lower(trim(event_type)) as event_type, cast(event_timestamp as timestamp) as occurred_at
    from raw.behavioral_events
    where cast(event_timestamp as timestamp) >= (select cast(cutoff_date - 90 as timestamp) from cutoff)
      and cast(event_timestamp as timestamp) < (select cast(cutoff_date as timestamp) from cutoff)
),
sessions as (
    select customer_id, session_id, date_diff('second', min(occurred_at), max(occurred_at)) as seconds,
           count(*) filter (where event_type = 'page_view') as page_views,
           count(*) filter (where event_type = 'search') as searches,
           count(*) filter (where event_type = 'add_to_cart') as add_to_cart
    from events
    where customer_id is not null
    group by customer_id, session_id
),
behaviour as (
    select customer_id, count(*) as sessions, avg(seconds) as seconds_mean,
           sum(page_views) as page_views, sum(searches) as searches, sum(add_to_cart) as add_to_cart
    from sessions
    group by customer_id
),
carts as (
    select cart.customer_id, count(*) as cart_days, count(days.day) as purchased_cart_days
    from (select distinct customer_id, cast(occurred_at as date) as day from events
          where customer_id is not null and event_type = 'add_to_cart') as cart
    left join days on days.customer_id = cart.customer_id and days.day = cart.day and days.orders > 0
    group by cart.customer_id
),
customers as (
    select trim(customer_id) as customer_id, trim(country) as country,
           trim(acquisition_channel) as acquisition_channel, cast(signup_date as date) as signup_date
    from raw.customers
),
joined as (
    select
        s.*, p.distinct_products as n_products, {window_product_columns}, b.*, c.cart_days, c.purchased_cart_days,
        coalesce(k.country, s.last_purchase_country, 'unknown') as customer_country,
        coalesce(k.acquisition_channel, 'unknown') as channel,
        case when k.signup_date < s.first_purchase_date then k.signup_date else s.first_purchase_date end as start_date
    from summary as s
    left join products as p on p.customer_id = s.customer_id
    left join behaviour as b on b.customer_id = s.customer_id
    left join carts as c on c.customer_id = s.customer_id
    left join customers as k on k.customer_id = s.customer_id
)
select
    customer_id, cutoff_date,
    purchase_days - 1 as frequency,
    last_purchase_date - first_purchase_date as recency,
    cutoff_date - first_purchase_date as T,
    case when purchase_days > 1 then repeat_value / (purchase_days - 1) else 0 end as monetary_value,
    {window_columns}
    case when orders_365d > 0 then (orders_90d / 90) / (orders_365d / 365) else 0 end as orders_trend_90d_365d,
    case when spend_365d > 0 then (spend_90d / 90) / (spend_365d / 365) else 0 end as spend_trend_90d_365d,
    case when purchase_days > 1 then (last_purchase_date - first_purchase_date) / (purchase_days - 1) else 0 end
        as purchase_gap_mean_days,
    coalesce(gap_stddev, 0) as purchase_gap_stddev_days,
    purchase_value / orders as basket_value_mean,
    items / orders as basket_items_mean,
    coalesce(n_products, 0) as distinct_products,
    coalesce(n_products, 0) / purchase_lines as product_diversity,
    abs(cancelled_value) / purchase_value as return_rate,
    purchase_value_90d / purchase_value as spend_share_90d,
    coalesce(sessions, 0) as sessions_90d,
    coalesce(seconds_mean, 0) as session_seconds_mean_90d,
    coalesce(page_views, 0) as page_views_90d,
    coalesce(searches, 0) as searches_90d,
    coalesce(add_to_cart, 0) as add_to_cart_90d,
    case when cart_days > 0 then purchased_cart_days / cart_days else 0 end as cart_to_purchase_90d,
    cutoff_date - start_date as tenure_days,
    count(*) over (partition by customer_country) / count(*) over () as country_customer_share,
    {channel_columns}
    customer_country as country,
    channel as acquisition_channel,
    first_purchase_date,
    last_purchase_date
from joined
"""


def _raw_select(table: str, source_names: dict[str, str]) -> str:
    """The canonical columns of ``raw.<table>``, typed as the warehouse stores them, from the benchmark's files."""
    from clv_platform.raw_tables import TABLES

    columns = TABLES[f"raw.{table}"].fields
    return "select " + ", ".join(f"cast({source_names.get(c.name, c.name)} as {c.warehouse_type}) as {c.name}" for c in columns)


def raw_selects() -> dict[str, str]:
    from clv_platform.ingest.spec import PRESETS

    return {
        "transactions": _raw_select("transactions", PRESETS["online_retail"]),
        "behavioral_events": _raw_select("behavioral_events", {}),
        "customers": _raw_select("customers", {}),
    }


def non_product_codes() -> list[str]:
    from clv_platform import settings

    return [str(code).upper() for code in settings.dbt_var_defaults()["non_product_stock_codes"]]


def duckdb_memory_limit() -> str:
    """The DuckDB memory limit the dbt profile gives the warehouse, for the hand-written queries too."""
    import re

    profile = (DBT_PROJECT_DIR / "profiles.yml").read_text()
    default = re.search(r"env_var\('CLV_DUCKDB_MEMORY_LIMIT', '([^']+)'\)", profile).group(1)
    return os.environ.get("CLV_DUCKDB_MEMORY_LIMIT", default)


def features_floor_sql() -> str:
    from clv_platform import settings
    from clv_platform.ml.features import ACQUISITION_CHANNELS

    windows = (30, 90, 365)
    variables = settings.dbt_var_defaults()
    sums = [
        f"coalesce(sum({column}) filter (where day >= cutoff_date - {days}), 0)"
        f"{'::double' if name == 'spend' else ''} as {name}_{days}d"
        for days in windows
        for column, name in (("orders", "orders"), ("net_capped", "spend"), ("items", "items"))
    ]
    products = [f"count(*) filter (where last_day >= (select cutoff_date from cutoff) - {days}) as n_{days}d" for days in windows]
    columns = [f"{name}_{days}d," for name in ("orders", "spend", "items") for days in windows]
    columns += [f"coalesce(n_{days}d, 0) as distinct_products_{days}d," for days in windows]
    channels = [f"cast(channel = '{channel}' as integer) as channel_{channel}," for channel in ACQUISITION_CHANNELS]
    return FLOOR_FEATURES_SQL.format(
        codes=", ".join(f"'{code}'" for code in non_product_codes()),
        cap_quantile=variables["order_value_cap_quantile"],
        window_sums=",\n        ".join(sums),
        window_products=",\n        ".join(products),
        window_product_columns=", ".join(f"p.n_{days}d" for days in windows),
        window_columns="\n    ".join(columns),
        channel_columns="\n    ".join(channels),
    )


# ---------------------------------------------------------------- contenders (run in a subprocess)


def run_floor(work: Path) -> dict:
    import duckdb

    codes = ", ".join(f"'{code}'" for code in non_product_codes())
    start = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True, config={"memory_limit": duckdb_memory_limit()}) as con:
        rows = con.execute(f"select count(*), sum(frequency) from ({FLOOR_SQL.format(codes=codes)})").fetchone()
    return {"compute_s": time.perf_counter() - start, "customers": rows[0], "sum_frequency": int(rows[1])}


def run_floor_features(work: Path) -> dict:
    """Every customer_features column in one hand-written query, stored as a table like dbt stores its marts."""
    import duckdb

    start = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb"), config={"memory_limit": duckdb_memory_limit()}) as con:
        con.execute("create schema if not exists bench")
        con.execute(f"create or replace table {FLOOR_FEATURES_TABLE} as {features_floor_sql()}")
        rows = con.execute(f"select count(*), sum(frequency) from {FLOOR_FEATURES_TABLE}").fetchone()
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


# Set by --parse: the dbt contenders run `dbt parse` with their vars and environment instead of their command.
PARSE_ONLY = False


def _dbt(
    work: Path,
    command: str,
    training_cutoffs: int,
    select: str | None = None,
    full_refresh: bool = True,
    memory_limit: str | None = None,
) -> dict:
    from dbt.cli.main import dbtRunner

    os.environ.update(
        CLV_WAREHOUSE_PATH=str(work / "warehouse.duckdb"),
        DBT_PROFILES_DIR=str(DBT_PROJECT_DIR),
        DBT_TARGET_PATH=str(work / "dbt_target"),
        DBT_LOG_PATH=str(work / "dbt_logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    if memory_limit:
        os.environ["CLV_DUCKDB_MEMORY_LIMIT"] = memory_limit
    # A year's horizon, cutoffs 90 days apart: the workload RESULTS.md measured, whatever the project's defaults.
    dbt_vars = ["--vars", json.dumps({"training_cutoffs": training_cutoffs, "horizon_days": 365, "cutoff_spacing_days": 90})]
    if PARSE_ONLY:
        start = time.perf_counter()
        result = dbtRunner().invoke(["parse", "--project-dir", str(DBT_PROJECT_DIR), "--quiet", *dbt_vars])
        if not result.success:
            raise SystemExit(f"dbt parse failed: {result.exception}")
        return {"compute_s": time.perf_counter() - start}
    args = [command, "--project-dir", str(DBT_PROJECT_DIR), *(["--full-refresh"] if full_refresh else []), "--quiet", *dbt_vars]
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


def run_dbt_scoring_incremental(work: Path) -> dict:
    return _dbt(work, "run", training_cutoffs=0, select="+customer_features", full_refresh=False)


def run_dbt_full(work: Path) -> dict:
    return _dbt(work, "run", training_cutoffs=4)


def run_dbt_full_80pct(work: Path) -> dict:
    return _dbt(work, "run", training_cutoffs=4, memory_limit="80%")


def run_dbt_full_build(work: Path) -> dict:
    return _dbt(work, "build", training_cutoffs=4)


CONTENDERS = {
    "floor": run_floor,
    "floor_features": run_floor_features,
    "dbt_scoring": run_dbt_scoring,
    "dbt_scoring_incremental": run_dbt_scoring_incremental,
    "dbt_full": run_dbt_full,
    "dbt_full_80pct": run_dbt_full_80pct,
    "dbt_full_build": run_dbt_full_build,
    "rfm_summary": run_rfm_summary,
    "pandas_groupby": run_pandas_groupby,
}


def check_features(work: Path) -> dict:
    """Compare the hand-written features with dbt's marts.customer_features, column by column."""
    import duckdb

    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        dbt_columns = [row[0] for row in con.execute("describe marts.customer_features").fetchall()]
        floor_columns = {row[0]: row[1] for row in con.execute(f"describe {FLOOR_FEATURES_TABLE}").fetchall()}
        missing = sorted(set(dbt_columns) - set(floor_columns))
        compared = [c for c in dbt_columns if c in floor_columns and c != "customer_id"]
        counts = con.execute(
            f"""select count(*) filter (where d.customer_id is null), count(*) filter (where f.customer_id is null), count(*)
                from marts.customer_features d full join {FLOOR_FEATURES_TABLE} f on f.customer_id = d.customer_id"""
        ).fetchone()
        differing = {}
        for column in compared:
            numeric = floor_columns[column] in ("BIGINT", "INTEGER", "DOUBLE", "HUGEINT", "DECIMAL", "FLOAT")
            # Money is exact in both; the floor's stddev_samp and avg add floating point in DuckDB's order.
            different = (
                f'abs(d."{column}" - f."{column}") > {TOLERANCE} * greatest(1, abs(d."{column}"))'
                if numeric
                else f'd."{column}" is distinct from f."{column}"'
            )
            (count,) = con.execute(
                f"""select count(*) from marts.customer_features d join {FLOOR_FEATURES_TABLE} f
                    on f.customer_id = d.customer_id where {different} or (d.\"{column}\" is null) <> (f.\"{column}\" is null)"""
            ).fetchone()
            if count:
                differing[column] = count
    return {
        "columns_compared": len(compared),
        "missing_columns": missing,
        "only_in_floor": counts[0],
        "only_in_dbt": counts[1],
        "rows": counts[2],
        "differing_rows_by_column": differing,
    }


# ---------------------------------------------------------------- driver


def measure(name: str, work: Path) -> dict:
    """Run one contender in a fresh interpreter; its wall time and its own peak RSS.

    A dbt contender first parses the project with its vars in another interpreter, not timed: a
    scheduled run finds the parse of the previous run with the same vars and reuses it (dbt's
    partial parsing), so the timed run is the steady state. The parse's own time is reported apart.
    """
    parse_s = None
    if name.startswith("dbt_"):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--run", name, "--parse", "--work", str(work)], check=True, stdout=subprocess.DEVNULL
        )
        parse_s = time.perf_counter() - start
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--run", name, "--work", str(work)], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed with exit status {status}")
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "name": name,
        "wall_s": wall,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "parse_s": parse_s,
        **result,
    }


def prepare(work: Path, customers: int, seed: int) -> dict:
    import duckdb

    from clv_platform.datagen import write_parquet

    start = time.perf_counter()
    written = write_parquet(work / "parquet", customers, chunk_customers=50_000, seed=seed, mean_lines_per_order=LINES_PER_ORDER)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        con.execute("create schema raw")
        for table, select in raw_selects().items():
            con.execute(f"create table raw.{table} as {select} from read_parquet('{written.paths[table]}')")
    loaded = time.perf_counter() - start
    return {"rows": written.rows, "generate_s": generated, "load_s": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=87_000, help="customers to generate (~11.5 lines each)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(CONTENDERS), help="contenders to leave out")
    parser.add_argument("--run", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--parse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="prepare the data in this directory and keep it (reused when present)")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        global PARSE_ONLY
        PARSE_ONLY = args.parse
        print(json.dumps(CONTENDERS[args.run](args.work)))
        return
    if args.prepare:
        print(json.dumps(prepare(args.work, args.customers, args.seed)))
        return
    if args.check:
        print(json.dumps(check_features(args.work)))
        return

    # The driver stays small (stdlib only): a forked child starts with its parent's peak RSS.
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv_feature_bench_"))
    try:
        if (work / "prepared.json").exists():
            data = json.loads((work / "prepared.json").read_text())
        else:
            work.mkdir(parents=True, exist_ok=True)
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--prepare",
                    "--work",
                    str(work),
                    "--customers",
                    str(args.customers),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
            data = json.loads(output.strip().splitlines()[-1])
            (work / "prepared.json").write_text(json.dumps(data))
        print(
            f"transaction lines {data['rows']['transactions']:,}; events {data['rows']['behavioral_events']:,}; "
            f"customers {data['rows']['customers']:,}"
        )
        print(f"generate {data['generate_s']:.1f} s; load into raw.* {data['load_s']:.1f} s (not counted below)")
        results = [measure(name, work) for name in CONTENDERS if name not in args.skip]
        ran = {r["name"] for r in results}
        check = None
        if "floor_features" in ran and ran & {"dbt_scoring", "dbt_scoring_incremental", "dbt_full", "dbt_full_build"}:
            output = subprocess.run(
                [sys.executable, __file__, "--check", "--work", str(work)], check=True, stdout=subprocess.PIPE, text=True
            ).stdout
            check = json.loads(output.strip().splitlines()[-1])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    by_name = {r["name"]: r for r in results}
    floors = [name for name in ("floor", "floor_features") if name in by_name]
    print("\nwall: the whole subprocess (interpreter, imports, work); work: the call itself, imports excluded;")
    print("load: the 1-minute load average when the contender started / ended (2 cores);")
    print("dbt parse s: the untimed `dbt parse` with the same vars before a dbt contender (the whole interpreter)")
    header = [
        "contender",
        "wall s",
        *(f"wall x {f}" for f in floors),
        "work s",
        *(f"work x {f}" for f in floors),
        "peak RSS GiB",
        "load",
        "dbt parse s",
        "customers",
        "sum(frequency)",
    ]
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for r in results:
        cells = [
            r["name"],
            f"{r['wall_s']:.1f}",
            *(f"{r['wall_s'] / by_name[f]['wall_s']:.2f}" for f in floors),
            f"{r['compute_s']:.1f}",
            *(f"{r['compute_s'] / by_name[f]['compute_s']:.2f}" for f in floors),
            f"{r['peak_rss_gib']:.2f}",
            f"{r['load_start']:.1f} / {r['load_end']:.1f}",
            "" if r["parse_s"] is None else f"{r['parse_s']:.1f}",
            f"{r['customers']:,}",
            f"{r['sum_frequency']:,}",
        ]
        print("| " + " | ".join(cells) + " |")
    for pandas_path in ("rfm_summary", "pandas_groupby"):
        for fast_path in ("floor", "floor_features", "dbt_scoring", "dbt_scoring_incremental", "dbt_full"):
            if pandas_path in by_name and fast_path in by_name:
                wall = by_name[pandas_path]["wall_s"] / by_name[fast_path]["wall_s"]
                work_ratio = by_name[pandas_path]["compute_s"] / by_name[fast_path]["compute_s"]
                print(f"{pandas_path} / {fast_path}: wall {wall:.2f}, work {work_ratio:.2f}")
    counts = {(r["customers"], r["sum_frequency"]) for r in results}
    print("same customers and frequencies everywhere" if len(counts) == 1 else f"DIFFERENT results: {counts}")
    if check is not None:
        print(f"floor_features against marts.customer_features (tolerance {TOLERANCE:g} relative): {json.dumps(check)}")


if __name__ == "__main__":
    main()
