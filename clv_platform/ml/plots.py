"""The evaluation's figures: Lorenz curves, decile calibration and global feature importance.

Each builder returns a ``matplotlib.figure.Figure`` made without pyplot (no global state, no GUI
backend; it renders with Agg), so the same object goes to ``mlflow.log_figure(figure, "lorenz.png")``
and, through :func:`to_png` and :func:`markdown_image`, into Dagster metadata as a markdown image.
Figures are small (6 x 4 inches at 100 dpi) to read well in the Dagster UI.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clv_platform.ml.metrics import decile_calibration, lorenz_curve, normalized_gini

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_SIZE = (6.0, 4.0)
DPI = 100
# A Lorenz curve of a million customers is drawn through this many points: finer than the pixels.
CURVE_POINTS = 500
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _figure() -> tuple[Figure, object]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _on_grid(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= CURVE_POINTS:
        return x, y
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    return grid, np.interp(grid, x, y)


def lorenz_figure(y_true, predictions: Mapping[str, object], *, title: str = "Lorenz curves") -> Figure:
    """Share of actual revenue captured against share of customers taken by each model's ranking.

    One line per model (its normalized Gini in the legend), the perfect ranking (customers sorted by
    their actual revenue) dashed and the random ranking as the diagonal, dotted.
    """
    if not predictions:
        raise ValueError("predictions must name at least one model")
    figure, axes = _figure()
    axes.plot(*_on_grid(*lorenz_curve(y_true, y_true)), color="black", linestyle="--", linewidth=1, label="perfect")
    for name, pred in predictions.items():
        gini = normalized_gini(y_true, pred)
        axes.plot(*_on_grid(*lorenz_curve(y_true, pred)), linewidth=1.5, label=f"{name} (Gini {gini:.2f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="random")
    axes.set(
        xlabel="share of customers, highest predicted first",
        ylabel="share of actual revenue",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=title,
    )
    axes.legend(loc="lower right", fontsize="small")
    return figure


def calibration_figure(
    y_true, predictions: Mapping[str, object], *, n_bins: int = 10, title: str = "Decile calibration"
) -> Figure:
    """Mean actual against mean predicted revenue per decile of each model's prediction.

    One line per model through its deciles (:func:`~clv_platform.ml.metrics.decile_calibration`) and
    the diagonal, where a calibrated model's points lie; both axes symmetric-log (linear below 1).
    """
    if not predictions:
        raise ValueError("predictions must name at least one model")
    figure, axes = _figure()
    highest = 0.0
    for name, pred in predictions.items():
        table = decile_calibration(y_true, pred, n_bins=n_bins)
        axes.plot(table["mean_predicted"], table["mean_actual"], marker="o", markersize=3, linewidth=1.2, label=name)
        highest = max(highest, table["mean_predicted"].max(), table["mean_actual"].max())
    axes.plot([0, highest], [0, highest], color="grey", linestyle=":", linewidth=1, label="calibrated")
    # Revenue deciles span 0 to thousands: a log scale that is linear below 1 keeps the zero decile.
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_yscale("symlog", linthresh=1.0)
    axes.set(xlabel="mean predicted revenue in the decile", ylabel="mean actual revenue", title=title)
    axes.legend(loc="upper left", fontsize="small")
    return figure


def importance_figure(importance: pd.Series, *, top_n: int = 15, title: str = "Feature importance") -> Figure:
    """Horizontal bars of the ``top_n`` largest values of ``importance``, the largest on top.

    ``importance`` is :func:`clv_platform.ml.explain.global_importance`: mean absolute contribution
    (SHAP value) per feature.
    """
    if not isinstance(importance, pd.Series) or importance.empty:
        raise ValueError("importance must be a non-empty pandas Series indexed by feature")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    shown = importance.sort_values(ascending=False, kind="stable").head(top_n)[::-1]
    figure, axes = _figure()
    axes.barh(shown.index.astype(str), shown.to_numpy(dtype="float64"), color="tab:blue")
    axes.set(xlabel=str(importance.name or "importance").replace("_", " "), title=title)
    axes.tick_params(axis="y", labelsize="small")
    return figure


def to_png(figure: Figure, path: str | Path | None = None) -> bytes:
    """The figure as PNG bytes; also written to ``path`` when given."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    data = buffer.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def markdown_image(png: bytes, alt: str = "plot") -> str:
    """A markdown image embedding ``png``, for ``dagster.MetadataValue.md``.

    Examples
    --------
    >>> markdown_image(PNG_MAGIC, "lorenz")
    '![lorenz](data:image/png;base64,iVBORw0KGgo=)'
    """
    if not png.startswith(PNG_MAGIC):
        raise ValueError("png must be PNG bytes (they start with the PNG signature)")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
