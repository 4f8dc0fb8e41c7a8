"""The row rules' fast path (every row passes: pandera's report skipped) decides exactly as pandera does.

For every rule of both contracts, a load with one row breaking it is validated twice, with the fast path and with
pandera alone: the same rows are accepted and the same rows quarantined, with the same rule and reason.
"""

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from clv_platform.ingest import validate as rules
from clv_platform.ingest.readers import BAD_LINE, SourceFrame
from clv_platform.ingest.spec import PiiSpec, RuleLimits, SourceSpec

NOW = datetime(2026, 1, 10)
START = date(2020, 1, 1)
LINE = {
    "invoice_no": "1",
    "stock_code": "85123A",
    "description": "LANTERN",
    "quantity": "2",
    "invoice_date": "2025-06-01 10:00:00",
    "unit_price": "3.5",
    "customer_id": "c1",
    "country": "United Kingdom",
}
EVENT = {"event_id": "e1", "session_id": "s1", "customer_id": "c1", "event_type": "page_view", "event_timestamp": "2025-06-01"}
# (contract, the broken row's changes, source spec columns); the broken row follows a good one.
BROKEN = {
    "field_count": ("transactions", {BAD_LINE: "1,2,3"}, {}),
    "valid_encoding": ("transactions", {"description": "LANT\udce9RN"}, {}),
    "customer_id_present": ("transactions", {"customer_id": None}, {}),
    "timestamp_parseable": ("transactions", {"invoice_date": "not a date"}, {}),
    "timestamp_not_in_future": ("transactions", {"invoice_date": "2099-01-01"}, {}),
    "timestamp_in_history": ("transactions", {"invoice_date": "2001-01-01"}, {}),
    "amount_numeric": ("transactions", {"amount": "ten"}, {"amount": "amount"}),
    "quantity_integer": ("transactions", {"quantity": "2.5"}, {}),
    "quantity_in_range": ("transactions", {"quantity": "0"}, {}),
    "unit_price_numeric": ("transactions", {"unit_price": "cheap"}, {}),
    "unit_price_non_negative": ("transactions", {"unit_price": "-4"}, {}),
    "unit_price_in_range": ("transactions", {"unit_price": "1e9"}, {}),
    "invoice_no_present": ("transactions", {"invoice_no": None}, {}),
    "duplicate_line": ("transactions", {"invoice_no": "1"}, {}),
    "event_type_known": ("events", {"event_type": "teleport"}, {}),
    "event_id_unique": ("events", {"event_id": "e1", "session_id": "s2"}, {}),
}


def test_every_rule_of_both_contracts_has_a_broken_row_here():
    assert {r.name for r in (*rules.TRANSACTIONS.rules, *rules.EVENTS.rules)} == set(BROKEN)


def _validate(rule: str, fast: bool, monkeypatch) -> rules.Validated:
    kind, changes, columns = BROKEN[rule]
    contract = rules.TRANSACTIONS if kind == "transactions" else rules.EVENTS
    good = {**(LINE if kind == "transactions" else EVENT)}
    second = {**good, "invoice_no": "2", "event_id": "e2"} if kind == "transactions" else {**good, "event_id": "e2"}
    second = {k: v for k, v in second.items() if k in good}
    if columns:
        good, second = {**good, "amount": "7"}, {**second, "amount": "7"}
    frame = pd.DataFrame([good, {**second, **changes}])
    spec = SourceSpec(columns={**{f: f for f in contract.fields}, **columns}) if columns else SourceSpec()
    source = SourceFrame("t.csv", frame, np.arange(2, 4), undecodable=rule == "valid_encoding")
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(rules, "_every_row_passes", lambda schema, parsed: False)
        return rules.validate([source], contract, spec, RuleLimits(), PiiSpec(), None, NOW, START)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_fast_path_and_pandera_quarantine_the_same_rows_for_the_same_rule(rule, monkeypatch):
    fast, pandera = _validate(rule, True, monkeypatch), _validate(rule, False, monkeypatch)
    assert pandera.rows_quarantined == 1 and rule in set(pandera.quarantine["rule"]), pandera.quarantine
    pd.testing.assert_frame_equal(
        fast.quarantine.drop(columns="_loaded_at", errors="ignore"),
        pandera.quarantine.drop(columns="_loaded_at", errors="ignore"),
    )
    pd.testing.assert_frame_equal(fast.accepted, pandera.accepted)


def test_rows_that_pass_every_rule_skip_pandera_and_are_accepted_alike(monkeypatch):
    frame = pd.DataFrame([LINE, {**LINE, "invoice_no": "2"}])
    calls = []
    real = rules._every_row_passes
    monkeypatch.setattr(rules, "_every_row_passes", lambda schema, parsed: calls.append(real(schema, parsed)) or calls[-1])
    validated = rules.validate(
        [SourceFrame("t.csv", frame, np.arange(2, 4))],
        rules.TRANSACTIONS,
        SourceSpec(),
        RuleLimits(),
        PiiSpec(),
        None,
        NOW,
        START,
    )
    assert calls == [True] and validated.rows_quarantined == 0 and len(validated.accepted) == 2
