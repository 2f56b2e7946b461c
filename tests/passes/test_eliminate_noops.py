"""noop_elimination: Dropout, Cast to the same type, same-shape Reshape/Unsqueeze/Expand, identity
Transpose, x+0 and x*1 go; tolerance exact (the values pass through unchanged)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from openatc.plugins.passes.eliminate_noops import EliminateNoOpsPass

from ._helpers import check_pass, model, rand


def test_noops_removed_and_values_unchanged() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Dropout", ["a"], ["b"]),
        helper.make_node("Cast", ["b"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["c", "shape"], ["d"]),
        helper.make_node("Transpose", ["d"], ["e"], perm=[0, 1]),
        helper.make_node("Add", ["e", "zero"], ["f"]),
        helper.make_node("Mul", ["f", "one"], ["g"]),
        helper.make_node("Expand", ["g", "shape"], ["h"]),
        helper.make_node("Sigmoid", ["h"], ["y"]),
    ]
    proto = model(
        nodes,
        [("x", [2, 3])],
        [("y", [2, 3])],
        {"shape": np.array([2, 3], np.int64), "zero": np.zeros(3, np.float32), "one": np.ones((1, 3), np.float32)},
    )
    m, pass_ = check_pass(
        proto, EliminateNoOpsPass, {"x": rand(2, 3)}, ops_after={"Relu": 1, "Sigmoid": 1}, rtol=0, atol=0
    )
    assert len(list(m.graph)) == 2
    assert pass_.hits == {"Dropout": 1, "Cast": 1, "Reshape": 1, "Transpose": 1, "Add": 1, "Mul": 1, "Expand": 1}


def test_shape_changing_ops_and_graph_output_stay() -> None:
    nodes = [
        helper.make_node("Add", ["x", "zero"], ["a"]),  # broadcasts [3] -> [2,3]? no: x is [2,3]; zero [4,2,3]
        helper.make_node("Cast", ["a"], ["y"], to=TensorProto.DOUBLE),
    ]
    proto = model(
        nodes,
        [("x", [2, 3])],
        [("y", [4, 2, 3], TensorProto.DOUBLE)],
        {"zero": np.zeros((4, 2, 3), np.float32)},
    )
    check_pass(proto, EliminateNoOpsPass, {"x": rand(2, 3)}, ops_after={"Add": 1, "Cast": 1}, modified=False)


def test_noop_producing_a_graph_output_keeps_the_output_name() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Dropout", ["a"], ["y"])]
    proto = model(nodes, [("x", [2, 3])], [("y", [2, 3])])
    m, _ = check_pass(proto, EliminateNoOpsPass, {"x": rand(2, 3)}, ops_after={"Relu": 1}, absent=("Dropout",))
    assert m.graph.outputs[0].name == "y"
