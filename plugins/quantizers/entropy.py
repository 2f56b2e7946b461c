"""``entropy``: the threshold that minimises the KL divergence between FP32 and INT8 histograms.

TensorRT's calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017): for each candidate
threshold, the histogram up to it (outliers folded into the last bin) is compared with its
quantization to 128 levels.
"""

from __future__ import annotations

import numpy as np

from ._histogram import AbsHistogram

__all__ = ["EntropyObserver"]


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    p, q = p[mask] / p.sum(), q[mask]
    q = np.where(q > 0, q, 1e-12) / max(q.sum(), 1e-12)
    return float(np.sum(p * np.log(p / q)))


class EntropyObserver:
    """KL-optimal threshold over a streamed histogram of |x| (``bins`` bins, ``levels`` INT8 levels)."""

    def __init__(self, bins: int = 2048, levels: int = 128) -> None:
        self.hist = AbsHistogram(bins)
        self.levels = levels

    def observe(self, array: np.ndarray) -> None:
        self.hist.observe(array)

    def range(self) -> tuple[float, float]:
        counts = self.hist.counts
        if not counts.sum():
            return (0.0, 0.0)
        best, best_index = np.inf, self.hist.bins
        for index in range(self.levels, self.hist.bins + 1):
            reference = counts[:index].copy()
            reference[-1] += counts[index:].sum()
            window = counts[:index]
            sizes = np.full(self.levels, index // self.levels)
            sizes[: index % self.levels] += 1
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            used = window > 0
            nonzero = np.add.reduceat(used.astype(np.float64), starts)
            share = np.divide(np.add.reduceat(window, starts), nonzero, out=np.zeros(self.levels), where=nonzero > 0)
            expanded = np.where(used, np.repeat(share, sizes), 0.0)
            divergence = _kl(reference, expanded)
            if divergence < best:
                best, best_index = divergence, index
        return self.hist.as_range(best_index * self.hist.width)
