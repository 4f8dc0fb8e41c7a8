"""Per-column profiles of warehouse tables, computed in DuckDB, and their HTML and tabular renderings.

A profile is one row per column: type, row and null counts, exact distinct count, min and max,
mean and sample standard deviation (numeric columns), the 1st, 25th, 50th, 75th and 99th
percentiles (numeric and temporal columns) and the most frequent values with their counts.

Everything is computed by DuckDB, two queries per column (one aggregate pass, one ``group by``
for the top values, skipped when more than ``top_n`` values are all distinct), so only one
column's values are held at a time. Distinct counts are exact (``count(distinct ...)``): at the raw layer's sizes (millions
of rows) that costs well under a second a column; ``approx_count_distinct`` is the swap if tables
reach hundreds of millions of rows.

Example
-------
>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("create table t as select * from (values ('UK', 1), ('UK', 2), ('DE', null)) v(country, n)")
>>> profile = profile_table(con, "t")
>>> profile[["column", "non_null", "nulls", "distinct"]].values.tolist()
[['country', 3, 0, 2], ['n', 2, 1, 2]]
>>> profile.loc[0, "top_values"]
'UK: 2 (66.7%); DE: 1 (33.3%)'
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal

import pandas as pd

QUANTILES = {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}

PROFILE_COLUMNS = [
    "column",
    "type",
    "rows",
    "non_null",
    "nulls",
    "null_share",
    "distinct",
    "min",
    "max",
    "mean",
    "std",
    *QUANTILES,
    "top_values",
]

_NUMERIC_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
}
_NESTED = re.compile(r"(\[\d*\]$)|^(STRUCT|MAP|UNION)\b")
_MAX_VALUE_CHARS = 40


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _split_table(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def qualified_name(table: str) -> str:
    """``schema.table`` (or ``table``) with each part quoted for SQL."""
    schema, name = _split_table(table)
    return f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)


def table_exists(con, table: str) -> bool:
    """Whether ``table`` (``schema.name``, or a bare name in any schema) is a table or view in ``con``."""
    schema, name = _split_table(table)
    query = "select count(*) from information_schema.tables where table_name = ?"
    params = [name]
    if schema:
        query += " and table_schema = ?"
        params.append(schema)
    return con.execute(query, params).fetchone()[0] > 0


def _kind(duckdb_type: str) -> str:
    """``numeric``, ``temporal``, ``nested`` or ``other`` (strings, booleans, blobs, uuids...)."""
    upper = duckdb_type.upper()
    if _NESTED.search(upper):
        return "nested"
    if upper in _NUMERIC_TYPES or upper.startswith("DECIMAL"):
        return "numeric"
    if upper.startswith(("TIMESTAMP", "DATE", "TIME")):
        return "temporal"
    return "other"


def _column_stats(con, table_sql: str, column: str, kind: str, rows: int, top_n: int) -> dict:
    col = _quote(column)
    # Nested values have no order: compare and count them by their text form.
    value = f"{col}::varchar" if kind == "nested" else col
    aggregates = [f"count({col})", f"count(distinct {value})", f"min({value})", f"max({value})"]
    quantile_list = "[" + ", ".join(str(q) for q in QUANTILES.values()) + "]"
    if kind == "numeric":
        aggregates += [f"avg({col}::double)", f"stddev_samp({col}::double)", f"quantile_cont({col}::double, {quantile_list})"]
    elif kind == "temporal":
        # An observed value, not an interpolated instant.
        aggregates += ["null", "null", f"quantile_disc({col}, {quantile_list})"]
    else:
        aggregates += ["null", "null", "null"]
    non_null, distinct, low, high, mean, std, quantiles = con.execute(
        f"select {', '.join(aggregates)} from {table_sql}"
    ).fetchone()
    stats = {
        "column": column,
        "rows": rows,
        "non_null": int(non_null),
        "nulls": rows - int(non_null),
        "null_share": (rows - int(non_null)) / rows if rows else math.nan,
        "distinct": int(distinct),
        "min": low,
        "max": high,
        "mean": math.nan if mean is None else float(mean),
        "std": math.nan if std is None else float(std),
        **dict(zip(QUANTILES, quantiles or [None] * len(QUANTILES), strict=True)),
    }
    if non_null == 0:
        stats["top_values"] = ""
    elif distinct == non_null and distinct > top_n:
        stats["top_values"] = f"every value distinct ({int(non_null):,})"
    else:
        top = con.execute(
            f"select {value} as _profile_value, count(*) as _profile_count from {table_sql} "
            f"where {col} is not null group by all order by _profile_count desc, _profile_value limit {int(top_n)}"
        ).fetchall()
        stats["top_values"] = format_top_values(top, rows=rows, distinct=int(distinct))
    return stats


def profile_table(con, table: str, top_n: int = 5) -> pd.DataFrame:
    """One row per column of ``table`` with its statistics (see :data:`PROFILE_COLUMNS`).

    Parameters
    ----------
    con
        A DuckDB connection.
    table
        ``schema.name`` (or a bare name) of a table or view.
    top_n
        How many of the most frequent values to list per column (ties broken by value).

    Returns
    -------
    pandas.DataFrame
        ``column, type, rows, non_null, nulls, null_share, distinct, min, max, mean, std,
        p01, p25, p50, p75, p99, top_values``. ``min``/``max`` and the percentiles keep the
        column's own Python type (numbers, datetimes, strings); ``mean``/``std`` are NaN and the
        percentiles None where they do not apply. Numeric percentiles are interpolated
        (``quantile_cont``), temporal ones are observed values (``quantile_disc``). ``null_share``
        and the shares in ``top_values`` are fractions of all rows, nulls included.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    if not table_exists(con, table):
        raise ValueError(f"table {table} does not exist")
    table_sql = qualified_name(table)
    columns = con.execute(f"describe {table_sql}").fetchall()
    rows = int(con.execute(f"select count(*) from {table_sql}").fetchone()[0])
    records = []
    for name, duckdb_type, *_ in columns:
        stats = _column_stats(con, table_sql, name, _kind(duckdb_type), rows, top_n)
        records.append({**stats, "type": duckdb_type})
    return pd.DataFrame.from_records(records, columns=PROFILE_COLUMNS)


def profile_tables(con, tables: Iterable[str], top_n: int = 5) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Profile each of ``tables`` that exists; return the profiles by table and the absent tables."""
    profiles, absent = {}, []
    for table in tables:
        if table_exists(con, table):
            profiles[table] = profile_table(con, table, top_n=top_n)
        else:
            absent.append(table)
    return profiles, absent


def format_value(value) -> str:
    """A statistic as text: thousands separators, 4 significant digits, ISO times, long strings cut."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
        if math.isinf(number):
            return str(number)
        if number == int(number) and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:,.2f}" if abs(number) >= 1000 else f"{number:.4g}"
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def format_share(share: float) -> str:
    """A fraction as a percentage with one decimal; tiny non-zero shares as ``<0.1%``."""
    if share is None or math.isnan(share):
        return ""
    if 0 < share < 0.0005:
        return "<0.1%"
    return f"{share:.1%}"


def format_top_values(top: Sequence[tuple[object, int]], rows: int, distinct: int) -> str:
    """``UK: 10,342 (82.1%); DE: 1,200 (9.5%); +3 more values`` from ``(value, count)`` pairs."""
    parts = [f"{format_value(value)}: {count:,} ({format_share(count / rows)})" for value, count in top]
    if distinct > len(top):
        parts.append(f"+{distinct - len(top):,} more values")
    return "; ".join(parts)


def display_frame(profile: pd.DataFrame) -> pd.DataFrame:
    """The profile as text, one column per statistic a reader scans: the body of the HTML and markdown tables."""
    return pd.DataFrame(
        {
            "column": profile["column"],
            "type": profile["type"],
            "non-null": [f"{n:,}" for n in profile["non_null"]],
            "nulls": [
                f"{n:,} ({format_share(s)})" if n else "0" for n, s in zip(profile["nulls"], profile["null_share"], strict=True)
            ],
            "distinct": [f"{n:,}" for n in profile["distinct"]],
            "min": profile["min"].map(format_value),
            **{q: profile[q].map(format_value) for q in QUANTILES},
            "max": profile["max"].map(format_value),
            "mean": profile["mean"].map(format_value),
            "std": profile["std"].map(format_value),
            "top values": profile["top_values"],
        }
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1f2933; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d9e2ec; padding-bottom: .25rem; }
.meta, .summary { color: #52606d; }
table { border-collapse: collapse; font-size: .85rem; margin-top: .5rem; }
th, td { border: 1px solid #d9e2ec; padding: .3rem .5rem; vertical-align: top; text-align: left; }
th { background: #f0f4f8; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.top { max-width: 36rem; }
tr:nth-child(even) td { background: #fafbfc; }
"""
_TEXT_COLUMNS = {"column", "type", "top values"}


def _anchor(table: str) -> str:
    return "table-" + re.sub(r"[^a-z0-9]+", "-", table.lower()).strip("-")


def render_profile_html(profiles: Mapping[str, pd.DataFrame], title: str, generated_at, notes: Sequence[str] = ()) -> str:
    """A self-contained HTML page (inline CSS, no scripts): a section per table with its column statistics.

    Every value is HTML-escaped. ``notes`` are shown under the title (for example, tables that
    were absent and so not profiled).
    """
    stamp = generated_at.isoformat(sep=" ", timespec="seconds") if isinstance(generated_at, datetime) else str(generated_at)
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {esc(stamp)}. Shares are of all rows, nulls included; numeric percentiles '
        "are interpolated, timestamp percentiles are observed values; distinct counts are exact.</p>",
    ]
    out += [f'<p class="meta">{esc(note)}</p>' for note in notes]
    if profiles:
        out.append("<ul>")
        for table, profile in profiles.items():
            rows = int(profile["rows"].iloc[0]) if len(profile) else 0
            out.append(f'<li><a href="#{_anchor(table)}">{esc(table)}</a>: {rows:,} rows</li>')
        out.append("</ul>")
    for table, profile in profiles.items():
        rows = int(profile["rows"].iloc[0]) if len(profile) else 0
        shown = display_frame(profile)
        out.append(f'<section id="{_anchor(table)}"><h2>{esc(table)}</h2>')
        out.append(f'<p class="summary">{rows:,} rows, {len(profile)} columns</p>')
        out.append("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in shown.columns) + "</tr></thead><tbody>")
        for record in shown.itertuples(index=False):
            cells = []
            for name, cell in zip(shown.columns, record, strict=True):
                css = "top" if name == "top values" else ("" if name in _TEXT_COLUMNS else "num")
                cells.append(f'<td class="{css}">{esc(str(cell))}</td>' if css else f"<td>{esc(str(cell))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table></section>")
    out.append("</body></html>")
    return "\n".join(out)
