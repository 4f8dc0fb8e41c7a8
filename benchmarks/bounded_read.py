"""Peak memory and time of reading one large gzip CSV: the streaming reader against a whole-file read.

The baseline, ``whole_file``, is how a file used to be read: its bytes, decompressed at once, decoded and
parsed into one frame. The contender, ``streamed``, is :func:`clv_platform.ingest.readers.iter_source`:
decompressed, decoded and parsed as it is read, in frames of at most ``CHUNK_ROWS`` records (each frame
is dropped once counted, as ``raw_daily`` drops it once staged). Each runs in a child process of its own,
so each peak RSS is its own; the ratios are against the baseline of the same invocation.

Usage::

    uv run python benchmarks/bounded_read.py --lines 2000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,{customer},United Kingdom\n"
HEADER = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"


def write_log(path: Path, lines: int) -> None:
    with gzip.open(path, "wt", compresslevel=6) as out:
        out.write(HEADER)
        for start in range(0, lines, 100_000):
            out.write("".join(LINE.format(customer=17_000 + i % 5_000) for i in range(start, min(lines, start + 100_000))))


def whole_file(path: Path) -> int:
    import csv
    import io

    import pandas as pd

    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return len(pd.DataFrame(list(reader), columns=header, dtype=object))


def streamed(path: Path) -> int:
    from clv_platform.ingest.readers import iter_source
    from clv_platform.ingest.spec import SourceSpec

    return sum(len(frame) for frame in iter_source(SourceSpec(kind="files", path=str(path), preset="canonical")))


def _child(name: str, path: Path) -> dict:
    import resource

    started = time.perf_counter()
    rows = {"whole_file": whole_file, "streamed": streamed}[name](path)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"contender": name, "rows": rows, "seconds": seconds, "peak_rss_gib": peak_kib / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.path))))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lines.csv.gz"
        write_log(path, args.lines)
        print(f"{args.lines:,} lines, {path.stat().st_size / 2**20:.1f} MiB gzip")
        results = []
        for name in ("whole_file", "streamed"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--path", str(path)], check=True, capture_output=True, text=True
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    base = results[0]
    print("| contender | rows | seconds | peak RSS (GiB) | time / whole_file | memory / whole_file |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['contender']} | {r['rows']:,} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} | "
            f"{r['seconds'] / base['seconds']:.2f} | {r['peak_rss_gib'] / base['peak_rss_gib']:.2f} |"
        )
    assert results[0]["rows"] == results[1]["rows"] == args.lines, "both contenders must read every line"


if __name__ == "__main__":
    main()
