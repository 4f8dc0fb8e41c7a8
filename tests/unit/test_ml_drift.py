"""PSI by hand, by clv_platform.ml.drift.psi and by Evidently 0.7, on cases typical of CLV features.

The Evidently numbers asserted here are hand-computed from its binning rule (equal-width Sturges bins for
more than 20 distinct reference values, one bin per value otherwise, epsilon 1e-4 or min share / 1e6). If an
Evidently upgrade changes that rule these tests fail on purpose: re-measure before trusting its number.
"""

import math

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.drift import drift_report, drifted_columns, psi, psi_bin_edges
from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN, PREDICTION_COLUMN
from clv_platform.ml.synthetic import make_examples


def both(reference, current):
    result = drift_report(pd.DataFrame({"x": reference}), pd.DataFrame({"x": current}), ["x"])
    return result.psi["x"], result.evidently_psi["x"]


def test_psi_by_hand_on_three_values():
    reference = [0] * 50 + [1] * 30 + [2] * 20
    current = [0] * 30 + [1] * 30 + [2] * 40
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)  # 0.240795
    assert psi(reference, current) == pytest.approx(expected)
    assert psi(reference, reference) == 0.0


def test_psi_bins_are_reference_deciles_with_ties_merged():
    # 70 % zeros: deciles 0.1..0.7 are 0, merged into one bin holding exactly the zeros
    reference = [0] * 70 + list(range(1, 31))
    assert psi_bin_edges(reference).tolist() == [0, 10, 20]
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        psi([1, 2], [1, 2], bins=1)
    with pytest.raises(ValueError, match="current must be finite"):
        psi([1, 2], [1, float("nan")])


def test_psi_counts_values_outside_the_reference_range():
    reference = np.arange(100.0)
    current = np.arange(100.0) + 1000  # everything above the reference: all in the top decile bin
    expected = (1.0 - 0.1) * math.log(1.0 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert psi(reference, current) == pytest.approx(expected)


def test_evidently_agrees_when_each_value_has_its_own_bin():
    reference = [0] * 50 + [1] * 30 + [2] * 20
    current = [0] * 30 + [1] * 30 + [2] * 40
    ours, evidently = both(reference, current)
    assert evidently == pytest.approx(ours, abs=1e-9)
    assert evidently == pytest.approx(0.240795, abs=1e-6)


def test_evidently_misses_a_shift_in_the_zero_share_of_a_skewed_column():
    # spend_30d-like: 80 % zeros, 19 % small spenders near 10, 1 % big spenders near 1000 (201 distinct values).
    small = [10 + 0.01 * i for i in range(190)]
    big = [1000.0 + i for i in range(10)]
    reference = [0.0] * 800 + small + big
    current = [0.0] * 600 + small * 2 + big * 2  # zero-spenders fall from 80 % to 60 %, the rest double
    ours, evidently = both(reference, current)
    # ours: bins {0}, (0, 10.99], (10.99, inf) hold .8/.1/.1 of the reference and .6/.2/.2 of the current
    assert ours == pytest.approx(0.2 * math.log(0.8 / 0.6) + 2 * 0.1 * math.log(2), abs=1e-9)  # 0.196166
    # Evidently: 12 equal-width bins over [0, 1009]; the first holds zeros and small spenders (.99 vs .98),
    # the last the big ones (.01 vs .02): 0.01 ln(.99/.98) + 0.01 ln 2 = 0.007033
    assert evidently == pytest.approx(0.01 * math.log(0.99 / 0.98) + 0.01 * math.log(2), abs=1e-6)
    assert ours > 25 * evidently


def test_one_outlier_in_the_current_data_hides_drift_from_evidently():
    small = [10 + 0.01 * i for i in range(190)]
    big = [1000.0 + i for i in range(10)]
    reference = [0.0] * 800 + small + big
    current = [0.0] * 600 + small * 2 + big * 2
    current[-1] = 1e6  # one whale widens every equal-width bin
    ours, evidently = both(reference, current)
    assert ours == pytest.approx(0.196, abs=0.01)
    # everything but the whale in the first bin: (0.001 - 1e-4) ln 10 + 0.001 ln(1/0.999)
    assert evidently == pytest.approx(0.0009 * math.log(10) + 0.001 * math.log(1 / 0.999), abs=1e-6)


def _counts(shares: dict[int, int]) -> list[float]:
    return [float(value) for value, count in shares.items() for _ in range(count)]


def test_evidently_epsilon_jumps_on_large_references():
    # orders-like counts; 0.5 % of the current customers have a count (4) the reference never had.
    # Evidently's empty-bin share is 1e-4, but min share / 1e6 once some reference share is <= 1e-4: with
    # 20,000 rows one customer with a count of 5 flips it, and the same 0.5 % weighs 4.6x more.
    small_ref = _counts({0: 3500, 1: 1000, 2: 375, 3: 124, 5: 1})
    small_cur = _counts({0: 3500, 1: 1000, 2: 375, 3: 100, 4: 25})
    large_ref = _counts({0: 14000, 1: 4000, 2: 1500, 3: 499, 5: 1})
    large_cur = _counts({0: 14000, 1: 4000, 2: 1500, 3: 400, 4: 100})
    ours_small, evidently_small = both(small_ref, small_cur)
    ours_large, evidently_large = both(large_ref, large_cur)
    assert evidently_small == pytest.approx(
        -0.0048 * math.log(0.02 / 0.0248) + 0.0049 * math.log(0.005 / 1e-4) + 1e-4 * math.log(2), rel=1e-6
    )  # 0.020271
    assert evidently_large == pytest.approx(
        -0.00495 * math.log(0.02 / 0.02495) + 0.005 * math.log(0.005 / 5e-11) + 5e-5 * math.log(2), rel=1e-6
    )  # 0.093233
    # ours: deciles give bins {0}, {1}, {2 or more}, whose shares (.7, .2, .1) did not move
    assert ours_small == ours_large == 0.0


def test_drift_report_on_features_and_prediction(tmp_path):
    reference = make_examples(n_customers=600, cutoffs=("2024-01-01",), seed=8)
    current = make_examples(n_customers=600, cutoffs=("2024-01-01",), seed=9, rate_multiplier=3.0)
    stable = make_examples(n_customers=600, cutoffs=("2024-01-01",), seed=10)
    for frame in (reference, current, stable):
        frame[PREDICTION_COLUMN] = frame[LABEL_COLUMN] * 0.8  # stands in for a model's scores
    columns = [*FEATURE_COLUMNS, PREDICTION_COLUMN]

    drifted = drift_report(reference, current, columns)
    steady = drift_report(reference, stable, columns)
    assert set(drifted.psi) == set(drifted.evidently_psi) == set(columns)
    assert drifted.psi["orders_365d"] > 0.25 and steady.psi["orders_365d"] < 0.1
    assert PREDICTION_COLUMN in drifted_columns(drifted.psi)
    assert drifted_columns(steady.psi) == []
    assert drifted.table().index[0] == max(drifted.psi, key=drifted.psi.get)

    path = drifted.save_html(tmp_path / "reports" / "drift.html")
    assert path.exists() and path.stat().st_size > 100_000 and drifted.html_path == path
    assert "orders_365d" in path.read_text(errors="ignore")


def test_drift_report_validates_its_frames():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(ValueError, match="current is missing required column"):
        drift_report(frame, frame[["b"]], ["a"])
    with pytest.raises(ValueError, match="column 'b' must be numeric"):
        drift_report(frame, frame, ["b"])


def test_drifted_columns_threshold_and_key_columns():
    values = {PREDICTION_COLUMN: 0.3, "orders_30d": 0.9, "recency": 0.25, "country_code": 5.0}
    assert drifted_columns(values) == ["orders_30d", PREDICTION_COLUMN]  # not a model input: ignored
    assert drifted_columns(values, key_columns=None) == ["country_code", "orders_30d", PREDICTION_COLUMN]
    assert drifted_columns(values, threshold=0.1, key_columns=["recency"]) == ["recency"]
    with pytest.raises(ValueError, match="psi of column 'recency' must be a finite number"):
        drifted_columns({"recency": float("nan")})
