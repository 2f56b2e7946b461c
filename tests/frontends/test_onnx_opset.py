"""The ONNX frontend's loading: it converts older opsets to its internal opset even when the converter's shape
inference makes a symbolic output dim concrete (the legacy PyTorch exporter's outputs); the
model's own input and output types are kept. The weights skip the checker and the converter and
are checked when attached."""

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
