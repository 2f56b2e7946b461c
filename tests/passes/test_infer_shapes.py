"""shape_inference: the flat-graph merge gives what deserializing the inferred model gives, and a
graph whose values all have static types is left alone without calling onnx."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from openatc.plugins.passes import infer_shapes
from openatc.plugins.passes.infer_shapes import InferShapesPass

from ._helpers import model, rand


def _proto() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Gather", ["s", "axis"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    init = {
        "w": rand(16, 3, 3, 3),  # over 1 KiB: hidden from onnx as an input
        "axis": np.array(0, np.int64),
        "zero": np.array([0], np.int64),
        "minus_one": np.array([-1], np.int64),
    }
    return model(nodes, [("x", [2, 3, 8, 8])], [("y", ["n", "m"])], init)


def _types(m: ir.Model) -> dict[str, tuple[object, object]]:
    return {name: (v.type, v.shape) for name, v in ir.convenience.create_value_mapping(m.graph).items()}


def test_flat_merge_matches_a_full_deserialization(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = ir.serde.deserialize_model(_proto())
    assert InferShapesPass()(fast).modified
    slow = ir.serde.deserialize_model(_proto())
    monkeypatch.setattr(infer_shapes, "_has_subgraphs", lambda graph: True)  # the general path
    assert InferShapesPass()(slow).modified
    assert _types(fast) == _types(slow)
    assert fast.graph.outputs[0].shape == ir.Shape([2, 1024])
    assert list(fast.graph.initializers) == list(slow.graph.initializers)


def test_fully_typed_graph_skips_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    m = ir.serde.deserialize_model(_proto())
    InferShapesPass()(m)
    order = list(m.graph.initializers)
    calls = []
    real = onnx.shape_inference.infer_shapes
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert InferShapesPass()(m).modified is False
    assert calls == [] and list(m.graph.initializers) == order
    # a node added without a type: inference runs again and types it
    relu = m.graph.node(len(m.graph) - 1)
    extra = ir.node("Sigmoid", [relu.outputs[0]])
    m.graph.append(extra)
    assert InferShapesPass()(m).modified is True
    assert calls == [1] and extra.outputs[0].shape == ir.Shape([2, 1024])
    assert extra.outputs[0].dtype == ir.DataType.FLOAT


def test_skipping_keeps_the_initializer_order_of_an_inference_run() -> None:
    nodes = [helper.make_node("Add", ["x", "big"], ["a"]), helper.make_node("Add", ["a", "small"], ["y"])]
    proto = model(nodes, [("x", [400])], [("y", [400])], {"big": rand(400), "small": rand(1)})
    ran, skipped = ir.serde.deserialize_model(proto), ir.serde.deserialize_model(proto)
    assert list(ran.graph.initializers) == ["big", "small"]
    InferShapesPass()(ran)
    assert list(ran.graph.initializers) == ["small", "big"]  # the large one was hidden from onnx
    infer_shapes._move_large_initializers_last(skipped.graph)
    assert list(skipped.graph.initializers) == list(ran.graph.initializers)


def test_large_constants_are_not_copied_for_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    weight = helper.make_tensor("wc", onnx.TensorProto.FLOAT, [16, 3, 3, 3], rand(16, 3, 3, 3).ravel())
    nodes = [
        helper.make_node("Constant", [], ["w"], value=weight),
        helper.make_node("Constant", [], ["b"], value=helper.make_tensor("bc", onnx.TensorProto.FLOAT, [16], [0] * 16)),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
    ]
    m = ir.serde.deserialize_model(model(nodes, [("x", [2, 3, 8, 8])], [("y", ["n", 16, 8, 8])]))
    attrs = [m.graph.node(i).attributes["value"] for i in (0, 1)]
    seen: list[onnx.ModelProto] = []
    real = onnx.shape_inference.infer_shapes
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda proto, **k: seen.append(proto) or real(proto, **k))
    assert InferShapesPass()(m).modified
    sent = [node.attribute[0].t for node in seen[0].graph.node[:2]]
    assert sent[0].data_location == onnx.TensorProto.EXTERNAL and not sent[0].raw_data  # 1,728 bytes: hidden
    assert sent[1].data_location != onnx.TensorProto.EXTERNAL  # 64 bytes: sent as it is
    assert [m.graph.node(i).attributes["value"] for i in (0, 1)] == attrs  # put back
    assert m.graph.node(0).outputs[0].shape == ir.Shape([16, 3, 3, 3])
    assert m.graph.outputs[0].shape == ir.Shape([2, 16, 8, 8])


def test_minus_one_dims_are_not_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    from openatc.plugins.passes._graph import static_type

    m = ir.serde.deserialize_model(_proto())
    InferShapesPass()(m)
    relu = m.graph.node(len(m.graph) - 1)
    assert static_type(relu.outputs[0])
    relu.outputs[0].shape = ir.Shape([-1, 1024])  # an old exporter's "dynamic" dim
    assert not static_type(relu.outputs[0])
    calls = []
    real = onnx.shape_inference.infer_shapes
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda *a, **k: calls.append(1) or real(*a, **k))
    InferShapesPass()(m)
    assert calls == [1]
