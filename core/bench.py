"""Running an .om from files or generated data, with a latency summary (``openatc run``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openatc.errors import OpenATCError
from openatc.types import TensorSpec

__all__ = ["RunSummary", "generate_input", "load_inputs", "time_runs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """Latency statistics of timed runs, in milliseconds."""

    times_ms: tuple[float, ...]
    batch_size: int

    def stats(self) -> dict[str, float]:
        t = np.asarray(self.times_ms)
        mean = float(t.mean())
        return {
            "min": float(t.min()),
            "max": float(t.max()),
            "mean": mean,
            "median": float(np.median(t)),
            "percentile(99%)": float(np.percentile(t, 99)),
            "count": len(t),
            "throughput": 1000.0 * self.batch_size / mean if mean > 0 else 0.0,
        }


def _concrete_shape(spec: TensorSpec) -> tuple[int, ...]:
    if any(not isinstance(d, int) for d in spec.shape):
        raise OpenATCError(
            "E40010", f"input '{spec.name}' has dynamic dims {list(spec.shape)}; give its data with --input"
        )
    return tuple(int(d) for d in spec.shape)


def generate_input(spec: TensorSpec, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Zeros, or random data: floats in [0, 1), integers in [0, 16), booleans."""
    shape = _concrete_shape(spec)
    dtype = np.dtype(spec.dtype)
    if kind == "zero":
        return np.zeros(shape, dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 16, shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def load_inputs(paths: Sequence[Path], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """One file per input, in input order: ``.npy``, or raw ``.bin`` in the input's dtype and shape."""
    if len(paths) != len(specs):
        raise OpenATCError(
            "E10001",
            f"--input gives {len(paths)} file(s) but the model has {len(specs)} input(s): {[s.name for s in specs]}",
            hint="Give one file per input, comma-separated, in input order.",
        )
    feeds: dict[str, np.ndarray] = {}
    for path, spec in zip(paths, specs, strict=True):
        if not path.is_file():
            raise OpenATCError("E10410", f"--input file '{path}' does not exist")
        if path.suffix.lower() == ".npy":
            try:
                feeds[spec.name] = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise OpenATCError("E10001", f"--input file '{path}' is not a valid .npy file: {exc}") from None
            continue
        shape = _concrete_shape(spec)
        dtype = np.dtype(spec.dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise OpenATCError(
                "E10001",
                f"--input file '{path}' has {size} B; input '{spec.name}' ({spec.dtype}{list(shape)}) "
                f"needs {expected} B",
            )
        feeds[spec.name] = np.fromfile(path, dtype=dtype).reshape(shape)
    return feeds


def time_runs(session: Any, feeds: dict[str, np.ndarray], loop: int, warmup: int) -> tuple[dict, RunSummary]:
    """Runs ``warmup`` untimed and ``loop`` timed iterations; returns the last outputs and timings."""
    outputs: dict[str, np.ndarray] = {}
    for _ in range(max(warmup, 0)):
        outputs = session.run(feeds)
    times = []
    for _ in range(max(loop, 1)):
        start = time.perf_counter()
        outputs = session.run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    batch = 1
    first = next(iter(feeds.values()), None)
    if first is not None and first.ndim > 0:
        batch = int(first.shape[0])
    return outputs, RunSummary(tuple(times), batch)
