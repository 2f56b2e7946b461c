"""Models and calibration data for the INT8 tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _precision_models():  # the precision tests' models module, shared by path
    path = Path(__file__).resolve().parents[1] / "precision" / "_models.py"
    spec = importlib.util.spec_from_file_location("_precision_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conv_net = _precision_models().conv_net
cosine = _precision_models().cosine

#: The hostile model's outlier channel is this many times larger than the others.
OUTLIER = 2000.0


def hostile_mlp(path: Path, seed: int = 0) -> Path:
    """x[1,64] -> MatMul(fc1) -> Relu -> MatMul(fc2, one output channel x OUTLIER) -> h -> MatMul(fc3) -> y[1,16].

    ``h`` has one channel about OUTLIER times larger than the rest; fc3 scales that channel back
    down, so ``y`` depends on all channels alike. Quantizing ``h`` per tensor crushes the normal
    channels to a few levels: the model is accurate only with fc2/fc3 (or ``h``) left in float.
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((64, 64)) / 8).astype(np.float32)
    w2 = (rng.standard_normal((64, 64)) / 8).astype(np.float32)
    w3 = (rng.standard_normal((64, 16)) / 8).astype(np.float32)
    w2[:, 0] *= OUTLIER
    w3[0, :] /= OUTLIER
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["h"], name="fc2"),
        helper.make_node("MatMul", ["h", "w3"], ["y"], name="fc3"),
    ]
    graph = helper.make_graph(
        nodes,
        "hostile_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [numpy_helper.from_array(w, n) for n, w in (("w1", w1), ("w2", w2), ("w3", w3))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_samples(folder: Path, shapes: dict[str, tuple[int, ...]], count: int, seed: int = 0) -> Path:
    """``count`` N(0,1) float32 samples per input: one subfolder per input when there are several."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in shapes.items():
        target = folder / name if len(shapes) > 1 else folder
        target.mkdir(exist_ok=True)
        for i in range(count):
            np.save(target / f"{i}.npy", rng.standard_normal(shape).astype(np.float32))
    return folder
