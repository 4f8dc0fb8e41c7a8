"""POST /v1/score on the UCI Online Retail log equals the batch: the same float64 features and prediction.

The state is made as a user makes it: ``clv-platform run --source`` on a file of the UCI log (a seeded draw of its
customers with every line of theirs, as the log has them: returns, cancellations, duplicates, odd prices), then
``clv-platform serve``. The customers posted are a seeded draw of the scored ones, with the heaviest buyers and
single-purchase customers in it.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from serving_support import CLI, Server, raw_payload, request

pytestmark = [pytest.mark.integration]

# Beside the checkout, as the other tests read it; CLV_ONLINE_RETAIL names it elsewhere (a git worktree, say).
UCI = Path(os.environ.get("CLV_ONLINE_RETAIL", Path(__file__).resolve().parents[3] / "shared" / "data" / "online_retail.csv.gz"))
LOG_CUSTOMERS = 700  # of about 4,370: enough for every model rung to fit, small enough for CI
POSTED = 50


@pytest.fixture(scope="module")
def home(tmp_path_factory, environment_for) -> Path:
    import subprocess

    if not UCI.exists():
        pytest.skip(f"{UCI} (the real UCI log) is not beside the checkout")
    home = tmp_path_factory.mktemp("serving_uci")
    log = pd.read_csv(UCI, dtype=str, encoding="latin-1")
    customers = log["CustomerID"].dropna().unique()
    drawn = set(np.random.default_rng(15).choice(customers, LOG_CUSTOMERS, replace=False))
    log[log["CustomerID"].isin(drawn)].to_csv(home / "online_retail.csv", index=False)
    (home / "source.yaml").write_text(
        f"transactions: {{kind: files, path: {home / 'online_retail.csv'}, preset: online_retail}}\n"
    )
    environment = environment_for(home, CLV_SOURCE_CONFIG=str(home / "source.yaml"))
    done = subprocess.run([CLI, "run"], env=environment, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"clv-platform run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (home / "online" / "manifest.json").exists(), done.stdout[-3000:]
    return home


@pytest.fixture(scope="module")
def server(home, environment_for):
    # The heaviest UCI buyers have thousands of lines before the cutoff: more than the default 1 MiB body.
    environment = environment_for(home, CLV_SOURCE_CONFIG=str(home / "source.yaml"))
    server = Server(home, environment, options=("--max-body-bytes", str(16 << 20)))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def _warehouse(home: Path, sql: str, params=()) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_post_of_uci_customers_lines_gives_the_batch_features_and_prediction_exactly(home, server):
    from clv_platform.ml.features import FEATURE_COLUMNS
    from clv_platform.serving.app import ScoreRequest

    cutoff = request(f"{server.url}/v1/model")[1]["snapshot"]["cutoff_date"]
    features = _warehouse(home, "select * from marts.customer_features where cutoff_date = ?", [cutoff]).set_index("customer_id")
    scores = _warehouse(
        home, "select customer_id, predicted_clv, model_version from scoring.clv_scores where cutoff_date = ?", [cutoff]
    ).set_index("customer_id")
    lines = _warehouse(
        home,
        "select customer_id, count(*) as lines from raw.transactions where invoice_date < cast(? as date) group by customer_id",
        [cutoff],
    ).set_index("customer_id")["lines"]
    scored = features.index.intersection(scores.index).sort_values()
    # The heaviest buyers a body can carry (the API takes at most this many lines a request).
    most = next(m.max_length for m in ScoreRequest.model_fields["lines"].metadata if hasattr(m, "max_length"))
    within = lines.loc[scored]
    heaviest = within[within <= most].sort_values(ascending=False).index[:5].tolist()
    assert within.max() > lines.loc[heaviest].min()
    single = sorted(features.loc[scored].query("frequency == 0").index)[:5]
    rest = sorted(set(scored) - set(heaviest) - set(single))
    drawn = np.random.default_rng(7).choice(rest, POSTED - len(heaviest) - len(single), replace=False).tolist()
    sample = sorted(set(heaviest) | set(single) | set(drawn))
    assert len(sample) == POSTED and len(single) == 5
    assert (features.loc[sample, "return_rate"] > 0).any()
    for customer_id in sample:
        payload = raw_payload(home / "warehouse.duckdb", customer_id, cutoff)
        status, body = request(f"{server.url}/v1/score", payload)
        assert status == 200, (customer_id, body)
        batch = features.loc[customer_id]
        mismatched = {
            c: (body["features"][c], float(batch[c])) for c in FEATURE_COLUMNS if body["features"][c] != float(batch[c])
        }
        assert not mismatched, (customer_id, mismatched)
        assert body["features"]["country"] == batch["country"]
        assert body["predicted_clv"] == scores.loc[customer_id, "predicted_clv"], customer_id
        assert body["model_version"] == scores.loc[customer_id, "model_version"]
