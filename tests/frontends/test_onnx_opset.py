"""The ONNX frontend converts older opsets to its internal opset even when the converter's shape
inference makes a symbolic output dim concrete (the legacy PyTorch exporter's outputs); the
model's own input and output types are kept."""

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
