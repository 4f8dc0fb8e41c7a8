"""The online feature build reuses its DuckDB connections without carrying one build's rows into the next."""

import pandas as pd
import pytest

from clv_platform.ml.online import FeatureBuilder, FeatureModel, FeatureSql, build_features

DB = "online"
SQL = FeatureSql(
    DB,
    {name: f'"{DB}"."raw"."{name.split(".")[1]}"' for name in ("raw.transactions", "raw.behavioral_events", "raw.customers")},
    [
        FeatureModel("int_cutoffs", f'"{DB}"."intermediate"."int_cutoffs"', "select 1"),
        FeatureModel("int_order_value_caps", f'"{DB}"."intermediate"."int_order_value_caps"', "select 1"),
        FeatureModel(
            "customer_features",
            f'"{DB}"."marts"."customer_features"',
            f"""select t.customer_id, c.cutoff_date, t.country, count(*) as frequency,
                       (select count(*) from "{DB}"."raw"."behavioral_events") as events
                from "{DB}"."raw"."transactions" as t cross join "{DB}"."intermediate"."int_cutoffs" as c
                group by t.customer_id, c.cutoff_date, t.country""",
        ),
    ],
)
POPULATION = {
    "int_cutoffs": pd.DataFrame({"cutoff_date": pd.to_datetime(["2025-12-31"])}),
    "int_order_value_caps": pd.DataFrame({"cap": [1000.0]}),
}
SHARES = {"country_customer_share": pd.DataFrame({"country": ["GB"], "country_customer_share": [0.8]})}


def _raw(customer: str, lines: int, events: int, country: str = "GB") -> dict[str, pd.DataFrame]:
    return {
        "raw.transactions": pd.DataFrame({"customer_id": [customer] * lines, "country": [country] * lines}),
        "raw.behavioral_events": pd.DataFrame({"customer_id": [customer] * events}),
        "raw.customers": pd.DataFrame({"customer_id": [customer]}),
    }


def test_a_reused_connection_builds_what_a_fresh_one_builds():
    builder = FeatureBuilder(SQL, POPULATION, SHARES)
    try:
        for raw in (_raw("a", 3, 2), _raw("b", 5, 0, "FR"), _raw("a", 3, 2)):
            reused = builder.build(raw)
            pd.testing.assert_frame_equal(reused, build_features(SQL, raw, POPULATION, SHARES))
        assert builder._idle.qsize() == 1  # one connection served all three builds
        assert reused[["frequency", "events", "country_customer_share"]].values.tolist() == [[3, 2, 0.8]]
        assert builder.build(_raw("b", 5, 0, "FR"))["country_customer_share"].tolist() == [0.0]  # no batch share
    finally:
        builder.close()


def test_a_failed_build_does_not_leave_its_connection_for_the_next():
    builder = FeatureBuilder(SQL, POPULATION, SHARES)
    builder.build(_raw("a", 2, 1))
    broken = {**_raw("b", 2, 1), "raw.transactions": pd.DataFrame({"customer_id": ["b"]})}  # no country column
    with pytest.raises(Exception, match="country"):
        builder.build(broken)
    assert builder._idle.qsize() == 0
    assert builder.build(_raw("c", 2, 0))[["customer_id", "frequency"]].values.tolist() == [["c", 2]]
    builder.close()
