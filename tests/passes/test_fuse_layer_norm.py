"""layer_norm_fusion: the decomposed form becomes LayerNormalization; fp32 tolerance 1e-5."""

from __future__ import annotations

import numpy as np
from onnx import helper

from openatc.plugins.passes.fuse_layer_norm import FuseLayerNormPass

from ._helpers import check_pass, model, rand


def test_decomposed_layer_norm_with_bias() -> None:
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2", "axes"], ["var"], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["std"]),
        helper.make_node("Div", ["d", "std"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["s"]),
        helper.make_node("Add", ["s", "beta"], ["y"]),
    ]
    init = {
        "axes": np.array([-1], np.int64),
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-5, np.float32),
        "gamma": rand(32, seed=1),
        "beta": rand(32, seed=2),
    }
    proto = model(nodes, [("x", [2, 5, 32])], [("y", [2, 5, 32])], init)
    _, pass_ = check_pass(
        proto,
        FuseLayerNormPass,
        {"x": rand(2, 5, 32, scale=3)},
        ops_after={"LayerNormalization": 1},
        absent=("ReduceMean", "Sqrt"),
        rtol=1e-5,
        atol=1e-5,
    )
    assert pass_.hits["LayerNormalization"] == 1 and pass_.hits["LayerNormalization+bias"] == 1
