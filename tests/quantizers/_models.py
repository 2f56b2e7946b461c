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


def hostile_chain(path: Path, blocks: int = 3, seed: int = 0) -> Path:
    """``blocks`` copies of :func:`hostile_mlp`'s pattern in a row, x[1,64] -> y[1,64].

    Block ``i`` is ``fc{i}a`` (plain) -> Relu -> ``fc{i}b`` (one output channel x OUTLIER) ->
    ``fc{i}c`` (scales it back). Every block crushes the signal when its outlier tensor is
    quantized per tensor, so the accuracy target needs one layer of *each* block in float.
    """
    rng = np.random.default_rng(seed)
    nodes, weights, source = [], [], "x"
    for i in range(blocks):
        wa, wb, wc = ((rng.standard_normal((64, 64)) / 8).astype(np.float32) for _ in range(3))
        wb[:, 0] *= OUTLIER
        wc[0, :] /= OUTLIER
        weights += [numpy_helper.from_array(w, f"w{i}{k}") for k, w in zip("abc", (wa, wb, wc), strict=True)]
        out = "y" if i == blocks - 1 else f"y{i}"
        nodes += [
            helper.make_node("MatMul", [source, f"w{i}a"], [f"a{i}"], name=f"fc{i}a"),
            helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("MatMul", [f"r{i}", f"w{i}b"], [f"h{i}"], name=f"fc{i}b"),
            helper.make_node("MatMul", [f"h{i}", f"w{i}c"], [out], name=f"fc{i}c"),
        ]
        source = out
    graph = helper.make_graph(
        nodes,
        "hostile_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        weights,
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
