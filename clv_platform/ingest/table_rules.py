"""Table rules: whole-load judgements that block everything downstream when they fail.

Each returns ``(passed, description, metadata)``; the Dagster layer turns that into a blocking
asset check. Windows are compared with the equally long window just before them, shifted by whole
weeks so that a Saturday is compared with a Saturday (retail volume has a weekly cycle).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

Verdict = tuple[bool, str, dict]


def previous_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window before ``[start, end)``: as long, shifted back by a whole number of weeks."""
    days = max((end - start).days, 1)
    shift = timedelta(days=math.ceil(days / 7) * 7)
    return start - shift, end - shift


def quarantine_share(rows_in_scope: int, rows_quarantined: int, limit: float) -> Verdict:
    share = rows_quarantined / rows_in_scope if rows_in_scope else 0.0
    meta = {"rows_in_scope": rows_in_scope, "rows_quarantined": rows_quarantined, "quarantined_share": round(share, 6), "limit": limit}
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
