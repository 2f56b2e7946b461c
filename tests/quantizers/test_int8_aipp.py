"""INT8 on a model with AIPP: the exact float32 colour conversion stays float, the rest is INT8.

Reference: the same model built with the same AIPP config in FP32 (its AIPP path is tested exact
against the numpy reference in tests/aipp); INT8 must keep a cosine >= 0.99 against it on frames
the calibration did not see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import openatc
from openatc.inspect import export_onnx

from ._models import cosine

pytest.importorskip("onnxruntime")

SIZE = 32
CONFIG = (
    "aipp_op {\n aipp_mode : static\n input_format : YUV420SP_U8\n csc_switch : true\n"
    " matrix_r0c0 : 298\n matrix_r0c1 : 0\n matrix_r0c2 : 409\n matrix_r1c0 : 298\n matrix_r1c1 : -100\n"
    " matrix_r1c2 : -208\n matrix_r2c0 : 298\n matrix_r2c1 : 516\n matrix_r2c2 : 0\n"
    " input_bias_0 : 16\n input_bias_1 : 128\n input_bias_2 : 128\n"
    " min_chn_0 : 123.675\n min_chn_1 : 116.28\n min_chn_2 : 103.53\n"
    " var_reci_chn_0 : 0.0171\n var_reci_chn_1 : 0.0175\n var_reci_chn_2 : 0.0174\n"
    f" src_image_size_w : {SIZE}\n src_image_size_h : {SIZE}\n}}\n"
)


def _classifier(path: Path) -> Path:
    rng = np.random.default_rng(3)
    weights = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "w2": rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.2,
        "w3": rng.standard_normal((10, 16)).astype(np.float32) * 0.3,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _frames(count: int, seed: int) -> list[np.ndarray]:
    """Smooth NV12 frames (gradients plus noise): (1, SIZE*3/2, SIZE, 1) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : SIZE * 3 // 2, 0:SIZE]
    frames = []
    for _ in range(count):
        base = 128 + 60 * np.sin(xx / rng.uniform(3, 9) + yy / rng.uniform(3, 9))
        noisy = base + rng.normal(0, 12, base.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8)[None, :, :, None])
    return frames


def test_aipp_csc_stays_float_and_int8_keeps_accuracy(tmp_path: Path) -> None:
    model = _classifier(tmp_path / "m.onnx")
    conf = tmp_path / "aipp.cfg"
    conf.write_text(CONFIG)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, frame in enumerate(_frames(16, seed=0)):
        np.save(calib / f"{i}.npy", frame)
    cfg = tmp_path / "calib.json"
    cfg.write_text(json.dumps({"data_dir": str(calib), "algorithm": "minmax"}))
    common = {"model": str(model), "framework": 5, "soc_version": "cpu", "insert_op_conf": str(conf)}
    fp32 = openatc.build(output=str(tmp_path / "fp32"), **common)
    int8 = openatc.build(output=str(tmp_path / "int8"), calibration_config=str(cfg), **common)

    graph = onnx.load(str(export_onnx(int8, tmp_path / "g.onnx"))).graph
    kept = [n for n in graph.node if any(p.key == "openatc.keep_fp32" for p in n.metadata_props)]
    assert kept, "the AIPP colour conversion node is marked keep_fp32"
    quantized_inputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    for node in kept:
        assert not set(node.input) & quantized_inputs, f"{node.name} reads a DequantizeLinear output"
    assert any(n.op_type == "DequantizeLinear" for n in graph.node), "the classifier itself is INT8"

    with openatc.Session(fp32) as ref, openatc.Session(int8) as sess:
        for frame in _frames(4, seed=7):
            want = ref.run({"x": frame})["logits"]
            got = sess.run({"x": frame})["logits"]
            assert cosine(got, want) >= 0.99
