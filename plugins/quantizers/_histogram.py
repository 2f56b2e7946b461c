"""A streamed histogram of |x|: constant memory whatever the number of calibration batches."""

from __future__ import annotations

import numpy as np

__all__ = ["AbsHistogram"]


class AbsHistogram:
    """Counts of ``|x|`` in ``bins`` equal bins over ``[0, edge]``; ``edge`` grows with the data.

    When a batch holds a value beyond ``edge``, the bins widen to the new maximum and the old
    counts move to the new bins that hold their old bin centres (one bin's error at most).
    The signed minimum is tracked so that non-negative tensors (after ReLU) get a one-sided range.
    """

    def __init__(self, bins: int = 2048) -> None:
        self.bins = bins
        self.counts = np.zeros(bins, np.float64)
        self.edge = 0.0
        self.low = np.inf
        self.high = -np.inf

    def observe(self, array: np.ndarray) -> None:
        data = np.asarray(array, np.float64).ravel()
        data = data[np.isfinite(data)]
        if not data.size:
            return
        self.low, self.high = min(self.low, float(data.min())), max(self.high, float(data.max()))
        magnitude = np.abs(data)
        top = float(magnitude.max())
        if top > self.edge:
            self._widen(top)
        if self.edge == 0.0:
            self.counts[0] += data.size
            return
        counts, _ = np.histogram(magnitude, bins=self.bins, range=(0.0, self.edge))
        self.counts += counts

    def _widen(self, top: float) -> None:
        if self.edge > 0.0 and self.counts.any():
            centres = (np.arange(self.bins) + 0.5) * (self.edge / self.bins)
            self.counts, _ = np.histogram(centres, bins=self.bins, range=(0.0, top), weights=self.counts)
        self.edge = top

    @property
    def width(self) -> float:
        return self.edge / self.bins

    @property
    def signed(self) -> bool:
        """Whether negative values were seen (then ranges are symmetric around 0)."""
        return self.low < 0.0

    def as_range(self, threshold: float) -> tuple[float, float]:
        """``(-t, t)`` for signed data, ``(0, t)`` for non-negative data."""
        if not np.isfinite(self.low):
            return (0.0, 0.0)
        return (-threshold, threshold) if self.signed else (0.0, threshold)
