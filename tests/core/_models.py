"""Small ONNX models for core tests (imported by the test modules of this folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp(path: Path, *, batch: int | str = "N", hidden: int = 64, seed: int = 0) -> Path:
    """x[batch, 16] -> MatMul(16 x hidden) -> Add -> Relu -> MatMul(hidden x 8) -> y[batch, 8].

    Weights are large enough (>= 1 KiB) to land in the .om weights section; a Shape/Reshape
    subgraph gives constant folding something to do.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((16, hidden)).astype(np.float32)
    b1 = rng.standard_normal((hidden,)).astype(np.float32)
    w2 = rng.standard_normal((hidden, 8)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="bias1"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu1"),
        helper.make_node("Identity", ["h2"], ["h3"], name="identity1"),
        helper.make_node("Shape", ["h3"], ["s"], name="shape1"),
        helper.make_node("Reshape", ["h3", "s"], ["h4"], name="reshape1"),
        helper.make_node("MatMul", ["h4", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def ort_run(path: Path, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    """The reference: ONNX Runtime on the original model."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(outputs, feeds)
