"""ONNX files whose dims say -1 ("dynamic" in some exporters, e.g. PaddlePaddle's PP-OCR cls) build
at fixed shapes and with batch gears, and match ONNX Runtime on the original (fp32, 1e-5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import openatc


def _minus_one_model(path: Path) -> Path:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4, "h", "w"])],
        [numpy_helper.from_array(w, "w")],
        value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, [-1, 4, -1, -1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    path.write_bytes(model.SerializeToString())
    return path


def test_minus_one_dims_build_static_and_gears(tmp_path: Path) -> None:
    path = _minus_one_model(tmp_path / "m.onnx")
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == -1
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    static = openatc.build(
        model=str(path),
        framework=5,
        output=str(tmp_path / "s"),
        soc_version="cpu",
        input_shape="x:2,3,8,8",
        log="error",
    )
    gears = openatc.build(
        model=str(path), framework=5, output=str(tmp_path / "g"), soc_version="cpu", input_shape="x:-1,3,8,8",
        dynamic_batch_size="1,4", log="error",
    )  # fmt: skip
    for om, batches in ((static, (2,)), (gears, (1, 4))):
        with openatc.Session(om) as session:
            for batch in batches:
                x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
                got = session.run({"x": x})["y"]
                np.testing.assert_allclose(got, reference.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
