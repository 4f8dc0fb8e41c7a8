"""The run tags of a single-run partition range: Dagster reads the range the platform writes."""

from __future__ import annotations

import dagster as dg

from clv_platform.lib.ingestion import partition_range_tags


def test_dagster_reads_the_range_from_the_tags():
    request = dg.RunRequest(tags=partition_range_tags("2025-01-01", "2025-01-31T00:00:00"))
    assert request.partition_key_range == dg.PartitionKeyRange("2025-01-01", "2025-01-31")
