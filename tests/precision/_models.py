"""Small ONNX models for the precision tests: a conv net, an FP16-overflow model, an MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_net(path: Path, seed: int = 0) -> Path:
    """x[1,3,32,32] -> Conv(16) -> BN -> Relu -> Conv(32, stride 2) -> Relu -> GAP -> Flatten -> Gemm -> y[1,10]."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    inits = {
        "c1_w": w(16, 3, 3, 3),
        "c1_b": w(16),
        "bn_s": (1 + 0.1 * rng.standard_normal(16)).astype(np.float32),
        "bn_b": (0.1 * rng.standard_normal(16)).astype(np.float32),
        "bn_m": (0.1 * rng.standard_normal(16)).astype(np.float32),
        "bn_v": (1 + 0.1 * rng.random(16)).astype(np.float32),
        "c2_w": w(32, 16, 3, 3),
        "c2_b": w(32),
        "fc_w": w(10, 32),
        "fc_b": w(10),
    }
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "c2_w", "c2_b"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return _save(graph, path)


#: Scale of the overflow model's activations: 400**2 = 160000 > 65504 (the FP16 maximum).
OVERFLOW_SCALE = 400.0


def overflow_model(path: Path, seed: int = 0) -> Path:
    """An RMS-norm written out (Pow, ReduceMean, Sqrt, Div) on large activations, then a projection.

    ``x[2,8,64] * 400 -> Pow 2 -> ReduceMean -> + eps -> Sqrt -> Div -> MatMul W[64,32] -> y``.
    In FP16 ``Pow`` overflows to inf (400**2 > 65504): the norm becomes 0 or NaN. Node names:
    ``scale``, ``square``, ``mean_sq``, ``add_eps``, ``sqrt``, ``normalize``, ``proj``.
    """
    rng = np.random.default_rng(seed)
    inits = {
        "k": np.array(OVERFLOW_SCALE, np.float32),
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-6, np.float32),
        "W": (rng.standard_normal((64, 32)) / 8).astype(np.float32),
    }
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["xs"], name="scale"),
        helper.make_node("Pow", ["xs", "two"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name="mean_sq", axes=[-1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["mse"], name="add_eps"),
        helper.make_node("Sqrt", ["mse"], ["rms"], name="sqrt"),
        helper.make_node("Div", ["xs", "rms"], ["n"], name="normalize"),
        helper.make_node("MatMul", ["n", "W"], ["y"], name="proj"),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8, 32])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return _save(graph, path)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (float64); NaN/inf in either gives NaN."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-30))


def if_model(path: Path) -> Path:
    """``x[4,16] -> MatMul W -> h``; ``If(cond)`` whose branches read ``h`` directly (Relu / Neg) -> y."""
    w = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4, 16])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4, 16])],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
    ]
    graph = helper.make_graph(
        nodes,
        "if_model",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [numpy_helper.from_array(w, "W")],
    )
    return _save(graph, path)
