"""shape_op_merge: Transpose pairs compose (or cancel), reshape-like chains become one Reshape.
Exact equality (data movement only)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from openatc.plugins.passes.merge_shape_ops import MergeShapeOpsPass

from ._helpers import check_pass, model, rand


def test_transpose_pairs_compose_and_cancel() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["a"], ["b"], perm=[0, 1, 3, 2]),  # -> [0, 2, 3, 1]
        helper.make_node("Relu", ["b"], ["c"]),
        helper.make_node("Transpose", ["c"], ["d"], perm=[1, 0, 2, 3]),
        helper.make_node("Transpose", ["d"], ["y"], perm=[1, 0, 2, 3]),  # cancels
    ]
    proto = model(nodes, [("x", [2, 3, 4, 5])], [("y", [2, 4, 5, 3])])
    m, pass_ = check_pass(proto, MergeShapeOpsPass, {"x": rand(2, 3, 4, 5)}, ops_after={"Transpose": 1}, atol=0)
    perm = next(n for n in m.graph if n.op_type == "Transpose").attributes["perm"].as_ints()
    assert list(perm) == [0, 2, 3, 1]
    assert pass_.hits["transpose_pair"] == 2
    assert m.graph.outputs[0].name == "y"


def test_reshape_chains_become_one_reshape() -> None:
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes"], ["a"]),
        helper.make_node("Flatten", ["a"], ["b"], axis=2),
        helper.make_node("Reshape", ["b", "shape"], ["c"]),
        helper.make_node("Squeeze", ["c", "axes"], ["y"]),
    ]
    proto = model(
        nodes,
        [("x", [2, 3, 4])],
        [("y", [6, 4])],
        {"axes": np.array([0], np.int64), "shape": np.array([1, 6, 4], np.int64)},
    )
    check_pass(
        proto, MergeShapeOpsPass, {"x": rand(2, 3, 4)}, ops_after={"Reshape": 1}, absent=("Squeeze", "Flatten"), atol=0
    )
