"""What ``scoring/clv_explanations`` costs: :func:`clv_platform.ml.explain.explain_customers` on the ladder's
XGBoost rung, against that model's own prediction of the same rows.

The model is the one the ladder fits (:class:`clv_platform.ml.train.XGBoostModel` with ``XGBParams``
defaults, its objective chosen on validation, BG/NBD + Gamma-Gamma stacked as two more inputs), fitted on
:func:`clv_platform.ml.synthetic.make_examples` rows. Unlike ``benchmarks/explanations.py``, which times the
bare booster, every number here includes what the estimator adds per batch: the feature matrix and the
stacked BTYD inputs. For each row count: ``predict`` (``XGBoostModel.predict``, the scoring step's model
work), ``approx`` (``explain_customers``, approximate TreeSHAP, the asset's default) and, up to
``--exact-rows``, ``exact`` (``approx=False``). Peak RSS is the process's ``ru_maxrss`` after each step.

Usage::

    uv run python benchmarks/explain_customers.py --rows 1000 100000 1000000 --exact-rows 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--exact-rows", type=int, default=10_000, help="largest row count also explained exactly")
    parser.add_argument("--train-customers", type=int, default=10_000, help="customers per training cutoff")
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args()

    import pandas as pd

    from clv_platform.ml.baselines import BTYDModel
    from clv_platform.ml.explain import explain_customers
    from clv_platform.ml.features import LABEL_COLUMN
    from clv_platform.ml.synthetic import make_examples
    from clv_platform.ml.train import XGBoostModel

    examples = make_examples(args.train_customers, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), seed=7)
    cutoffs = pd.to_datetime(examples["cutoff_date"])
    train, valid = examples[cutoffs < cutoffs.max()], examples[cutoffs == cutoffs.max()]
    fit_s, model = _timed(lambda: XGBoostModel(stack_btyd=True, btyd=BTYDModel().fit(train)).fit(train, valid))
    print(
        json.dumps(
            {
                "fit_s": round(fit_s, 1),
                "objective": model.objective_,
                "trees": model.params()["best_iteration"],
                "scale": model.contribution_scale,
            }
        ),
        flush=True,
    )

    for rows in args.rows:
        features = make_examples(rows, cutoffs=("2024-10-01",), seed=8).drop(columns=LABEL_COLUMN)
        load = os.getloadavg()[0]
        predict_s, _ = _timed(lambda features=features: model.predict(features))
        result = {"rows": rows, "predict_s": round(predict_s, 3)}
        approx_s, drivers = _timed(lambda features=features: explain_customers(model, features, batch_size=args.batch_size))
        result.update(
            approx_s=round(approx_s, 3),
            approx_x_predict=round(approx_s / predict_s, 1),
            approx_rows_per_s=round(rows / approx_s),
            drivers_mib=round(drivers.memory_usage(deep=True).sum() / 2**20, 1),
        )
        if rows <= args.exact_rows:
            exact_s, _ = _timed(
                lambda features=features: explain_customers(model, features, approx=False, batch_size=args.batch_size)
            )
            result.update(exact_s=round(exact_s, 3), exact_x_predict=round(exact_s / predict_s, 1))
        result.update(peak_rss_gib=round(_rss_gib(), 2), load_avg=f"{load:.1f}-{os.getloadavg()[0]:.1f}")
        print(json.dumps(result), flush=True)
        del features, drivers


if __name__ == "__main__":
    main()
