"""The ONNX frontend's loading: it converts older opsets to its internal opset even when the converter's shape
inference makes a symbolic output dim concrete (the legacy PyTorch exporter's outputs); the
model's own input and output types are kept. The weights (large initializers, and Constant nodes holding a
weight) skip the checker and the converter and are checked on their own."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from openatc.frontends.onnx._loader import INTERNAL_OPSET, load_onnx


def _model(tmp_path: Path, out_dims: list) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_symbolic_output_dims_refined_by_the_converter_keep_the_conversion(tmp_path: Path) -> None:
    model = load_onnx(_model(tmp_path, ["batch", "relu_dim_1"]), None, None)  # type: ignore[arg-type]
    assert model.opset_imports[""] == INTERNAL_OPSET
    assert [str(d) for d in model.graph.outputs[0].shape] == ["batch", "relu_dim_1"]


def test_fixed_dims_are_kept(tmp_path: Path) -> None:
    model = load_onnx(_model(tmp_path, ["batch", 3]), None, None)  # type: ignore[arg-type]
    assert model.opset_imports[""] == INTERNAL_OPSET
    assert [str(d) for d in model.graph.outputs[0].shape] == ["batch", "3"]


def test_weights_are_checked_when_attached(tmp_path: Path) -> None:
    """Large initializers skip onnx's checker and converter; a malformed one is still an E20004."""
    import numpy as np
    import pytest
    from onnx import numpy_helper

    from openatc.errors import OpenATCError

    w = numpy_helper.from_array(np.ones((32, 32), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [w],
    )
    path = tmp_path / "w.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    model = load_onnx(path, None, None)  # type: ignore[arg-type]
    assert model.opset_imports[""] == INTERNAL_OPSET and [v.name for v in model.graph.inputs] == ["x"]
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy(), np.ones((32, 32)))
    w.raw_data = w.raw_data[:-8]  # two floats short
    graph.initializer[0].CopyFrom(w)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(OpenATCError) as info:
        load_onnx(path, None, None)  # type: ignore[arg-type]
    assert info.value.code == "E20004" and "'w'" in info.value.message


def _constant_weight_model(path: Path, opset: int, raw: bytes | None = None) -> Path:
    """Weights as Constant nodes (as Paddle's exporter writes them), around a ReduceSum that
    changes between opset 12 and 21 (axes: attribute -> input, a Constant the converter adds)."""
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.arange(32 * 32, dtype=np.float32).reshape(32, 32), "w")
    if raw is not None:
        w.raw_data = raw
    small = numpy_helper.from_array(np.ones(4, np.float32), "s")
    nodes = [
        helper.make_node("Constant", [], ["wc"], value=w, name="w_const"),
        helper.make_node("MatMul", ["x", "wc"], ["a"], name="mm"),
        helper.make_node("Constant", [], ["w2c"], value=w, name="w2_const"),
        helper.make_node("ReduceSum", ["a"], ["r"], keepdims=1, name="sum", **({"axes": [1]} if opset < 13 else {})),
        helper.make_node("Constant", [], ["sc"], value=small, name="s_const"),
        helper.make_node("MatMul", ["x", "w2c"], ["b"], name="mm2"),
        helper.make_node("Add", ["r", "b"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def test_constant_weights_skip_the_checker_and_keep_their_place(tmp_path: Path) -> None:
    import onnx_ir as ir

    from openatc.frontends.onnx import _loader

    for opset in (12, INTERNAL_OPSET):  # converted, and kept as it is
        path = _constant_weight_model(tmp_path / f"c{opset}.onnx", opset)
        proto = onnx.load(path)
        constants = _loader._hide_constants(proto)
        assert constants.names == {"wc", "w2c"}  # the 16-byte one stays
        assert "Constant" in {n.op_type for n in proto.graph.node} and len(proto.graph.input) == 3
        model = load_onnx(path, None, None)  # type: ignore[arg-type]
        assert model.opset_imports[""] == INTERNAL_OPSET and [v.name for v in model.graph.inputs] == ["x"]
        names = [n.name for n in model.graph]
        expected = ["w_const", "mm", "w2_const", "sum", "s_const", "mm2", "add"]
        assert [n for n in names if n in expected] == expected  # the converter's axes Constant aside
        reference = ir.serde.deserialize_model(onnx.version_converter.convert_version(onnx.load(path), INTERNAL_OPSET))
        assert names == [n.name for n in reference.graph]
        wc = model.graph.node(0).attributes["value"].value.numpy()
        assert wc.shape == (32, 32) and wc[1, 2] == 34.0


def test_a_malformed_constant_weight_is_still_an_error(tmp_path: Path) -> None:
    import pytest

    from openatc.errors import OpenATCError

    path = _constant_weight_model(tmp_path / "bad.onnx", 12, raw=b"\0" * 16)
    with pytest.raises(OpenATCError) as info:
        load_onnx(path, None, None)  # type: ignore[arg-type]
    assert info.value.code == "E20004" and "raw_data size" in info.value.message


def test_restoring_constants_needs_the_node_they_followed(tmp_path: Path) -> None:
    from openatc.frontends.onnx import _loader

    proto = onnx.load(_constant_weight_model(tmp_path / "m.onnx", 12))
    constants = _loader._hide_constants(proto)
    other = onnx.GraphProto()
    other.CopyFrom(proto.graph)
    del other.node[0]  # "mm": the second weight followed it
    assert constants.restore(other) is False and len(other.node) == 4
    assert constants.restore(proto.graph) is True
    assert [n.name for n in proto.graph.node][:3] == ["w_const", "mm", "w2_const"]
