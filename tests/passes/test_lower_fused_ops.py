"""fused_op_lowering: Conv/Gemm + activation -> FusedConv/FusedGemm, MatMul(Transpose) -> FusedMatMul,
only for the ops offered; fp32 tolerance 1e-5."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from openatc.plugins.passes.lower_fused_ops import LowerFusedOpsPass

from ._helpers import check_pass, model, rand

ALL = frozenset({"FusedConv", "FusedGemm", "FusedMatMul"})


def _model():
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["y"]),
        helper.make_node("Gemm", ["g", "wg", "bg"], ["h"]),
        helper.make_node("LeakyRelu", ["h"], ["z"], alpha=0.1),
        helper.make_node("Transpose", ["u"], ["ut"], perm=[1, 0]),
        helper.make_node("MatMul", ["ut", "wm"], ["v"]),
    ]
    init = {
        "w": rand(4, 3, 3, 3),
        "b": rand(4, seed=1),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
        "wg": rand(8, 5, seed=2),
        "bg": rand(5, seed=3),
        "wm": rand(3, 6, seed=4),
    }
    proto = model(
        nodes,
        [("x", [1, 3, 6, 6]), ("g", [2, 8]), ("u", [3, 7])],
        [("y", [1, 4, 6, 6]), ("z", [2, 5]), ("v", [7, 6])],
        init,
    )
    return proto, {"x": rand(1, 3, 6, 6, scale=3), "g": rand(2, 8), "u": rand(3, 7)}


def test_fused_ops_offered() -> None:
    proto, feeds = _model()
    _, pass_ = check_pass(
        proto,
        lambda: LowerFusedOpsPass(ALL),
        feeds,
        ops_after={"com.microsoft.FusedConv": 1, "com.microsoft.FusedGemm": 1, "com.microsoft.FusedMatMul": 1},
        absent=("Conv", "Clip", "Gemm", "LeakyRelu", "MatMul", "Transpose"),
    )
    assert pass_.hits["Conv+Clip"] == 1 and pass_.hits["Gemm+LeakyRelu"] == 1 and pass_.hits["FusedMatMul"] == 1


def test_nothing_offered_nothing_done() -> None:
    proto, feeds = _model()
    check_pass(proto, lambda: LowerFusedOpsPass(frozenset()), feeds, ops_after={"Conv": 1, "Clip": 1}, modified=False)


def test_unnamed_ops_get_unique_fused_names() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    proto = model(
        nodes,
        [("x", [1, 3, 8, 8])],
        [("y", [1, 4, 4, 4])],
        {"w1": rand(4, 3, 3, 3), "w2": rand(4, 4, 3, 3, seed=1)},
    )
    after, _ = check_pass(
        proto, lambda: LowerFusedOpsPass(ALL), {"x": rand(1, 3, 8, 8)}, ops_after={"com.microsoft.FusedConv": 2}
    )
    names = [n.name for n in after.graph]
    assert len(set(names)) == len(names), names  # ONNX Runtime refuses duplicate node names


def test_integer_matmul_is_not_lowered() -> None:
    nodes = [
        helper.make_node("Transpose", ["u"], ["ut"], perm=[1, 0]),
        helper.make_node("MatMul", ["ut", "wm"], ["v"]),
    ]
    proto = model(
        nodes, [("u", [3, 7], TensorProto.INT32)], [("v", [7, 6], TensorProto.INT32)], {"wm": np.ones((3, 6), np.int32)}
    )
    feeds = {"u": np.arange(21, dtype=np.int32).reshape(3, 7)}
    check_pass(proto, lambda: LowerFusedOpsPass(ALL), feeds, ops_after={"MatMul": 1}, modified=False)
