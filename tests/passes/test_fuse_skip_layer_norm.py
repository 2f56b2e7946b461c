"""skip_layer_norm_fusion (off by default): Add + LayerNormalization -> SkipLayerNormalization;
fp32 tolerance 1e-4."""

from __future__ import annotations

from onnx import helper

from openatc.plugins.passes.fuse_skip_layer_norm import FuseSkipLayerNormPass

from ._helpers import check_pass, model, rand


def test_add_layer_norm_becomes_skip_layer_norm() -> None:
    nodes = [
        helper.make_node("Add", ["x", "s"], ["a"]),
        helper.make_node("LayerNormalization", ["a", "g", "b"], ["y"], axis=-1, epsilon=1e-5),
    ]
    proto = model(
        nodes, [("x", [2, 4, 16]), ("s", [2, 4, 16])], [("y", [2, 4, 16])], {"g": rand(16), "b": rand(16, seed=1)}
    )
    check_pass(
        proto,
        FuseSkipLayerNormPass,
        {"x": rand(2, 4, 16, seed=2), "s": rand(2, 4, 16, seed=3)},
        ops_after={"com.microsoft.SkipLayerNormalization": 1},
        absent=("LayerNormalization", "Add"),
        atol=1e-4,
    )
