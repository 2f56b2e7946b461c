"""openatc.graph.walk_nodes visits the nodes RecursiveGraphIterator visits, in the same order."""

from __future__ import annotations

import onnx
import onnx_ir as ir
from onnx import TensorProto, helper

from openatc.graph import count_nodes, walk_nodes


def _branch(name: str, op: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node(op, ["x"], [f"{name}_t"], name=f"{name}_a"),
         helper.make_node("Neg", [f"{name}_t"], [f"{name}_out"], name=f"{name}_b")],
        name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])],
    )  # fmt: skip


def test_same_nodes_same_order_as_onnx_ir() -> None:
    nested_if = helper.make_node(
        "If", ["c"], ["inner_out"], name="inner_if",
        then_branch=_branch("then2", "Relu"), else_branch=_branch("else2", "Abs"),
    )  # fmt: skip
    then_graph = helper.make_graph(
        [nested_if, helper.make_node("Identity", ["inner_out"], ["then_out"], name="then_id")],
        "then", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="first"),
        helper.make_node("If", ["c"], ["y0"], name="outer_if", then_branch=then_graph,
                         else_branch=_branch("else1", "Sigmoid")),
        helper.make_node("Add", ["y0", "r"], ["y"], name="last"),
    ]  # fmt: skip
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("c", TensorProto.BOOL, []),
    ]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    expected = [n.name for n in ir.traversal.RecursiveGraphIterator(model.graph)]
    assert [n.name for n in walk_nodes(model.graph)] == expected
    assert len(expected) == count_nodes(model.graph) == 11
