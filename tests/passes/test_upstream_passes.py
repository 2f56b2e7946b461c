"""The passes openatc contributes from onnx_ir/onnxscript or wrote earlier (identity elimination,
constant folding with its size limit, CSE, dead code, constant lifting, initializer dedup): op
types after, exact numeric equality, valid serialization, idempotence."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common
import pytest
from onnx import TensorProto, helper

from openatc.plugins.passes.fold_constants import FoldConstantsPass
from openatc.plugins.passes.infer_shapes import InferShapesPass
from openatc.plugins.passes.remove_identity import RemoveIdentityPass

from ._helpers import check_pass, model, rand


def test_identity_elimination() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("Sigmoid", ["b"], ["c"]),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    proto = model(nodes, [("x", [2, 3])], [("y", [2, 3])])
    m, pass_ = check_pass(proto, RemoveIdentityPass, {"x": rand(2, 3)}, absent=("Identity",), atol=0)
    assert pass_.hits == {"Identity": 2} and m.graph.outputs[0].name == "y"


def test_constant_folding_respects_the_size_limit() -> None:
    nodes = [
        helper.make_node("Add", ["c1", "c2"], ["c"]),
        helper.make_node("Add", ["x", "c"], ["a"]),
        helper.make_node(
            "ConstantOfShape", ["big_shape"], ["big"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
        ),
        helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
        helper.make_node("Add", ["a", "s"], ["y"]),
    ]
    init = {"c1": rand(3), "c2": rand(3, seed=1), "big_shape": np.array([600, 600], np.int64)}
    proto = model(nodes, [("x", [2, 3])], [("y", [2, 3])], init)
    check_pass(
        proto, FoldConstantsPass, {"x": rand(2, 3)}, ops_after={"Add": 2, "ConstantOfShape": 1}, rtol=1e-6, atol=1e-4
    )


def test_cse_dce_lift_and_dedup() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["x"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["c"]),
        helper.make_node("Sigmoid", ["x"], ["unused"]),
        helper.make_node("Mul", ["c", "w1"], ["d"]),
        helper.make_node(
            "Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.FLOAT, [16], list(range(16)))
        ),
        helper.make_node("Mul", ["d", "w2"], ["e"]),
        helper.make_node("Add", ["e", "k"], ["y"]),
    ]
    w = rand(16)  # constants under 16 elements stay Constant nodes (onnx_ir's size limit)
    proto = model(nodes, [("x", [2, 16])], [("y", [2, 16])], {"w1": w, "w2": w.copy()})
    feeds = {"x": rand(2, 16, seed=3)}
    check_pass(proto, common.CommonSubexpressionEliminationPass, feeds, ops_after={"Relu": 1}, atol=0)
    check_pass(proto, common.RemoveUnusedNodesPass, feeds, absent=("Sigmoid",), atol=0)
    m, _ = check_pass(
        proto,
        lambda: common.LiftConstantsToInitializersPass(lift_all_constants=True),
        feeds,
        absent=("Constant",),
        atol=0,
    )
    assert "k" in m.graph.initializers
    m, _ = check_pass(proto, common.DeduplicateHashedInitializersPass, feeds, atol=0)
    assert len(m.graph.initializers) == 1


def test_small_constant_of_shape_is_folded() -> None:
    """The legacy exporter's ``expand(-1, ...)``: Where(Equal(shape, ConstantOfShape([2]) * -1), 1, shape)."""
    ones = helper.make_tensor("v", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ConstantOfShape", ["rank"], ["ones"], value=ones),
        helper.make_node("Mul", ["ones", "minus_one"], ["neg"]),
        helper.make_node("Equal", ["shape", "neg"], ["is_neg"]),
        helper.make_node("Where", ["is_neg", "ones", "shape"], ["target"]),
        helper.make_node("Expand", ["x", "target"], ["y"]),
    ]
    init = {"rank": np.array([2], np.int64), "minus_one": np.array(-1, np.int64), "shape": np.array([2, 3], np.int64)}
    proto = model(nodes, [("x", [1, 3])], [("y", [2, 3])], init)
    m, _ = check_pass(proto, FoldConstantsPass, {"x": rand(1, 3)}, ops_after={"Expand": 1}, atol=0)
    assert len(list(m.graph)) == 1


def test_constant_folding_infers_only_nodes_without_a_static_type(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Shape", ["a"], ["s"]),
        helper.make_node("Reshape", ["a", "s"], ["b"]),
        helper.make_node("Sigmoid", ["b"], ["y"]),
    ]
    m = ir.serde.deserialize_model(model(nodes, [("x", [2, 3])], [("y", [2, 3])]))
    InferShapesPass()(m)
    sigmoid = m.graph.node(3)
    sigmoid.outputs[0].shape = None  # as a rewrite may leave a new value
    inferred: list[str] = []
    real = onnx.shape_inference.infer_node_outputs

    def counting(schema, node, *args, **kwargs):
        inferred.append(node.op_type)
        return real(schema, node, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_node_outputs", counting)
    FoldConstantsPass()(m)
    assert inferred == ["Sigmoid"]
    assert m.graph.outputs[0].shape == ir.Shape([2, 3])


def test_lift_constants_lifts_what_onnx_ir_lifts() -> None:
    from openatc.plugins.passes.lift_constants import LiftConstantsPass

    nodes = [
        helper.make_node("Constant", [], ["big"], value=helper.make_tensor("b", TensorProto.FLOAT, [16], [2.0] * 16)),
        helper.make_node("Constant", [], ["small"], value=helper.make_tensor("s", TensorProto.FLOAT, [1], [3.0])),
        helper.make_node("Constant", [], ["ints"], value_ints=list(range(16))),
        helper.make_node("Add", ["x", "big"], ["a"]),
        helper.make_node("Mul", ["a", "small"], ["b"]),
        helper.make_node("Cast", ["ints"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["b", "f"], ["y"]),
    ]
    proto = model(nodes, [("x", [2, 16])], [("y", [2, 16])])
    ours, theirs = ir.serde.deserialize_model(proto), ir.serde.deserialize_model(proto)
    assert LiftConstantsPass(lift_all_constants=True)(ours).modified
    assert common.LiftConstantsToInitializersPass(lift_all_constants=True)(theirs).modified
    assert list(ours.graph.initializers) == list(theirs.graph.initializers) == ["big", "ints"]
    assert [n.op_type for n in ours.graph] == [n.op_type for n in theirs.graph]
    assert ir.serde.serialize_model(ours) == ir.serde.serialize_model(theirs)
