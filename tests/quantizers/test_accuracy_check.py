"""The samples the accuracy target is judged on, and the score it is judged by.

A target judged on the 3 held-out samples of a 16-sample set passed on PP-OCR det (0.991) while
24 new inputs gave 0.965; the check now tops the held-out samples up with calibration samples and
scores the pooled cosine less its jackknife standard error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openatc.errors import OpenATCError
from openatc.quantize import QuantizationOptions, _split, parse_quantization
from openatc.quantize._data import InputSpec, Samples
from openatc.quantize._emit import cosine_lower_bound, cosine_metric


def _samples(count: int) -> Samples:
    spec = InputSpec("x", np.dtype(np.float32), (1, 4))
    return Samples({"x": [(Path(f"/nonexistent/{i}.npy"), 0) for i in range(count)]}, [spec])


def _files(samples: Samples) -> list[str]:
    return [path.name for path, _ in samples.entries["x"]]


def _options(**settings: object) -> QuantizationOptions:
    return QuantizationOptions(source="test", data_dirs=(), **settings)  # type: ignore[arg-type]


def test_check_tops_held_out_up_with_calibration_samples() -> None:
    calib, held, check = _split(_samples(20), _options())
    assert len(calib) == 16 and _files(held) == [f"{i}.npy" for i in range(16, 20)]
    assert len(check) == 16
    assert _files(check)[:4] == _files(held)  # held-out first
    assert set(_files(check)[4:]) <= set(_files(calib))


def test_check_is_the_held_out_set_when_that_is_large_enough() -> None:
    _, held, check = _split(_samples(20), _options(check_samples=3))
    assert _files(check) == _files(held) and len(held) == 4
    _, held, check = _split(_samples(100), _options(holdout_fraction=0.5))
    assert len(check) == len(held) == 50


def test_check_without_held_out_samples() -> None:
    calib, held, check = _split(_samples(30), _options(holdout_fraction=0.0, check_samples=10))
    assert len(calib) == 30 and len(held) == len(check) == 10


def test_check_never_exceeds_the_data() -> None:
    calib, held, check = _split(_samples(5), _options(check_samples=16))
    assert len(calib) == 4 and len(held) == 1 and len(check) == 5


def test_check_samples_is_validated(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    config = tmp_path / "c.json"
    config.write_text('{"data_dir": "d", "check_samples": 0}')
    with pytest.raises(OpenATCError) as info:
        parse_quantization({"calibration_config": str(config)})
    assert info.value.code == "E10060" and "check_samples" in info.value.message
    config.write_text('{"data_dir": "d", "check_samples": 8}')
    assert parse_quantization({"calibration_config": str(config)}).check_samples == 8


def _pairs(errors: list[float], seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    reference, candidate = [], []
    for error in errors:
        a = rng.standard_normal(256)
        reference.append({"y": a, "ids": np.arange(3)})  # integer outputs are not scored
        candidate.append({"y": a + error * rng.standard_normal(256), "ids": np.arange(3) + 1})
    return reference, candidate


def test_lower_bound_is_below_the_pooled_cosine_by_the_spread() -> None:
    reference, candidate = _pairs([0.05, 0.05, 0.05, 0.5, 0.05, 0.05])
    pooled = cosine_metric(reference, candidate)
    bound = cosine_lower_bound(reference, candidate)
    # jackknife standard error, written out: cosines of the pooled sums with each sample left out
    sums = np.array(
        [[r["y"] @ c["y"], r["y"] @ r["y"], c["y"] @ c["y"]] for r, c in zip(reference, candidate, strict=True)]
    )
    total = sums.sum(axis=0)
    loo = np.array([(total - s)[0] / np.sqrt((total - s)[1] * (total - s)[2]) for s in sums])
    stderr = np.sqrt(5 / 6 * np.sum((loo - loo.mean()) ** 2))
    assert bound == pytest.approx(pooled - stderr, abs=1e-12)
    assert stderr > 1e-3  # one bad sample of six: a visible margin
    even = cosine_lower_bound(*_pairs([0.05] * 6))
    assert cosine_metric(*_pairs([0.05] * 6)) - even < stderr  # equal errors: a small margin


def test_lower_bound_edge_cases() -> None:
    reference, candidate = _pairs([0.1])
    assert cosine_lower_bound(reference, candidate) == cosine_metric(reference, candidate)  # one sample
    same = [{"y": np.ones(4)}, {"y": np.full(4, 2.0)}]
    assert cosine_lower_bound(same, same) == pytest.approx(1.0)
    zeros = [{"y": np.zeros(4)}, {"y": np.zeros(4)}]
    assert cosine_lower_bound(zeros, zeros) == 1.0
