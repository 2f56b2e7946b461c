"""The built-in calibration algorithms (hook family 3) on known distributions, streamed."""

from __future__ import annotations

import time

import numpy as np
import pytest

import openatc
from openatc.plugins.quantizers import EntropyObserver, MinMaxObserver, MseObserver, PercentileObserver


def _batches(seed: int = 0, n: int = 20, outlier: float = 50.0) -> list[np.ndarray]:
    """Gaussian batches (sigma 1) whose spread grows, plus one outlier in the last batch."""
    rng = np.random.default_rng(seed)
    batches = [rng.standard_normal(4096).astype(np.float32) * (0.5 + 0.5 * i / n) for i in range(n)]
    batches[-1][0] = outlier
    return batches


def test_hook_contributes_four_quantizers() -> None:
    pm = openatc.get_plugin_manager(load_entrypoints=False)  # a fresh manager, never the global one
    found = pm.quantizers()  # built in: registered by the manager itself
    assert {"minmax", "percentile", "entropy", "mse"} <= set(found)
    observer = found["minmax"].factory()
    observer.observe(np.array([-1.0, 2.0], np.float32))
    assert observer.range() == (-1.0, 2.0)
    assert isinstance(found["entropy"], openatc.Quantizer)


def test_minmax_streams_exactly() -> None:
    batches = _batches()
    observer = MinMaxObserver()
    for b in batches:
        observer.observe(b)
    allv = np.concatenate(batches)
    assert observer.range() == (float(allv.min()), float(allv.max()))
    relu = MinMaxObserver()
    relu.observe(np.array([1.0, 3.0, np.inf]))
    assert relu.range() == (0.0, 3.0)  # zero stays representable; inf ignored


@pytest.mark.parametrize(("cls", "ceiling"), [(PercentileObserver, 10.0), (EntropyObserver, 10.0), (MseObserver, 49.0)])
def test_histogram_methods_clip_outliers(cls: type, ceiling: float) -> None:
    """Percentile and entropy clip the outlier (50) hard; MSE weighs its clipping error and clips less."""
    observer = cls()
    for b in _batches():
        observer.observe(b)
    low, high = observer.range()
    assert low == -high
    assert 2.0 < high < ceiling, (cls.__name__, high)


def test_mse_on_a_gaussian_clips_near_four_sigma() -> None:
    observer = MseObserver()
    observer.observe(np.random.default_rng(4).standard_normal(200000))
    assert 2.5 < observer.range()[1] < 5.0


@pytest.mark.parametrize("cls", [PercentileObserver, EntropyObserver, MseObserver])
def test_streamed_equals_one_batch(cls: type) -> None:
    """Re-binning as the range grows costs at most a few percent against seeing all data at once."""
    batches = _batches(seed=1)
    streamed, whole = cls(), cls()
    for b in batches:
        streamed.observe(b)
    whole.observe(np.concatenate(batches))
    assert streamed.range()[1] == pytest.approx(whole.range()[1], rel=0.05)


@pytest.mark.parametrize("cls", [PercentileObserver, EntropyObserver, MseObserver])
def test_non_negative_is_one_sided(cls: type) -> None:
    observer = cls()
    observer.observe(np.abs(np.random.default_rng(2).standard_normal(10000)))
    low, high = observer.range()
    assert low == 0.0 and 1.5 < high <= 5.0


def test_state_is_constant_in_batches() -> None:
    observer = EntropyObserver()
    for b in _batches(n=5):
        observer.observe(b)
    size = observer.hist.counts.nbytes
    for b in _batches(n=50):
        observer.observe(b)
    assert observer.hist.counts.nbytes == size == 2048 * 8


def test_empty_and_bad_arguments() -> None:
    for cls in (MinMaxObserver, PercentileObserver, EntropyObserver, MseObserver):
        assert cls().range() == (0.0, 0.0)
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(percentile=0)


def test_entropy_is_fast_enough() -> None:
    observer = EntropyObserver()
    observer.observe(np.random.default_rng(3).standard_normal(100000))
    start = time.perf_counter()
    observer.range()
    assert time.perf_counter() - start < 5.0
