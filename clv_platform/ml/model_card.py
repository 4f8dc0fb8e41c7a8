"""The model card logged with every registered CLV model: what it is, what it saw, how it did, where not to use it.

A card is markdown, so it reads the same in the MLflow UI (the model version's description and the
run's ``model_card.md`` artifact) and in a Dagster materialization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from clv_platform.markdown import markdown_table

# What each rung of the ladder is for and where it is known to be wrong, in the words a user needs.
KNOWN_LIMITS: dict[str, tuple[str, ...]] = {
    "heuristic": (
        "Assumes every customer keeps spending at their historical rate: it cannot see churn, so it "
        "overstates lapsed customers and understates new ones.",
    ),
    "linear": (
        "Linear in the BTYD core (frequency, recency, T, monetary value): no interactions, heavy tails "
        "pull the fit; negative predictions are clipped to 0.",
    ),
    "btyd": (
        "BG/NBD + Gamma-Gamma use only the purchase history (no web behaviour, channel or country); "
        "Gamma-Gamma assumes spend per purchase is independent of purchase frequency.",
        "Customers with net returns (monetary value <= 0) get the population mean spend.",
    ),
    "xgboost": (
        "Trees cannot extrapolate: customers beyond the training range (a record basket, a new "
        "channel) are predicted as the most extreme ones seen.",
        "Fitted on earlier cutoffs: a change of season, pricing or mix since then is not in it.",
    ),
}
KNOWN_LIMITS["xgboost_tuned"] = KNOWN_LIMITS["xgboost"]

GENERAL_LIMITS: tuple[str, ...] = (
    "Predicts net revenue in the horizon after the cutoff, floored at 0; returns after the horizon are not in it.",
    "Only customers with at least one purchase before the cutoff are scored; prospects have no prediction.",
    "Fairness is the ratio of mean predictions across country and acquisition-channel slices; a "
    "ratio below 1 can reflect real differences in value as well as bias.",
)

INTENDED_USE = (
    "Ranking and sizing existing customers by expected net revenue over the horizon, for campaign "
    "targeting, budget allocation and value tiers. Not for decisions about individuals' eligibility, "
    "credit or pricing, and not for customers without purchase history."
)


@dataclass(frozen=True)
class DataWindow:
    """The time window a model was fitted and evaluated on.

    Attributes
    ----------
    train_cutoffs
        The training cutoffs (their label windows end by ``evaluation_cutoff``).
    evaluation_cutoff
        The cutoff the metrics are computed on, never seen in training.
    horizon_days
        The label horizon.
    train_rows, evaluation_rows
        Customer-cutoff rows in each part.
    """

    train_cutoffs: tuple[str, ...]
    evaluation_cutoff: str
    horizon_days: int
    train_rows: int
    evaluation_rows: int

    def markdown(self) -> str:
        cutoffs = ", ".join(self.train_cutoffs) if self.train_cutoffs else "none (no supervised fit)"
        return "\n".join(
            [
                f"- training cutoffs: {cutoffs} ({self.train_rows:,} customer-cutoff rows)",
                f"- evaluation cutoff: {self.evaluation_cutoff} ({self.evaluation_rows:,} customers), "
                f"labels over the {self.horizon_days} days after it",
            ]
        )


@dataclass(frozen=True)
class ModelCard:
    """Everything a card says about one model.

    Attributes
    ----------
    model_name, rung
        The registered model and the ladder rung (``heuristic``, ``linear``, ``btyd``, ``xgboost`` ...).
    window
        The data window.
    metrics
        One row per model evaluated on the same window (index = model name, columns = metrics), so
        the card compares this model against every baseline.
    slices
        Per-slice metrics of this model (country, acquisition channel), or ``None``.
    fairness_ratio
        This model's disparate-impact ratio of mean prediction across slices, or ``None``.
    actual_fairness_ratio
        The same ratio of the actual revenue: what a perfect model would have.
    data_version, code_version
        Lineage: hash of the training examples and of the code.
    input_partitions
        The raw partitions the examples were built from (day range, rows and content hash per table).
    params
        Hyper-parameters and fitted sizes.
    decision
        The gate decision's reasons, when it was judged.
    """

    model_name: str
    rung: str
    window: DataWindow
    metrics: pd.DataFrame
    data_version: str
    code_version: str
    slices: pd.DataFrame | None = None
    fairness_ratio: float | None = None
    actual_fairness_ratio: float | None = None
    input_partitions: str = ""
    params: Mapping[str, object] = field(default_factory=dict)
    decision: Sequence[str] = ()

    def __post_init__(self):
        if not self.rung:
            raise ValueError("rung must be a non-empty model name")
        if not isinstance(self.metrics, pd.DataFrame) or self.rung not in self.metrics.index:
            raise ValueError(f"metrics must be a DataFrame indexed by model with a row for '{self.rung}'")

    def markdown(self) -> str:
        """The card as markdown."""
        comparison = self.metrics.rename_axis("model").reset_index()
        comparison.insert(0, "", ["**this model**" if m == self.rung else "" for m in comparison["model"]])
        lines = [
            f"# Model card: {self.model_name} ({self.rung})",
            "",
            "## Data window",
            self.window.markdown(),
            f"- data version: `{self.data_version}`; code version: `{self.code_version}`",
            *([f"- input partitions: {self.input_partitions}"] if self.input_partitions else []),
            "",
            "## Metrics on the evaluation cutoff, against every other model",
            markdown_table(comparison, floatfmt=".4f"),
        ]
        if self.slices is not None and len(self.slices):
            lines += ["", "## Slices", markdown_table(self.slices, floatfmt=".4f")]
        if self.fairness_ratio is not None:
            actual = "" if self.actual_fairness_ratio is None else f" (of the actual revenue: {self.actual_fairness_ratio:.3f})"
            lines += ["", f"Disparate-impact ratio of mean prediction across slices: {self.fairness_ratio:.3f}{actual}"]
        if self.decision:
            lines += ["", "## Gate decision", *(f"- {reason}" for reason in self.decision)]
        if self.params:
            params = ", ".join(f"{key}={value}" for key, value in sorted(self.params.items()))
            lines += ["", "## Parameters", params]
        limits = (*KNOWN_LIMITS.get(self.rung, ()), *GENERAL_LIMITS)
        lines += ["", "## Intended use", INTENDED_USE, "", "## Known limits", *(f"- {limit}" for limit in limits)]
        return "\n".join(lines) + "\n"
