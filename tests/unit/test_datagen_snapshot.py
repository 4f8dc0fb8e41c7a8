"""The built-in dataset is generated once per set of options; later readers get the same rows from its snapshot."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from clv_platform.datagen import generator
from clv_platform.datagen.generator import TABLES
from clv_platform.datagen.snapshot import generated_once, snapshot_key

OPTIONS = {
    "n_customers": 300,
    "years": 1,
    "end_date": "2025-06-30",
    "seed": 5,
    "spend_multiplier": 1.0,
    "purchase_rate_multiplier": 1.0,
}


def test_generated_once_then_read_back_identical(tmp_path):
    expected = generator.generate(**OPTIONS)
    first = generated_once(tmp_path, OPTIONS)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(first, name), getattr(expected, name), check_exact=True)
    # The second call reads the snapshot rather than generating: cut the snapshot and it returns the cut rows.
    customers = tmp_path / snapshot_key(OPTIONS) / "customers.parquet"
    pq.write_table(pq.read_table(customers).slice(0, 10), customers)
    assert len(generated_once(tmp_path, OPTIONS).customers) == 10
    # Each reader gets its own frames: one changing them changes no other's.
    first.transactions.loc[:, "Quantity"] = 0
    assert generated_once(tmp_path, OPTIONS).transactions["Quantity"].equals(expected.transactions["Quantity"])
    assert [p.name for p in tmp_path.iterdir()] == [snapshot_key(OPTIONS)]  # no partial snapshot left


def test_other_options_are_another_snapshot(tmp_path):
    generated_once(tmp_path, OPTIONS)
    drifted = generated_once(tmp_path, {**OPTIONS, "spend_multiplier": 1.3})
    assert len(list(tmp_path.iterdir())) == 2
    pd.testing.assert_frame_equal(drifted.transactions, generator.generate(**{**OPTIONS, "spend_multiplier": 1.3}).transactions)


def test_builtin_dataset_is_the_snapshot_under_the_state_dir(tmp_path, monkeypatch):
    from clv_platform.ingest.spec import GeneratorOptions
    from clv_platform.lib.ingestion import builtin_dataset

    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    data = builtin_dataset(GeneratorOptions(**OPTIONS))
    pd.testing.assert_frame_equal(data.customers, generator.generate(**OPTIONS).customers, check_exact=True)
    assert [p.name for p in (tmp_path / "generated").iterdir()] == [snapshot_key(OPTIONS)]
