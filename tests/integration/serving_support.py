"""A materialized state for the scoring API tests, and `clv-platform serve` run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

CLI = str(Path(sys.executable).parent / "clv-platform")
CUSTOMERS = 300


def run_pipeline(home: Path, env: dict) -> None:
    """``clv-platform run`` on a small built-in dataset: every asset, the online snapshot included."""
    done = subprocess.run(
        [CLI, "run", "--customers", str(CUSTOMERS), "--seed", "7"], env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"clv-platform run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (home / "online" / "manifest.json").exists(), done.stdout[-3000:]
    # The terminal gets the summary; Dagster's and dbt's output go to the run's log file.
    assert len(done.stdout.splitlines()) < 50 and not done.stderr.strip(), done.stdout[-3000:] + done.stderr[-3000:]
    (log,) = (home / "logs").glob("clv_full_pipeline-*.log")
    assert log.name in done.stdout and "Running with dbt" in log.read_text(), done.stdout


def registry_client(home: Path):
    """An MLflow client on ``home``'s store for tracking and registry both.

    ``MlflowClient(tracking_uri=...)`` alone takes the registry from ``MLFLOW_REGISTRY_URI``, which MLflow writes
    into this process's environment when an earlier test in the same worker set another store's registry.
    """
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def request(url: str, body: dict | bytes | None = None, timeout: float = 60, headers: dict | None = None) -> tuple[int, dict]:
    """One HTTP request; the status and the JSON body, whatever the status."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, {"raw": payload.decode(errors="replace")}


class Server:
    """A running ``clv-platform serve``: its base URL, its process and its log."""

    def __init__(self, home: Path, env: dict, poll_seconds: float = 1.0, options: tuple[str, ...] = ()):
        # Port 0: the server takes a free port itself and prints it, so two servers never race for one port.
        self.log = home / f"serve-{uuid.uuid4().hex[:8]}.log"
        self.port: int | None = None
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                [CLI, "serve", "--port", "0", "--poll-seconds", str(poll_seconds), "--log-level", "info", *options],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        assert self.port is not None, "wait_healthy() first: the port is known once the server prints it"
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 240) -> dict:
        """Block until this server printed its port and /v1/health answers 200 (snapshot and model loaded); its body."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"clv-platform serve exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.port is None:
                printed = re.search(r"Scoring API on http://[^:]+:(\d+) ", self.log.read_text())
                self.port = int(printed.group(1)) if printed else None
            if self.port is not None:
                try:
                    status, body = request(f"{self.url}/v1/health", timeout=10)
                    if status == 200:
                        return body
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the API was not healthy within {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def raw_payload(warehouse: Path, customer_id: str, cutoff: str) -> dict:
    """The customer's raw lines and events before ``cutoff``, as POST /v1/score takes them."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        lines = con.execute(
            """select invoice_no, stock_code, description, quantity, invoice_date, unit_price, country
               from raw.transactions where customer_id = ? and invoice_date < cast(? as date)
               order by invoice_date, invoice_no""",
            [customer_id, cutoff],
        ).df()
        events = con.execute(
            """select event_id, session_id, event_type, event_timestamp from raw.behavioral_events
               where customer_id = ? and event_timestamp < cast(? as date) order by event_timestamp, event_id""",
            [customer_id, cutoff],
        ).df()
    for frame, column in ((lines, "invoice_date"), (events, "event_timestamp")):
        frame[column] = frame[column].map(lambda t: t.isoformat())
    records = [{k: (None if v != v else v) for k, v in row.items()} for row in lines.to_dict("records")]
    return {
        "customer_id": customer_id,
        "lines": [{**r, "quantity": int(r["quantity"]), "unit_price": float(r["unit_price"])} for r in records],
        "events": [{k: (None if v != v else v) for k, v in row.items()} for row in events.to_dict("records")],
    }
