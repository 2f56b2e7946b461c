"""``percentile``: the range that holds a given percentile of |x| (outliers clipped)."""

from __future__ import annotations

import numpy as np

from ._histogram import AbsHistogram

__all__ = ["PercentileObserver"]


class PercentileObserver:
    """Threshold at the ``percentile`` of |x| (default 99.99) from a streamed histogram."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048) -> None:
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = percentile
        self.hist = AbsHistogram(bins)

    def observe(self, array: np.ndarray) -> None:
        self.hist.observe(array)

    def range(self) -> tuple[float, float]:
        counts = self.hist.counts
        total = counts.sum()
        if not total:
            return (0.0, 0.0)
        cumulative = np.cumsum(counts) / total
        index = int(np.searchsorted(cumulative, self.percentile / 100.0))
        return self.hist.as_range((min(index, self.hist.bins - 1) + 1) * self.hist.width)
