"""conv_bn_fusion: BatchNormalization folded into Conv; fp32 tolerance 1e-4 (weights rescaled)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from openatc.plugins.passes.fuse_conv_bn import FuseConvBatchNormPass

from ._helpers import check_pass, model, rand


def test_conv_bn_becomes_one_conv() -> None:
    rng = np.random.default_rng(1)
    c = 8
    init = {
        "w": rand(c, 3, 3, 3, seed=2),
        "b": rand(c, seed=3),
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rand(c, seed=4),
        "mean": rand(c, seed=5),
        "var": rng.uniform(0.5, 2.0, c).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-5),
    ]
    proto = model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, c, 8, 8])], init)
    _, pass_ = check_pass(
        proto,
        FuseConvBatchNormPass,
        {"x": rand(1, 3, 8, 8)},
        ops_after={"Conv": 1},
        absent=("BatchNormalization",),
        rtol=1e-4,
        atol=1e-4,
    )
    assert pass_.hits["Conv+BatchNormalization"] == 1
