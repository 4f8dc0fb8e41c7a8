"""Time-based evaluation split, the side-by-side metrics table and the slice report."""

import math

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.evaluate import evaluation_split, metrics_table, slice_table


def examples_at(cutoffs, horizon_days=91, customers=("a", "b")):
    """Two customers per cutoff; the label encodes the cutoff so leaks are visible."""
    rows = [
        {"customer_id": c, "cutoff_date": pd.Timestamp(cutoff).date(), "horizon_days": horizon_days, "future_revenue": i}
        for i, cutoff in enumerate(cutoffs)
        for c in customers
    ]
    return pd.DataFrame(rows)


MONTHLY = ["2011-03-12", "2011-04-11", "2011-05-11", "2011-06-10", "2011-07-10", "2011-08-09", "2011-09-09"]


def cutoff_strings(frame):
    return sorted({str(pd.Timestamp(c).date()) for c in frame["cutoff_date"]})


def test_evaluation_split_trains_only_on_label_windows_ended_by_the_evaluation_cutoff():
    # 2011-06-10 + 91 days = 2011-09-09: ends exactly at the evaluation cutoff, kept.
    # 2011-07-10 and 2011-08-09 end after it: their labels hold evaluation-period revenue, dropped.
    train, evaluation = evaluation_split(examples_at(MONTHLY))
    assert cutoff_strings(evaluation) == ["2011-09-09"]
    assert cutoff_strings(train) == ["2011-03-12", "2011-04-11", "2011-05-11", "2011-06-10"]
    label_end = pd.to_datetime(train["cutoff_date"]) + pd.to_timedelta(train["horizon_days"], unit="D")
    assert (label_end <= pd.Timestamp("2011-09-09")).all()
    assert list(train.columns) == list(evaluation.columns)
    assert train["customer_id"].tolist()[:2] == ["a", "b"]


def test_evaluation_split_at_a_given_cutoff_never_uses_later_rows():
    train, evaluation = evaluation_split(examples_at(MONTHLY), eval_cutoff="2011-07-10")
    assert cutoff_strings(evaluation) == ["2011-07-10"]
    # 2011-04-11 + 91 = 2011-07-11 > 2011-07-10: out
    assert cutoff_strings(train) == ["2011-03-12"]


def test_sliding_window_by_count_keeps_the_latest_eligible_cutoffs():
    train, _ = evaluation_split(examples_at(MONTHLY), train_window_cutoffs=2)
    assert cutoff_strings(train) == ["2011-05-11", "2011-06-10"]


def test_sliding_window_by_days():
    # 2011-09-09 - 150 days = 2011-04-12: 2011-04-11 falls just outside
    train, _ = evaluation_split(examples_at(MONTHLY), train_window_days=150)
    assert cutoff_strings(train) == ["2011-05-11", "2011-06-10"]


def test_history_too_short_is_a_clear_error():
    with pytest.raises(ValueError, match="history is too short for supervised training"):
        evaluation_split(examples_at(["2011-08-09", "2011-09-09"]))
    with pytest.raises(ValueError, match="within the window of 30 days"):
        evaluation_split(examples_at(MONTHLY), train_window_days=30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eval_cutoff": "2011-09-10"}, "eval_cutoff 2011-09-10 is not a 'cutoff_date'"),
        ({"train_window_cutoffs": 2, "train_window_days": 90}, "not both"),
        ({"train_window_cutoffs": 0}, "train_window_cutoffs must be >= 1"),
    ],
)
def test_evaluation_split_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluation_split(examples_at(MONTHLY), **kwargs)


def test_evaluation_split_rejects_missing_and_null_columns():
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['horizon_days'\]"):
        evaluation_split(examples_at(MONTHLY).drop(columns="horizon_days"))
    frame = examples_at(MONTHLY)
    frame.loc[0, "cutoff_date"] = None
    with pytest.raises(ValueError, match="'cutoff_date' must not be null"):
        evaluation_split(frame)


def test_metrics_table_by_hand():
    actual = [0.0, 10.0, 30.0, 60.0]
    table = metrics_table(actual, {"perfect": actual, "flat": [25.0] * 4, "reversed": [60.0, 30.0, 10.0, 0.0]})
    assert table.index.tolist() == ["perfect", "flat", "reversed"]
    assert table.columns.tolist() == ["rmse", "mae", "spearman", "normalized_gini", "top10_capture", "bias"]
    assert table.loc["perfect"].tolist() == pytest.approx([0, 0, 1, 1, 0.6, 0])
    # flat 25: errors 25, 15, 5, 35 -> MAE 20, squared mean (625 + 225 + 25 + 1225) / 4 = 525; sum 100 = 100
    assert table.loc["flat", "mae"] == pytest.approx(20.0)
    assert table.loc["flat", "rmse"] == pytest.approx(math.sqrt(525))
    assert table.loc["flat", "bias"] == pytest.approx(0.0)
    assert table.loc["flat", "normalized_gini"] == pytest.approx(0.0)
    assert math.isnan(table.loc["flat", "spearman"])
    # flat ties all four: the top 10 % (1 customer) counts the mean 25 of 100
    assert table.loc["flat", "top10_capture"] == pytest.approx(0.25)
    assert table.loc["reversed", "spearman"] == pytest.approx(-1.0)
    assert table.loc["reversed", "top10_capture"] == pytest.approx(0.0)


def test_metrics_table_capture_share_names_its_column():
    table = metrics_table([1, 2, 3, 4], {"m": [1, 2, 3, 4]}, top_share=0.25)
    assert "top25_capture" in table.columns
    assert table.loc["m", "top25_capture"] == pytest.approx(0.4)


def test_metrics_table_rejects_misaligned_predictions():
    with pytest.raises(ValueError, match="predictions of model 'short' have 2 rows, y_true has 3"):
        metrics_table([1, 2, 3], {"short": [1, 2]})
    with pytest.raises(ValueError, match="at least one model"):
        metrics_table([1, 2, 3], {})


def test_slice_table_by_hand():
    # GB: 3 customers, FR: 2, DE: 1 (below min_slice_size 2: listed, not in the ratio)
    slices = pd.DataFrame(
        {
            "country": ["GB", "GB", "GB", "FR", "FR", "DE"],
            "acquisition_channel": ["email", "email", "social", "social", None, "email"],
        }
    )
    actual = np.array([10.0, 20.0, 30.0, 5.0, 5.0, 100.0])
    pred = np.array([12.0, 18.0, 30.0, 4.0, 8.0, 90.0])
    report = slice_table(actual, {"m": pred}, slices, min_slice_size=2)

    gb = report.metrics.query("dimension == 'country' and slice == 'GB'").iloc[0]
    assert gb["n"] == 3
    assert gb["mean_actual"] == pytest.approx(20.0)
    assert gb["mean_predicted"] == pytest.approx(20.0)
    assert gb["mae"] == pytest.approx(4 / 3)  # errors 2, 2, 0
    assert gb["in_ratio"]
    de = report.metrics.query("dimension == 'country' and slice == 'DE'").iloc[0]
    assert de["n"] == 1 and not de["in_ratio"]
    # country means: GB 20, FR 6 -> 6 / 20 = 0.3
    assert report.fairness.loc["m", "country_ratio"] == pytest.approx(0.3)
    assert report.fairness.loc["m", "country_lowest"] == "FR"
    assert report.details[("m", "country")].excluded == {"DE": 1}
    # channel: email (12, 18, 90) mean 40, social (30, 4) mean 17, missing (8) excluded -> 17 / 40
    channel = report.metrics.query("dimension == 'acquisition_channel'")
    assert sorted(channel["slice"]) == ["(missing)", "email", "social"]
    assert report.fairness.loc["m", "acquisition_channel_ratio"] == pytest.approx(17 / 40)
    # the worst dimension
    assert report.fairness.loc["m", "disparate_impact_ratio"] == pytest.approx(0.3)
    # against the actual revenue: country GB 20, FR 5 -> 0.25, so the model's 0.3 adds no gap (capped
    # at 1); channel email (10, 20, 100) 130/3, social (30, 5) 17.5 -> 0.4038..., the model's 17/40 over it
    assert report.fairness.loc["m", "country_relative"] == pytest.approx(1.0)
    assert report.fairness.loc["m", "acquisition_channel_relative"] == pytest.approx(min(1.0, (17 / 40) / (17.5 / (130 / 3))))
    assert report.fairness.loc["m", "relative_ratio"] == pytest.approx(1.0)


def test_relative_fairness_flags_only_a_gap_wider_than_the_actual_one():
    slices = pd.DataFrame({"country": ["GB"] * 4 + ["FR"] * 4, "acquisition_channel": ["email"] * 8})
    actual = np.array([10.0] * 4 + [5.0] * 4)  # FR customers really spend half: actual ratio 0.5
    report = slice_table(
        actual,
        {"perfect": actual, "flat": np.full(8, 7.0), "widening": np.array([10.0] * 4 + [2.0] * 4)},
        slices,
        min_slice_size=2,
    )
    fairness = report.fairness
    assert fairness.loc["perfect", "disparate_impact_ratio"] == pytest.approx(0.5)
    assert fairness.loc["perfect", "relative_ratio"] == pytest.approx(1.0)
    assert fairness.loc["flat", "relative_ratio"] == pytest.approx(1.0)
    # 2 / 10 = 0.2 against the actual 0.5: the model widens the gap, 0.4 of the way
    assert fairness.loc["widening", "relative_ratio"] == pytest.approx(0.4)


def test_slice_table_one_fairness_row_per_model():
    slices = pd.DataFrame({"country": ["GB", "FR"] * 20, "acquisition_channel": ["email"] * 40})
    actual = np.arange(40, dtype=float)
    report = slice_table(actual, {"a": actual + 1, "b": np.full(40, 3.0)}, slices, min_slice_size=10)
    assert report.fairness.index.tolist() == ["a", "b"]
    assert report.fairness.loc["b", "country_ratio"] == pytest.approx(1.0)
    # one channel only: that dimension has no ratio, the overall ratio is the country's
    assert math.isnan(report.fairness.loc["b", "acquisition_channel_ratio"])
    assert report.fairness.loc["a", "disparate_impact_ratio"] == pytest.approx(20.0 / 21.0)


def test_slice_table_rejects_bad_slices():
    with pytest.raises(ValueError, match=r"slices is missing required column\(s\) \['acquisition_channel'\]"):
        slice_table([1, 2], {"m": [1, 2]}, pd.DataFrame({"country": ["a", "b"]}))
    with pytest.raises(ValueError, match="slices has 1 rows, y_true has 2"):
        slice_table([1, 2], {"m": [1, 2]}, pd.DataFrame({"country": ["a"], "acquisition_channel": ["x"]}))
