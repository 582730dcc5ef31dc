"""Aggregating rounds and printing tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.load import Result


@dataclass(frozen=True)
class Cell:
    """One contender at one concurrency, over every round."""

    results: tuple[Result, ...]

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.results)

    @property
    def rps_min(self) -> float:
        return min(r.rps for r in self.results)

    @property
    def rps_max(self) -> float:
        return max(r.rps for r in self.results)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.results)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.results)

    @property
    def failures(self) -> int:
        return sum(r.bad + r.errors for r in self.results)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    cells = [[str(value) for value in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def verdict(value: float, target: float) -> str:
    return f"{value:.2f}x {'✅' if value >= target else '❌'}"


def rps_text(cell: Cell) -> str:
    spread = f" ({cell.rps_min:,.0f}-{cell.rps_max:,.0f})" if len(cell.results) > 1 else ""
    failed = f" ⚠ {cell.failures} failed" if cell.failures else ""
    return f"{cell.rps:,.0f}{spread}{failed}"
