"""Latency and throughput of the scoring API: one uvicorn worker, load from a separate process on loopback.

The server is ``clv-platform serve`` on a materialized state (``--home``, the ``CLV_HOME`` of a finished
``clv-platform run``), exactly as a user starts it. The load generator is this script in a second process
(asyncio + httpx, one connection pool), so the server's core is not shared with the client's event loop
beyond what the machine's scheduler does. Phases, in order:

``health@RATE`` (the baseline)
    ``GET /v1/health`` at a fixed rate: the framework's floor (routing, one pydantic model, JSON).
``customer@RATE``
    ``GET /v1/customers/{id}`` at the same fixed rate, over every customer of the snapshot in turn.
``health max`` / ``customer max``
    Closed loop, ``--concurrency`` requests in flight for ``--seconds``: the maximum throughput.
``score 200 lines``
    ``POST /v1/score`` with one customer's ``--lines`` purchase lines, one request at a time.

Fixed-rate latency is measured from each request's scheduled start, not its actual start, so a server that
falls behind is charged for the queue it builds (no coordinated omission). Ratios are against the
baseline measured in the same run, under the same load. Results are appended to ``benchmarks/RESULTS.md``
with ``--append``.

Usage::

    CLV_HOME=/tmp/state uv run clv-platform run
    uv run python benchmarks/serving.py --home /tmp/state --append
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "clv-platform")
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(latencies_ms)
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)), "n": int(values.size)}


async def _fixed_rate(client, paths: list[str], rate: float, seconds: float) -> dict:
    """Send ``rate`` requests/s for ``seconds``; latency from each request's scheduled time."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        response = await client.get(paths[i % len(paths)])
        latencies.append((time.perf_counter() - scheduled) * 1000)
        errors += response.status_code != 200

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    return {**_percentiles(latencies), "errors": errors, "achieved_rps": total / elapsed}


async def _closed_loop(client, paths: list[str], concurrency: int, seconds: float) -> dict:
    """``concurrency`` requests in flight for ``seconds``: completed requests per second."""
    deadline = time.perf_counter() + seconds
    done = errors = 0
    latencies: list[float] = []

    async def worker(k: int) -> None:
        nonlocal done, errors
        i = k
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            response = await client.get(paths[i % len(paths)])
            latencies.append((time.perf_counter() - sent) * 1000)
            done += 1
            errors += response.status_code != 200
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return {**_percentiles(latencies), "errors": errors, "rps": done / (time.perf_counter() - started)}


async def _posts(client, payload: dict, count: int) -> dict:
    latencies: list[float] = []
    for _ in range(count):
        sent = time.perf_counter()
        response = await client.post("/v1/score", json=payload)
        latencies.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"POST /v1/score answered {response.status_code}: {response.text[:500]}")
    return _percentiles(latencies)


async def _load(url: str, customers: list[str], payload: dict, args) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        customer_paths = [f"/v1/customers/{c}" for c in customers]
        # Warm both paths (first-call imports, connection pool) before measuring.
        await _closed_loop(client, ["/v1/health", *customer_paths[:50]], 8, 2)
        await _posts(client, payload, 3)
        results = {
            "health_rate": await _fixed_rate(client, ["/v1/health"], args.rate, args.seconds),
            "customer_rate": await _fixed_rate(client, customer_paths, args.rate, args.seconds),
            "health_max": await _closed_loop(client, ["/v1/health"], args.concurrency, args.seconds),
            "customer_max": await _closed_loop(client, customer_paths, args.concurrency, args.seconds),
        }
        results["score_health"] = await _fixed_rate(client, ["/v1/health"], 10, 5)
        results["score"] = await _posts(client, payload, args.posts)
        return results


def _payload(home: Path, lines: int) -> tuple[list[str], dict]:
    """Every snapshot customer, and a POST body of ``lines`` purchase lines before the cutoff (a real customer's, repeated)."""
    import duckdb

    from clv_platform.ml import online

    manifest = online.read_manifest(home)
    snapshot = online.load_snapshot(home, manifest)
    customers = [str(c) for c in snapshot.tables["customers"]["customer_id"]]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        (customer,) = con.execute(
            "select customer_id from raw.transactions where invoice_date < cast(? as date) "
            "group by customer_id order by count(*) desc limit 1",
            [manifest["cutoff_date"]],
        ).fetchone()
        rows = con.execute(
            "select invoice_no, stock_code, description, quantity, invoice_date, unit_price, country "
            "from raw.transactions where customer_id = ? and invoice_date < cast(? as date) order by invoice_date",
            [customer, manifest["cutoff_date"]],
        ).fetchall()
    body = []
    for i in range(lines):
        invoice_no, stock, description, quantity, day, price, country = rows[i % len(rows)]
        body.append(
            {
                "invoice_no": f"{invoice_no}-{i // len(rows)}",
                "stock_code": stock,
                "description": description,
                "quantity": int(quantity),
                "invoice_date": day.isoformat(),
                "unit_price": float(price),
                "country": country,
            }
        )
    return customers, {"customer_id": customer, "lines": body, "events": []}


def _machine() -> dict:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "load": os.getloadavg()}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CLV_HOME": str(home)}
    for var in ("CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        env.pop(var, None)
    return subprocess.Popen(
        [CLI, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"clv-platform serve exited {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API was not healthy within {timeout} s")


def _report(results: dict, machine: dict, args, before: tuple, after: tuple) -> str:
    base, cust = results["health_rate"], results["customer_rate"]
    hmax, cmax, score, floor = results["health_max"], results["customer_max"], results["score"], results["score_health"]
    lines = [
        f"## Scoring API: one uvicorn worker, load from a second process on loopback ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"`uv run python benchmarks/serving.py --home STATE` on {machine['nproc']} cores ({machine['cpu']}), Python "
        f"{machine['python']}; load average {before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f} before, "
        f"{after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} after. Snapshot of {len(args.customers)} customers "
        f"(`clv-platform run` defaults). Fixed-rate latency counted from each request's scheduled time; "
        f"baseline: `GET /v1/health` in the same run.",
        "",
        "| phase | requests | p50 ms | p99 ms | throughput req/s | errors | ratio to baseline (p50 / p99 / rps) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| GET /v1/health at {args.rate:.0f} req/s (baseline) | {base['n']} | {base['p50']:.2f} | {base['p99']:.2f} | "
        f"{base['achieved_rps']:.0f} | {base['errors']} | 1 / 1 / 1 |",
        f"| GET /v1/customers/{{id}} at {args.rate:.0f} req/s | {cust['n']} | {cust['p50']:.2f} | {cust['p99']:.2f} | "
        f"{cust['achieved_rps']:.0f} | {cust['errors']} | {cust['p50'] / base['p50']:.2f} / {cust['p99'] / base['p99']:.2f} / "
        f"{cust['achieved_rps'] / base['achieved_rps']:.2f} |",
        f"| GET /v1/health max ({args.concurrency} in flight, baseline) | {hmax['n']} | {hmax['p50']:.2f} | {hmax['p99']:.2f} | "
        f"{hmax['rps']:.0f} | {hmax['errors']} | 1 / 1 / 1 |",
        f"| GET /v1/customers/{{id}} max ({args.concurrency} in flight) | {cmax['n']} | {cmax['p50']:.2f} | {cmax['p99']:.2f} | "
        f"{cmax['rps']:.0f} | {cmax['errors']} | {cmax['p50'] / hmax['p50']:.2f} / {cmax['p99'] / hmax['p99']:.2f} / "
        f"{cmax['rps'] / hmax['rps']:.2f} |",
        f"| POST /v1/score, {args.lines} lines, one at a time | {score['n']} | {score['p50']:.1f} | {score['p99']:.1f} | "
        f"{1000 / score['p50']:.1f} | 0 | {score['p50'] / floor['p50']:.0f} / {score['p99'] / floor['p99']:.0f} / - "
        "(against GET /v1/health at 10 req/s) |",
        "",
        f"Targets: GET p99 under 20 ms at 500 req/s ({'met' if cust['p99'] < 20 else 'missed'}); POST with 200 lines p99 "
        f"under 150 ms ({'met' if score['p99'] < 150 else 'missed'}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, type=Path, help="CLV_HOME of a finished `clv-platform run`")
    parser.add_argument("--rate", type=float, default=500, help="fixed request rate, req/s (default 500)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per rate and throughput phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight for the maximum throughput")
    parser.add_argument("--connections", type=int, default=64, help="client connection pool size")
    parser.add_argument("--lines", type=int, default=200, help="purchase lines per POST (default 200)")
    parser.add_argument("--posts", type=int, default=100, help="POST requests measured (default 100)")
    parser.add_argument("--append", action="store_true", help=f"append the results to {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["CLV_HOME"] = str(home)
    args.customers, payload = _payload(home, args.lines)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(home, port)
    try:
        _wait_healthy(url, server)
        before = os.getloadavg()
        # The load generator in its own process: the client's event loop does not share this interpreter.
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1) as pool:
            results = pool.submit(_run_load, url, args.customers, payload, vars(args) | {"home": str(home)}).result()
        after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(json.dumps(results, indent=1))
    report = _report(results, _machine(), args, before, after)
    print(report)
    if args.append:
        with open(RESULTS, "a") as out:
            out.write("\n" + report)


def _run_load(url: str, customers: list[str], payload: dict, options: dict) -> dict:
    return asyncio.run(_load(url, customers, payload, argparse.Namespace(**options)))


if __name__ == "__main__":
    main()
