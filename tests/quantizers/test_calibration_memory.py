"""Large models reach ONNX Runtime through a file with external weights: same ranges, same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from openatc.plugins.quantizers import MinMaxObserver
from openatc.quantize import _calibrate
from openatc.quantize._data import InputSpec, Samples

from ._models import hostile_mlp


def _samples(count: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{"x": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(count)]


class _Listed(Samples):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self.specs = {"x": InputSpec("x", np.dtype(np.float32), (1, 64))}

    def __len__(self) -> int:
        return len(self.feeds)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.feeds[index]


def test_external_weights_give_the_same_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = onnx.load(hostile_mlp(tmp_path / "mlp.onnx"))
    before = model.SerializeToString()
    tensors = _calibrate.float_tensors(model, ("MatMul", "Relu"), set())
    assert len(tensors) >= 3
    samples = _Listed(_samples())
    in_memory = _calibrate.calibrate(model, samples, tensors, MinMaxObserver, symmetric=False)
    monkeypatch.setattr(_calibrate, "EXTERNAL_WEIGHTS_BYTES", 0)
    monkeypatch.setattr(_calibrate, "_SMALL_TENSOR", 0)  # every weight goes to the external file
    external = _calibrate.calibrate(model, samples, tensors, MinMaxObserver, symmetric=False)
    assert external == in_memory  # the same float computation: bit-identical ranges
    assert model.SerializeToString() == before  # the caller's model is left as it was
    # and the session's outputs match the onnx reference evaluator
    from onnx.reference import ReferenceEvaluator

    session = _calibrate.ort_session(model, ["h"])
    ref = ReferenceEvaluator(model)
    feeds = samples[0]
    got = session.run(None, feeds)[0]
    want = ref.run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_weight_bytes_counts_initializers(tmp_path: Path) -> None:
    model = onnx.load(hostile_mlp(tmp_path / "mlp.onnx"))
    assert _calibrate.weight_bytes(model) == sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
