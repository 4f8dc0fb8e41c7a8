"""The evaluation figures: what they draw, and that they render to PNG."""

import base64

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.plots import (
    PNG_MAGIC,
    calibration_figure,
    importance_figure,
    lorenz_figure,
    markdown_image,
    to_png,
)


@pytest.fixture
def evaluation():
    rng = np.random.default_rng(1)
    actual = rng.gamma(0.4, 200.0, size=2_000)
    predictions = {
        "heuristic": actual * rng.lognormal(0, 1.5, actual.size),
        "xgboost": actual * rng.lognormal(0, 0.3, actual.size),
    }
    return actual, predictions


def lines_by_label(figure):
    return {line.get_label(): line for line in figure.axes[0].get_lines()}


def test_lorenz_figure_has_one_line_per_model_plus_perfect_and_random(evaluation):
    actual, predictions = evaluation
    figure = lorenz_figure(actual, predictions)
    lines = lines_by_label(figure)
    assert len(lines) == 4
    assert set(lines) == {"perfect", "random", *(label for label in lines if label.split(" ")[0] in predictions)}
    assert any(label.startswith("xgboost (Gini ") for label in lines)
    # a curve runs from (0, 0) to (1, 1), and the better model lies above the worse
    x, y = lines["perfect"].get_data()
    assert (x[0], y[0], x[-1]) == (0.0, 0.0, 1.0) and y[-1] == pytest.approx(1.0)
    xgb = next(line for label, line in lines.items() if label.startswith("xgboost"))
    heuristic = next(line for label, line in lines.items() if label.startswith("heuristic"))
    assert np.mean(xgb.get_ydata()) > np.mean(heuristic.get_ydata())
    assert len(xgb.get_xdata()) == 500  # 2,001 points drawn through 500


def test_lorenz_figure_renders_to_png(evaluation, tmp_path):
    actual, predictions = evaluation
    path = tmp_path / "plots" / "lorenz.png"
    png = to_png(lorenz_figure(actual, predictions), path)
    assert png.startswith(PNG_MAGIC)
    assert path.read_bytes() == png
    assert len(png) > 10_000  # a drawn figure, not a blank canvas


def test_calibration_figure_has_one_line_per_model_through_its_deciles(evaluation):
    actual, predictions = evaluation
    lines = lines_by_label(calibration_figure(actual, predictions))
    assert set(lines) == {"heuristic", "xgboost", "calibrated"}
    # the x of each point is the decile's mean prediction
    x = lines["xgboost"].get_xdata()
    assert len(x) == 10
    assert np.all(np.diff(x) > 0)
    assert to_png(calibration_figure(actual, predictions)).startswith(PNG_MAGIC)


def test_importance_figure_shows_the_top_features_largest_on_top():
    importance = pd.Series({"spend_365d": 40.0, "recency": 25.0, "T": 5.0, "frequency": 12.0}, name="mean_abs_contribution")
    figure = importance_figure(importance, top_n=3)
    axes = figure.axes[0]
    bars = axes.patches
    assert [bar.get_width() for bar in bars] == [12.0, 25.0, 40.0]  # drawn bottom-up
    assert [label.get_text() for label in axes.get_yticklabels()] == ["frequency", "recency", "spend_365d"]
    assert axes.get_xlabel() == "mean abs contribution"
    assert to_png(figure).startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: lorenz_figure([1, 2], {}), "at least one model"),
        (lambda: calibration_figure([1, 2], {}), "at least one model"),
        (lambda: lorenz_figure([0, 0], {"m": [1, 2]}), "must not sum to zero"),
        (lambda: importance_figure(pd.Series(dtype=float)), "non-empty pandas Series"),
    ],
)
def test_figures_reject_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_markdown_image_embeds_the_png(evaluation):
    actual, predictions = evaluation
    png = to_png(lorenz_figure(actual, predictions))
    text = markdown_image(png, "Lorenz curves")
    assert text.startswith("![Lorenz curves](data:image/png;base64,")
    assert base64.b64decode(text.split(",", 1)[1].rstrip(")")) == png
    with pytest.raises(ValueError, match="must be PNG bytes"):
        markdown_image(b"GIF89a")
