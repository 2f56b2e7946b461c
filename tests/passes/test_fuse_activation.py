"""activation_fusion: HardSwish from x*HardSigmoid(x), Relu/Clip chains merged; fp32 tolerance 1e-6."""

from __future__ import annotations

import numpy as np
from onnx import helper

from openatc.plugins.passes.fuse_activation import FuseActivationPass

from ._helpers import check_pass, model, rand


def test_hardswish_and_clip_chains() -> None:
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["hs"], alpha=1.0 / 6, beta=0.5),
        helper.make_node("Mul", ["x", "hs"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Clip", ["b", "lo", "hi"], ["y"]),
    ]
    init = {"lo": np.array(-1.0, np.float32), "hi": np.array(2.0, np.float32)}
    proto = model(nodes, [("x", [2, 16])], [("y", [2, 16])], init)
    _, pass_ = check_pass(
        proto,
        FuseActivationPass,
        {"x": rand(2, 16, scale=4)},
        ops_after={"HardSwish": 1, "Clip": 1},
        absent=("Relu", "HardSigmoid"),
        atol=1e-6,
    )
    assert pass_.hits["HardSwish/HardSigmoid"] >= 1 and pass_.hits["Relu+Clip"] == 1
