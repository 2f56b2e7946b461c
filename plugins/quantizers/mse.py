"""``mse``: the threshold that minimises the expected squared error of INT8 quantization."""

from __future__ import annotations

import numpy as np

from ._histogram import AbsHistogram

__all__ = ["MseObserver"]


class MseObserver:
    """Clipping error (values beyond t) plus rounding noise (step**2 / 12 inside), over the histogram."""

    def __init__(self, bins: int = 2048, candidates: int = 256) -> None:
        self.hist = AbsHistogram(bins)
        self.candidates = candidates

    def observe(self, array: np.ndarray) -> None:
        self.hist.observe(array)

    def range(self) -> tuple[float, float]:
        counts = self.hist.counts
        if not counts.sum():
            return (0.0, 0.0)
        width = self.hist.width
        centres = (np.arange(self.hist.bins) + 0.5) * width
        thresholds = np.linspace(width, self.hist.edge, self.candidates)
        levels = 127.0 if self.hist.signed else 255.0
        step = thresholds / levels
        clipped = np.clip(centres[None, :] - thresholds[:, None], 0.0, None) ** 2
        inside = (centres[None, :] <= thresholds[:, None]) * (step[:, None] ** 2 / 12.0)
        error = ((clipped + inside) * counts[None, :]).sum(axis=1)
        return self.hist.as_range(float(thresholds[int(np.argmin(error))]))
