"""The online snapshot and the scoring API on a state made by `clv-platform run`, served by `clv-platform serve`.

One run of the whole graph on a small built-in dataset (its online snapshot included), one API process on a
loopback port; the test reads the warehouse only while it asserts, as a user's analyst would.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from serving_support import CLI, Server, raw_payload, request, run_pipeline

pytestmark = pytest.mark.integration

# Columns of marts.customer_features that are not numbers.
TEXT_COLUMNS = ("cutoff_date", "country", "acquisition_channel", "first_purchase_date", "last_purchase_date")


@pytest.fixture(scope="module")
def home(tmp_path_factory, environment_for) -> Path:
    home = tmp_path_factory.mktemp("serving_api")
    run_pipeline(home, environment_for(home))
    return home


# The source spec the API reads (CLV_SOURCE_CONFIG), as ingestion does: a tighter price limit than the default.
SPEC = "limits: {max_unit_price: 1000}\n"


@pytest.fixture(scope="module")
def server(home, environment_for):
    (home / "source.yaml").write_text(SPEC)
    server = Server(home, environment_for(home, CLV_SOURCE_CONFIG=str(home / "source.yaml")))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def _warehouse(home: Path, sql: str, params=()) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def _latest_scores(home: Path) -> pd.DataFrame:
    return _warehouse(
        home,
        """select s.customer_id, s.cutoff_date, s.predicted_clv, s.model_version, t.value_tier, g.segment, e.drivers
           from scoring.clv_scores s
           join scoring.value_tiers t using (customer_id, cutoff_date)
           join scoring.clv_explanations e using (customer_id, cutoff_date)
           left join scoring.customer_segments g using (customer_id, cutoff_date)
           where s.cutoff_date = (select max(cutoff_date) from scoring.clv_scores) order by s.customer_id""",
    )


def test_online_features_snapshot_holds_every_scored_customer_and_is_recorded(home):
    import dagster as dg

    from clv_platform.ml import online

    manifest = online.read_manifest(home)
    snapshot = online.load_snapshot(home, manifest)  # checks every file against the manifest's sha256
    scores = _latest_scores(home)
    customers = snapshot.tables["customers"].sort_values("customer_id").reset_index(drop=True)

    assert manifest["rows"] == len(scores) == len(customers) > 100
    assert manifest["cutoff_date"] == str(scores["cutoff_date"].iloc[0].date())
    assert manifest["model_version"] == scores["model_version"].iloc[0]
    assert manifest["model_rung"]
    assert customers["customer_id"].tolist() == scores["customer_id"].tolist()
    assert customers["predicted_clv"].tolist() == scores["predicted_clv"].tolist()
    assert customers["value_tier"].tolist() == scores["value_tier"].tolist()
    assert customers["segment"].astype("float64").fillna(-1).tolist() == scores["segment"].astype("float64").fillna(-1).tolist()
    assert customers["probability_alive"].between(0, 1).all()
    features = _warehouse(
        home, "select * from marts.customer_features where cutoff_date = ? order by customer_id", [manifest["cutoff_date"]]
    )
    merged = customers.merge(features, on="customer_id", suffixes=("", "_batch"))
    assert len(merged) == len(customers)
    for column in ("frequency", "recency", "T", "monetary_value", "spend_365d", "country_customer_share"):
        assert merged[column].tolist() == merged[f"{column}_batch"].tolist(), column
    # No half-built snapshot or manifest left beside the live one.
    assert not [p for p in online.online_dir(home).iterdir() if p.name.startswith(".")]

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["serving", "online_features"]))
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert metadata["dagster/row_count"] == manifest["rows"]
    assert metadata["snapshot_id"] == manifest["snapshot_id"]
    assert metadata["cutoff_date"] == manifest["cutoff_date"]
    assert metadata["model_version"] == manifest["model_version"]
    assert Path(metadata["path"]) == online.online_dir(home) / manifest["path"]


def test_get_customer_equals_the_batch_scores_for_every_scored_customer(home, server):
    scores = _latest_scores(home)
    for row in scores.itertuples():
        status, body = request(f"{server.url}/v1/customers/{row.customer_id}")
        assert status == 200, body
        assert body["predicted_clv"] == row.predicted_clv
        assert body["value_tier"] == row.value_tier
        assert body["model_version"] == row.model_version
        assert body["cutoff_date"] == str(row.cutoff_date.date())
        assert body["segment"] == (None if pd.isna(row.segment) else int(row.segment))
        assert body["drivers"] == row.drivers
        assert body["arm"] == "champion"
        assert 0 <= body["probability_alive"] <= 1


def test_post_score_of_a_customers_lines_gives_the_batch_features_and_prediction(home, server):
    from clv_platform.ml.features import FEATURE_COLUMNS

    cutoff = request(f"{server.url}/v1/model")[1]["snapshot"]["cutoff_date"]
    features = _warehouse(home, "select * from marts.customer_features where cutoff_date = ?", [cutoff]).set_index("customer_id")
    scores = _latest_scores(home).set_index("customer_id")
    # Every 4th customer: with and without web sessions in the window, one-time and repeat buyers, with returns.
    # And the customers with an order above the batch's cap: a cap from their own lines would not cap it.
    capped = _warehouse(
        home,
        """select distinct d.customer_id from intermediate.int_customer_days d
           join intermediate.int_order_value_caps c on c.cutoff_date = ? and d.activity_date < c.cutoff_date
           where d.is_purchase_day and d.gross_purchase_value > c.cap_value""",
        [cutoff],
    )["customer_id"]
    assert set(capped) & set(scores.index)
    sample = sorted(set(scores.index[::4]) | (set(capped) & set(scores.index)))
    chosen = features.loc[sample]
    assert (chosen["sessions_90d"] > 0).any() and (chosen["sessions_90d"] == 0).any()
    assert (chosen["frequency"] == 0).any() and (chosen["frequency"] > 0).any() and (chosen["return_rate"] > 0).any()
    for customer_id in sample:
        payload = raw_payload(home / "warehouse.duckdb", customer_id, cutoff)
        status, body = request(f"{server.url}/v1/score", payload)
        assert status == 200, (customer_id, body)
        batch = features.loc[customer_id]
        for column in FEATURE_COLUMNS:
            assert body["features"][column] == pytest.approx(float(batch[column]), abs=1e-9, rel=0), (customer_id, column)
        for column in ("country", "acquisition_channel"):
            assert body["features"][column] == batch[column]
        assert body["predicted_clv"] == pytest.approx(scores.loc[customer_id, "predicted_clv"], abs=1e-9, rel=0), customer_id
        assert body["value_tier"] == scores.loc[customer_id, "value_tier"]
        assert body["model_version"] == scores.loc[customer_id, "model_version"]


def _one_line(**changes) -> dict:
    line = {
        "invoice_no": "900001",
        "stock_code": "85123A",
        "description": "LANTERN",
        "quantity": 2,
        "invoice_date": "2025-06-01T10:00:00",
        "unit_price": 3.5,
        "country": "United Kingdom",
    }
    return {"customer_id": "new-customer", "lines": [line, {**line, "invoice_no": "900002", **changes}]}


@pytest.mark.parametrize(
    ("changes", "rule", "field"),
    [
        ({"unit_price": -4.0}, "unit_price_non_negative", "unit_price"),
        ({"invoice_date": "2099-01-01T00:00:00"}, "timestamp_not_in_future", "invoice_date"),
        ({"invoice_date": "1969-12-31T00:00:00"}, "timestamp_in_history", "invoice_date"),
        ({"quantity": 0}, "quantity_in_range", "quantity"),
        ({"unit_price": 5000.0}, "unit_price_in_range", "unit_price"),  # the spec's limit, not the default 100000
        ({"invoice_no": "900001"}, "duplicate_line", None),
    ],
)
def test_post_rows_that_break_an_ingestion_rule_are_422_naming_row_column_and_rule(server, changes, rule, field):
    status, body = request(f"{server.url}/v1/score", _one_line(**changes))
    assert status == 422, body
    (error,) = body["detail"]
    assert error["type"] == rule
    assert error["loc"][:3] == ["body", "lines", 1]
    if field:
        assert error["loc"][3] == field
        assert f"column '{field}'" in error["msg"]
    assert error["msg"].startswith("request body lines: row 2") and error["msg"].endswith(f"(rule: {rule})")


def test_post_lines_on_or_after_the_snapshots_cutoff_are_422(server):
    cutoff = request(f"{server.url}/v1/model")[1]["snapshot"]["cutoff_date"]
    status, body = request(f"{server.url}/v1/score", _one_line(invoice_date=f"{cutoff}T00:00:00"))
    assert status == 422 and body["detail"][0]["type"] == "before_cutoff", body
    assert body["detail"][0]["loc"] == ["body", "lines", 1, "invoice_date"]


def test_lines_without_a_purchase_before_the_cutoff_are_422(server):
    cancellation = {**_one_line()["lines"][0], "invoice_no": "C900001", "quantity": -2}
    status, body = request(f"{server.url}/v1/score", {"customer_id": "new-customer", "lines": [cancellation]})
    assert status == 422 and body["detail"][0]["type"] == "has_purchase", body
    assert "customer new-customer has no purchase before the cutoff" in body["detail"][0]["msg"]


def test_a_new_customer_is_scored_from_its_lines_and_crm_record(server):
    payload = {
        **_one_line(),
        "customer": {"country": "France", "acquisition_channel": "email", "signup_date": "2025-01-05T00:00:00"},
    }
    status, body = request(f"{server.url}/v1/score", payload)
    assert status == 200, body
    assert body["features"]["country"] == "France" and body["features"]["channel_email"] == 1
    assert body["features"]["frequency"] == 0 and body["features"]["spend_365d"] == pytest.approx(14.0)
    assert body["segment"] is None and body["value_tier"] in ("Low", "Medium", "High")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": []}, "customer_id"),
        ({"customer_id": "a", "lines": []}, "lines"),
        ({"customer_id": "a", "lines": [{"invoice_no": "1"}]}, "quantity"),
        ({"customer_id": "a", "lines": [{**_one_line()["lines"][0], "unit_price": "cheap"}]}, "unit_price"),
        (
            {"customer_id": "a", "lines": [{**_one_line()["lines"][0], "invoice_date": "2025-06-01T10:00:00+02:00"}]},
            "invoice_date",
        ),
        ({"customer_id": "a", "lines": _one_line()["lines"], "colour": "red"}, "colour"),
    ],
)
def test_malformed_bodies_are_422_naming_the_field(server, body, field):
    status, answer = request(f"{server.url}/v1/score", body)
    assert status == 422, answer
    assert any(error["loc"][-1] == field for error in answer["detail"]), answer


def test_unknown_customer_is_404_and_a_body_that_is_not_json_is_422(server):
    assert request(f"{server.url}/v1/customers/no-such-customer")[0] == 404
    for body in (b"{not json", b"\xff\x04\x19", b""):
        status, answer = request(f"{server.url}/v1/score", body)
        assert status == 422 and answer["detail"][0]["loc"][0] == "body", (body, answer)


def test_oversized_bodies_are_413_declared_or_streamed(server):
    big = json.dumps({"customer_id": "a", "lines": [_one_line()["lines"][0]] * 20_000}).encode()
    assert len(big) > 1 << 20
    status, body = request(f"{server.url}/v1/score", big)
    assert status == 413, body

    # Chunked, with no Content-Length: counted as it arrives.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    connection.request("POST", "/v1/score", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413, response.read()[:500]
    connection.close()

    # Declared far beyond the limit: refused from the headers, before any of the body is sent.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.putrequest("POST", "/v1/score")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(1 << 40))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413, response.read()[:500]
    connection.close()


def test_serve_with_a_spec_it_cannot_read_is_one_line_and_exit_2(home, environment_for):
    env = environment_for(home, CLV_SOURCE_CONFIG=str(home / "missing.yaml"))
    done = subprocess.run([CLI, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "missing.yaml" in done.stderr and "Traceback" not in done.stderr


def test_serve_on_a_busy_port_is_one_line_before_anything_loads(home, environment_for):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [CLI, "serve", "--port", str(port)], env=environment_for(home), capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Scoring API on" not in done.stdout


def test_the_api_does_not_hold_the_warehouse_open(home, server):
    files = {
        os.path.realpath(os.path.join(f"/proc/{server.process.pid}/fd", fd))
        for fd in os.listdir(f"/proc/{server.process.pid}/fd")
    }
    assert str(home / "warehouse.duckdb") not in files
    # A writer can take the single-writer file while the API runs.
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create or replace table scoring._writer_probe as select 1 as x")
        con.execute("drop table scoring._writer_probe")
    assert request(f"{server.url}/v1/health")[0] == 200


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(home, server):
    """Property-based requests from the OpenAPI schema (valid and invalid), against the running server."""
    report = home / "schemathesis.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            "60",
            "--seed",
            "15",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "120",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=home,  # its own files (.schemathesis/) go to the test's state, not the checkout
    )
    assert done.returncode == 0, done.stdout[-6000:]
    assert "passed" in done.stdout and "4 selected" in done.stdout, done.stdout[-3000:]
    # The server stayed up through it all.
    assert request(f"{server.url}/v1/health")[0] == 200
