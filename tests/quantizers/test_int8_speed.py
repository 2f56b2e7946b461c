"""The layers an INT8 build keeps float because ONNX Runtime runs them slower in INT8."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from openatc.quantize import DEFAULT_OP_TYPES, MIN_INT8_CONV_MACS, MIN_INT8_CONV_TERMS
from openatc.quantize import _slow_in_int8 as slow_in_int8


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _model() -> onnx.ModelProto:
    """stem (3x3x3: 27 terms) -> pointwise 8->64 (8 terms) -> dense 64->64 3x3 (576 terms)
    -> depthwise 5x5 (25 terms) -> HardSwish -> MaxPool (fed by a float op)
    -> dense 64->64 3x3 -> GlobalAveragePool (fed by an INT8 conv) -> SE conv 64->16 on 1x1 (1024 MACs)."""
    weights = {
        "stem": _w(8, 3, 3, 3),
        "pw": _w(64, 8, 1, 1),
        "dense": _w(64, 64, 3, 3),
        "dw": _w(64, 1, 5, 5),
        "dense2": _w(64, 64, 3, 3),
        "se": _w(16, 64, 1, 1),
    }
    nodes = [
        helper.make_node("Conv", ["x", "stem"], ["a"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "pw"], ["b"], name="pw"),
        helper.make_node("Conv", ["b", "dense"], ["c"], name="dense", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c", "dw"], ["d"], name="dw", group=64, pads=[2, 2, 2, 2]),
        helper.make_node("HardSwish", ["d"], ["e"], name="hswish"),
        helper.make_node("MaxPool", ["e"], ["f"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["f", "dense2"], ["g"], name="dense2", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["g"], ["h"], name="gap"),
        helper.make_node("Conv", ["h", "se"], ["y"], name="se"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 1, 1])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_slow_layers_are_the_small_convs_and_the_lone_pooling() -> None:
    assert 27 < MIN_INT8_CONV_TERMS <= 64 * 9
    assert MIN_INT8_CONV_MACS > 16 * 64
    slow = slow_in_int8(_model(), DEFAULT_OP_TYPES, set())
    assert slow == ["stem", "pw", "dw", "pool", "se"]  # dense, dense2 and gap (fed by dense2) stay INT8


def test_pooling_after_a_layer_kept_float_by_the_user_is_float_too() -> None:
    slow = slow_in_int8(_model(), DEFAULT_OP_TYPES, {"dense2"})
    assert "gap" in slow and "dense" not in slow
