"""Table rules: whole-load judgements that block everything downstream when they fail.

Each returns ``(passed, description, metadata)``; the Dagster layer turns that into a blocking
asset check. A load's new rows are judged while staged, against the published history, before
they replace anything (write-audit-publish): ``staged_*_verdicts`` run those queries. Windows
are compared with the equally long window just before them, shifted by whole weeks so that a
Saturday is compared with a Saturday (retail volume has a weekly cycle).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from clv_platform.ingest.profile import table_exists
from clv_platform.ingest.spec import RuleLimits

Verdict = tuple[bool, str, dict]


def previous_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window before ``[start, end)``: as long, shifted back by a whole number of weeks."""
    days = max((end - start).days, 1)
    shift = timedelta(days=math.ceil(days / 7) * 7)
    return start - shift, end - shift


def quarantine_share(rows_in_scope: int, rows_quarantined: int, limit: float) -> Verdict:
    share = rows_quarantined / rows_in_scope if rows_in_scope else 0.0
    meta = {
        "rows_in_scope": rows_in_scope,
        "rows_quarantined": rows_quarantined,
        "quarantined_share": round(share, 6),
        "limit": limit,
    }
    if share > limit:
        return False, f"{share:.1%} of the rows were quarantined, above the limit of {limit:.0%}", meta
    return True, f"{share:.1%} of the rows quarantined (limit {limit:.0%})", meta


def ratio_change(name: str, current: float | None, previous: float | None, limit: float, unit: str) -> Verdict:
    """Fails when ``current`` is more than ``limit`` times ``previous`` or less than 1/``limit`` of it."""
    meta = {f"current_{unit}": current, f"previous_{unit}": previous, "limit_ratio": limit}
    if not previous or current is None:
        return True, f"no previous window to compare {name} with", meta
    ratio = current / previous if previous else math.inf
    meta["ratio"] = round(ratio, 4)
    if ratio > limit or ratio < 1 / limit:
        return False, f"{name} changed {ratio:.2f}x against the previous window (limit {limit:g}x either way)", meta
    return True, f"{name} changed {ratio:.2f}x (limit {limit:g}x)", meta


def new_categories(name: str, counts: dict[str, int], known: set[str], limit: float) -> Verdict:
    """Fails when values never seen before make up more than ``limit`` of the rows."""
    total = sum(counts.values())
    meta = {"values": len(counts), "known_values": len(known), "limit_share": limit}
    if not known:
        return True, f"no earlier {name} values to compare with", meta
    new = {value: n for value, n in counts.items() if value not in known}
    share = sum(new.values()) / total if total else 0.0
    meta.update({"new_values": sorted(new), "new_share": round(share, 6)})
    if share > limit:
        return False, f"new {name} values {sorted(new)} hold {share:.1%} of the rows (limit {limit:.0%})", meta
    return True, f"{len(new)} new {name} value(s), {share:.1%} of the rows (limit {limit:.0%})", meta


def _staged_counts(con, staged: str, staged_quarantine: str) -> tuple[int, int]:
    return con.execute(f"select (select count(*) from {staged}), (select count(*) from {staged_quarantine})").fetchone()


def staged_transaction_verdicts(
    con, staged: str, staged_quarantine: str, published: str, start: datetime, end: datetime, limits: RuleLimits
) -> dict[str, Verdict]:
    """Quarantine share, volume, order value and countries of the staged window ``[start, end)``.

    ``staged``/``staged_quarantine`` hold the new version of the window; ``published`` the history it is
    compared with (the previous window, and the countries seen outside this window).
    """
    days = max((end - start).days, 1)
    accepted, quarantined = _staged_counts(con, staged, staged_quarantine)
    order_value = """
        with lines as (select * from {table} {where}),
        orders as (select invoice_no, sum(quantity * unit_price) as value from lines
                   where quantity > 0 and unit_price > 0 group by invoice_no)
        select (select count(*) from lines), (select avg(value) from orders)
    """
    previous_rows, previous_aov, known = None, None, set()
    if table_exists(con, published):
        prev_start, prev_end = previous_window(start, end)
        previous_rows, previous_aov = con.execute(
            order_value.format(table=published, where="where invoice_date >= ? and invoice_date < ?"), [prev_start, prev_end]
        ).fetchone()
        known = {
            r[0]
            for r in con.execute(
                f"select distinct country from {published} where (invoice_date < ? or invoice_date >= ?) and country is not null",
                [start, end],
            ).fetchall()
        }
    _, current_aov = con.execute(order_value.format(table=staged, where="")).fetchone()
    countries = dict(con.execute(f"select country, count(*) from {staged} where country is not null group by country").fetchall())
    return {
        "quarantine_share_within_limit": quarantine_share(accepted + quarantined, quarantined, limits.max_quarantine_share),
        "volume_change_within_limit": ratio_change(
            "mean daily lines",
            accepted / days if accepted else 0.0,
            (previous_rows / days) if previous_rows else None,
            limits.max_volume_ratio,
            "lines_per_day",
        ),
        "mean_order_value_stable": ratio_change(
            "mean order value",
            float(current_aov) if current_aov is not None else None,
            previous_aov,
            limits.max_order_value_ratio,
            "order_value",
        ),
        "countries_stable": new_categories("country", countries, known, limits.max_new_category_share),
    }


def staged_event_verdicts(con, staged: str, staged_quarantine: str, limits: RuleLimits) -> dict[str, Verdict]:
    """The quarantine share of the staged events."""
    accepted, quarantined = _staged_counts(con, staged, staged_quarantine)
    share = quarantine_share(accepted + quarantined, quarantined, limits.max_quarantine_share)
    return {"events_quarantine_share_within_limit": share}


def staged_channel_verdict(con, staged: str, published: str, limits: RuleLimits) -> Verdict:
    """Acquisition channels of the staged customers against those of the published table."""
    known = (
        {r[0] for r in con.execute(f"select distinct acquisition_channel from {published}").fetchall()}
        if table_exists(con, published)
        else set()
    )
    counts = dict(
        con.execute(
            f"select acquisition_channel, count(*) from {staged} "
            "where acquisition_channel is not null group by acquisition_channel"
        ).fetchall()
    )
    return new_categories("acquisition channel", counts, known, limits.max_new_category_share)
