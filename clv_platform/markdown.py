"""Markdown for asset metadata and model cards: pure Python, usable from every layer."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A markdown table for asset metadata, without the optional `tabulate` dependency."""

    def cell(value) -> str:
        text = format(value, floatfmt) if isinstance(value, float) else str(value)
        # A raw value (a product description, say) must not end the cell or the row, nor open a tag.
        return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
