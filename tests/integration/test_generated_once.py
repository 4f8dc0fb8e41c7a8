"""A load from the built-in generator generates the dataset once: the CLI's date range, raw/transactions,
raw/behavioral_events and raw/customers all read the same snapshot."""

from __future__ import annotations

import pytest

from clv_platform.datagen import generator

OPTIONS = {"n_customers": 300, "years": 1, "end_date": "2025-06-30", "seed": 5}


@pytest.fixture
def generations(monkeypatch) -> list[int]:
    """The real generator, counted: one entry per generation."""
    calls: list[int] = []
    real = generator.iter_tables

    def counted(n_customers, **kwargs):
        calls.append(n_customers)
        return real(n_customers, **kwargs)

    monkeypatch.setattr(generator, "iter_tables", counted)
    return calls


def test_a_generator_load_generates_once(clv_state, tmp_path, generations):
    import dagster as dg
    import duckdb
    import yaml
    from dagster_aws.s3 import S3Resource
    from dagster_duckdb import DuckDBResource

    from clv_platform.defs.ingestion.assets import IngestConfig, raw_customers, raw_daily
    from clv_platform.ingest.spec import load_spec
    from clv_platform.lib.ingestion import RawSource, partition_range_tags, source_date_range

    spec_path = tmp_path / "source.yaml"
    spec_path.write_text(yaml.safe_dump({"generator": {"years": 1, "end_date": "2025-06-30"}}))
    spec = load_spec(spec_path)
    config = IngestConfig(n_customers=300, seed=5)  # as the CLI's --customers and --seed override the spec
    first, last = source_date_range(spec, config.generator_options(spec))
    database = tmp_path / "warehouse.duckdb"
    resources = {
        "raw_source": RawSource(spec_path=str(spec_path)),
        "warehouse": DuckDBResource(database=str(database)),
        "s3": S3Resource(region_name="us-east-1"),
    }
    result = dg.materialize(
        [raw_daily],
        resources=resources,
        run_config=dg.RunConfig(ops={raw_daily.op.name: config}),
        tags=partition_range_tags(first, last),
    )
    assert result.success
    customers_config = dg.RunConfig(ops={raw_customers.op.name: config})
    assert dg.materialize([raw_customers], resources=resources, run_config=customers_config).success
    assert generations == [300]

    expected = generator.generate(**{**spec.generator.model_dump(), **OPTIONS})
    with duckdb.connect(str(database), read_only=True) as con:
        customers = con.execute("select count(*) from raw.customers").fetchone()[0]
        invoices = con.execute("select count(distinct invoice_no) from raw.transactions").fetchone()[0]
    assert customers == len(expected.customers)
    assert invoices == expected.transactions.loc[expected.transactions["CustomerID"].notna(), "InvoiceNo"].nunique()
