"""Built-in calibration algorithms (hook family 3): ``minmax``, ``percentile``, ``entropy``, ``mse``.

Each record's ``factory()`` returns an observer with ``observe(array)`` (once per calibration batch
of one tensor; statistics are streamed, memory is constant in the number of batches) and
``range() -> (low, high)``. Histogram-based observers return ``(-t, t)`` for signed tensors and
``(0, t)`` for non-negative ones.

The INT8 quantization host (:mod:`openatc.quantize`, ``--calibration_config`` and
``--compression_optimize_conf``) looks them up by the ``algorithm`` of the calibration config.
"""

from __future__ import annotations

from collections.abc import Iterator

from openatc.hookspecs import hookimpl
from openatc.types import Quantizer

from .entropy import EntropyObserver
from .minmax import MinMaxObserver
from .mse import MseObserver
from .percentile import PercentileObserver

__all__ = ["EntropyObserver", "MinMaxObserver", "MseObserver", "PercentileObserver", "openatc_quantizers"]


@hookimpl
def openatc_quantizers() -> Iterator[Quantizer]:
    yield Quantizer("minmax", MinMaxObserver, "running min/max")
    yield Quantizer("percentile", PercentileObserver, "99.99th percentile of |x| (streamed histogram)")
    yield Quantizer("entropy", EntropyObserver, "KL-divergence-optimal threshold (TensorRT's method)")
    yield Quantizer("mse", MseObserver, "threshold minimising the expected squared INT8 error")
