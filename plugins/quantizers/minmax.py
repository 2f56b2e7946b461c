"""``minmax``: the smallest and largest value seen (running, per tensor)."""

from __future__ import annotations

import numpy as np

__all__ = ["MinMaxObserver"]


class MinMaxObserver:
    """Running min and max; keeps every outlier (the right choice for weights and bounded activations)."""

    def __init__(self) -> None:
        self.low = np.inf
        self.high = -np.inf

    def observe(self, array: np.ndarray) -> None:
        data = np.asarray(array)
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
        if finite.size:
            self.low = min(self.low, float(finite.min()))
            self.high = max(self.high, float(finite.max()))

    def range(self) -> tuple[float, float]:
        if not np.isfinite(self.low):
            return (0.0, 0.0)
        return (min(self.low, 0.0), max(self.high, 0.0))  # zero must be representable exactly
