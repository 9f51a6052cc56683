"""Markdown tables: the one renderer of the benchmark's and the performance suite's reports."""
from __future__ import annotations

from typing import List, Sequence


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> List[str]:
    """The lines of a GitHub Markdown table: `head`, the rule, one line per row (cells as `str`)."""
    return (["| " + " | ".join(str(h) for h in head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
