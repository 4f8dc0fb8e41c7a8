"""Stream the built-in generator to Parquet at scale: lines written, wall time, peak memory.

The result that travels between machines is the ratio to a baseline run on the same machine:
one chunk of ``--baseline-customers`` written the same way, its time scaled linearly to
``--customers``. A ratio near 1 means streaming costs no more per customer than one chunk, and
peak RSS shows memory stays bounded by the chunk, not the total.

Usage::

    uv run python benchmarks/generate_at_scale.py --customers 1000000 --out /tmp/clv_1m
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from clv_platform.datagen import write_parquet


def _peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to generate")
    parser.add_argument("--chunk-customers", type=int, default=50_000, help="customers per chunk")
    parser.add_argument("--baseline-customers", type=int, default=50_000, help="customers in the one-chunk baseline")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: a temporary one, deleted)",
    )
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="clv_generate_"))
    try:
        start = time.perf_counter()
        written = write_parquet(out, args.customers, chunk_customers=args.chunk_customers, seed=args.seed)
        wall = time.perf_counter() - start
        # Measured before the baseline runs, so it is the streaming run's own peak.
        peak = _peak_rss_gib()
        size = sum(path.stat().st_size for path in written.paths.values()) / 2**30

        with tempfile.TemporaryDirectory(prefix="clv_baseline_") as baseline_dir:
            start = time.perf_counter()
            baseline = write_parquet(
                baseline_dir,
                args.baseline_customers,
                chunk_customers=args.baseline_customers,
                seed=args.seed,
            )
            baseline_wall = time.perf_counter() - start
        scaled = baseline_wall * args.customers / args.baseline_customers
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)

    lines = written.rows["transactions"]
    print(f"customers              {args.customers:>14,} in chunks of {args.chunk_customers:,}")
    print(f"transaction lines      {lines:>14,} ({lines / args.customers:.1f} per customer)")
    print(f"behavioural events     {written.rows['behavioral_events']:>14,}")
    print(f"parquet on disk        {size:>14.2f} GiB")
    print(f"wall time              {wall:>14.1f} s ({lines / wall / 1e6:.2f} M lines/s)")
    print(f"peak RSS               {peak:>14.2f} GiB")
    print(
        f"baseline               {baseline_wall:>14.1f} s for {args.baseline_customers:,} "
        f"customers ({baseline.rows['transactions']:,} lines) in one chunk; scaled {scaled:.1f} s"
    )
    print(f"ratio streamed/scaled  {wall / scaled:>14.2f}")


if __name__ == "__main__":
    main()
