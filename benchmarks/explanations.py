"""The cost of per-customer explanations: exact TreeSHAP and approx_contribs against prediction alone.

One model like the pipeline's (``xgboost.XGBRegressor`` with :class:`clv_platform.ml.train.XGBParams`
defaults, early-stopped, on :func:`clv_platform.ml.synthetic.make_examples` rows with the platform's 40
``FEATURE_COLUMNS``), one matrix of rows to explain. Every contender runs in a fresh interpreter; it
first predicts the same rows (the baseline each ratio is taken against, in the same process under the
same load) and then runs its explanation, in batches of ``--batch-size`` rows:

``predict``
    The baseline alone: ``Booster.predict`` on each batch.
``approx_contribs`` / ``exact_contribs``
    :func:`clv_platform.ml.explain.xgb_contributions` with ``approx=True`` (Saabas) / ``False``
    (exact TreeSHAP): every feature's contribution for every row, held in memory.
``approx_top3`` / ``exact_top3``
    :func:`clv_platform.ml.explain.explain_top_drivers`: contributions one batch at a time, keeping the
    top 3 drivers and their text per row (what scoring stores).

Then, on the exact contenders' rows, how far approx's top drivers agree with exact TreeSHAP's: the share
of rows with the same first driver, and the mean share of the exact top 3 that approx's top 3 holds.

Peak RSS is the contender process's own ``ru_maxrss``; ``rss after load`` is the same measure once the
model and the rows are loaded, before any prediction. The machine's 1-minute load average is printed
before and after each contender, since other work on a shared machine moves the seconds.

Usage::

    uv run python benchmarks/explanations.py --rows 1000000 --exact-rows 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTENDERS = ("predict", "approx_contribs", "approx_top3", "exact_contribs", "exact_top3")
EXACT = ("exact_contribs", "exact_top3")
AGREEMENT = "agreement"


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def prepare(work: Path, rows: int, train_customers: int, seed: int, trees: int | None, max_depth: int | None) -> dict:
    """Fit the model on generated examples, save it and ``rows`` generated feature rows to ``work``.

    With ``trees`` the model has exactly that many trees (no early stopping), to measure a larger model
    than the generated data's early stopping gives.
    """
    import dataclasses

    import numpy as np
    import xgboost as xgb

    from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
    from clv_platform.ml.synthetic import make_examples
    from clv_platform.ml.train import XGBParams

    examples = make_examples(train_customers, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), seed=seed)
    train = examples[examples["cutoff_date"].astype(str) < "2024-07-01"]
    valid = examples[examples["cutoff_date"].astype(str) == "2024-07-01"]
    columns = list(FEATURE_COLUMNS)
    params = XGBParams()
    if trees is not None:
        params = dataclasses.replace(params, n_estimators=trees, early_stopping_rounds=None)
    if max_depth is not None:
        params = dataclasses.replace(params, max_depth=max_depth)
    start = time.perf_counter()
    model = xgb.XGBRegressor(**params.estimator_kwargs())
    model.fit(train[columns], train[LABEL_COLUMN], eval_set=[(valid[columns], valid[LABEL_COLUMN])], verbose=False)
    fit_s = time.perf_counter() - start
    model.get_booster().save_model(work / "model.json")

    scored = make_examples(rows, cutoffs=("2024-10-01",), seed=seed + 1)
    np.save(work / "rows.npy", scored[columns].to_numpy(dtype="float32"))
    best = model.get_booster().attr("best_iteration")
    return {
        "train_rows": len(train),
        "fit_s": fit_s,
        "early_stopped": best is not None,
        "trees": int(best) + 1 if best is not None else model.get_booster().num_boosted_rounds(),
        "max_depth": params.max_depth,
        "n_estimators_cap": params.n_estimators,
    }


def _load(work: Path, rows: int):
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from clv_platform.ml.features import FEATURE_COLUMNS

    booster = xgb.Booster()
    booster.load_model(work / "model.json")
    matrix = np.load(work / "rows.npy", mmap_mode="r")[:rows]
    return booster, pd.DataFrame(np.ascontiguousarray(matrix), columns=list(FEATURE_COLUMNS))


def agreement(work: Path, rows: int) -> dict:
    """How often approx_contribs names the same top drivers as exact TreeSHAP, on the first ``rows`` rows."""
    from clv_platform.ml.explain import top_drivers, xgb_contributions

    booster, features = _load(work, rows)
    exact = top_drivers(xgb_contributions(booster, features), k=3)
    approx = top_drivers(xgb_contributions(booster, features, approx=True), k=3)
    names = [f"driver_{i}" for i in (1, 2, 3)]
    overlap = [
        len({n for n in e if n is not None} & {n for n in a if n is not None}) / max(1, sum(n is not None for n in e))
        for e, a in zip(exact[names].itertuples(index=False), approx[names].itertuples(index=False), strict=True)
    ]
    return {
        "rows": rows,
        "same_first_driver": float((exact["driver_1"] == approx["driver_1"]).mean()),
        "top3_overlap": float(sum(overlap) / len(overlap)),
    }


def run(contender: str, work: Path, rows: int, batch_size: int) -> dict:
    """Predict ``rows`` rows (the baseline), then run ``contender`` on the same rows; seconds and memory."""
    import functools

    import xgboost as xgb

    from clv_platform.ml.explain import explain_top_drivers, xgb_contributions
    from clv_platform.ml.features import FEATURE_COLUMNS

    booster, features = _load(work, rows)
    loaded_gib = _rss_gib()
    best = booster.attr("best_iteration")
    iteration_range = (0, int(best) + 1) if best is not None else (0, 0)

    def predict() -> float:
        total = 0.0
        for start in range(0, len(features), batch_size):
            batch = features.iloc[start : start + batch_size].to_numpy(dtype="float32")
            dmatrix = xgb.DMatrix(batch, feature_names=list(FEATURE_COLUMNS))
            total += float(booster.predict(dmatrix, iteration_range=iteration_range).sum())
        return total

    # Small row counts finish in milliseconds: the best of repeats over at least 2 s steadies the baseline.
    predict_s, spent = float("inf"), 0.0
    while spent < 2.0:
        start = time.perf_counter()
        predict()
        elapsed = time.perf_counter() - start
        predict_s, spent = min(predict_s, elapsed), spent + elapsed

    work_s, held_mib = predict_s, 0.0
    if contender != "predict":
        approx = contender.startswith("approx")
        start = time.perf_counter()
        if contender.endswith("contribs"):
            result = xgb_contributions(booster, features, approx=approx, batch_size=batch_size)
        else:
            explainer = functools.partial(xgb_contributions, booster, approx=approx, batch_size=batch_size)
            result = explain_top_drivers(explainer, features, k=3, batch_size=batch_size)
        work_s = time.perf_counter() - start
        held_mib = result.memory_usage(deep=True).sum() / 2**20
    return {
        "rows": rows,
        "predict_s": predict_s,
        "work_s": work_s,
        "result_mib": held_mib,
        "rss_loaded_gib": loaded_gib,
        "peak_rss_gib": _rss_gib(),
    }


def measure(contender: str, work: Path, rows: int, batch_size: int) -> dict:
    """Run one contender in a fresh interpreter, with the load average around it."""
    load_before = os.getloadavg()[0]
    output = subprocess.run(
        [sys.executable, __file__, "--run", contender, "--work", str(work), "--rows", str(rows), "--batch-size", str(batch_size)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return {"name": contender, "load_before": load_before, "load_after": os.getloadavg()[0], **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for prediction and approx_contribs")
    parser.add_argument("--exact-rows", type=int, default=20_000, help="rows for exact TreeSHAP (extrapolated)")
    parser.add_argument("--train-customers", type=int, default=10_000, help="customers per training cutoff")
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trees", type=int, help="exactly this many trees, no early stopping")
    parser.add_argument("--max-depth", type=int, help="instead of XGBParams' max_depth")
    parser.add_argument("--skip", nargs="*", default=[], choices=CONTENDERS)
    parser.add_argument("--keep", type=Path, help="prepare model and rows in this directory and keep them")
    parser.add_argument("--run", choices=(*CONTENDERS, AGREEMENT), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run == AGREEMENT:
        print(json.dumps(agreement(args.work, args.rows)))
        return
    if args.run:
        print(json.dumps(run(args.run, args.work, args.rows, args.batch_size)))
        return
    if args.prepare:
        print(json.dumps(prepare(args.work, args.rows, args.train_customers, args.seed, args.trees, args.max_depth)))
        return

    # The driver stays small (stdlib only) and starts each contender as a fresh interpreter.
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv_explain_bench_"))
    total_rows = max(args.rows, args.exact_rows)
    try:
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "prepared.json").exists():
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--prepare",
                    "--work",
                    str(work),
                    "--rows",
                    str(total_rows),
                    "--train-customers",
                    str(args.train_customers),
                    "--seed",
                    str(args.seed),
                    *(["--trees", str(args.trees)] if args.trees else []),
                    *(["--max-depth", str(args.max_depth)] if args.max_depth else []),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
            (work / "prepared.json").write_text(output.strip().splitlines()[-1])
        model = json.loads((work / "prepared.json").read_text())
        stopping = f"early-stopped, cap {model['n_estimators_cap']}" if model["early_stopped"] else "no early stopping"
        print(
            f"model: {model['trees']} trees ({stopping}) of depth "
            f"{model['max_depth']}, fitted on {model['train_rows']:,} rows in {model['fit_s']:.1f} s; "
            f"batch {args.batch_size:,} rows; {os.cpu_count()} cores"
        )
        results = []
        for contender in CONTENDERS:
            if contender not in args.skip:
                rows = args.exact_rows if contender in EXACT else args.rows
                results.append(measure(contender, work, rows, args.batch_size))
                print(json.dumps(results[-1]), file=sys.stderr)
        agreed = measure(AGREEMENT, work, min(args.exact_rows, 20_000), args.batch_size)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print("| contender | rows | s | rows/s | x predict | 1M rows s | result MiB | RSS after load GiB | peak RSS GiB | load avg |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        rate = r["rows"] / r["work_s"]
        measured = "" if r["rows"] >= 1_000_000 else " (extrap.)"
        print(
            f"| {r['name']} | {r['rows']:,} | {r['work_s']:.2f} | {rate:,.0f} | {r['work_s'] / r['predict_s']:.1f} "
            f"| {1_000_000 / rate:,.0f}{measured} | {r['result_mib']:,.0f} | {r['rss_loaded_gib']:.2f} "
            f"| {r['peak_rss_gib']:.2f} | {r['load_before']:.1f} -> {r['load_after']:.1f} |"
        )
    print(
        f"approx vs exact on {agreed['rows']:,} rows: same first driver {agreed['same_first_driver']:.1%}, "
        f"top-3 overlap {agreed['top3_overlap']:.1%}"
    )


if __name__ == "__main__":
    main()
