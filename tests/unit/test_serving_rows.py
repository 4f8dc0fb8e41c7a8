"""Posted rows judged by ingestion's rules; a body without events skips the work and gets the same typed frame."""

from datetime import datetime

import pandas as pd
import pytest

from clv_platform.serving.scoring import RequestRuleError, validated_rows

NOW = datetime(2026, 1, 10)
CUTOFF = pd.Timestamp("2025-12-31")
EVENT = {"event_id": "e1", "session_id": "s1", "event_type": "page_view", "event_timestamp": "2025-06-01T10:00:00"}


def test_no_events_give_the_frame_validation_gives_and_a_fresh_copy_each_time():
    first = validated_rows("events", [], "c1", NOW, CUTOFF)
    one = validated_rows("events", [EVENT], "c1", NOW, CUTOFF)
    again = validated_rows("events", [], "c1", NOW, CUTOFF)
    pd.testing.assert_frame_equal(first, again)
    # The same columns and dtypes as validated rows: the feature SQL sees one table shape either way.
    assert list(again.columns) == list(one.columns) and again.dtypes.equals(one.dtypes) and len(again) == 0
    again["customer_id"] = again["customer_id"].astype("object")
    again.loc[0] = None
    assert len(validated_rows("events", [], "c1", NOW, CUTOFF)) == 0


def test_a_broken_event_is_still_refused_after_an_empty_body():
    validated_rows("events", [], "c1", NOW, CUTOFF)
    with pytest.raises(RequestRuleError) as refused:
        validated_rows("events", [{**EVENT, "event_timestamp": "2026-02-01T00:00:00"}], "c1", NOW, CUTOFF)
    assert refused.value.loc[:3] == ["body", "events", 0]
