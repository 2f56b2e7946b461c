"""bias_fusion: per-channel Add after Conv/Gemm becomes the bias; fp32 tolerance 1e-5."""

from __future__ import annotations

from onnx import helper

from openatc.plugins.passes.fuse_bias import FuseBiasPass

from ._helpers import check_pass, model, rand


def test_conv_add_and_gemm_add_fold_into_bias() -> None:
    init = {"w": rand(4, 3, 1, 1), "c": rand(1, 4, 1, 1, seed=1), "wg": rand(16, 5, seed=2), "cg": rand(5, seed=3)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"]),
        helper.make_node("Add", ["a", "c"], ["y"]),
        helper.make_node("Gemm", ["g", "wg"], ["b"]),
        helper.make_node("Add", ["cg", "b"], ["z"]),
    ]
    proto = model(nodes, [("x", [1, 3, 4, 4]), ("g", [2, 16])], [("y", [1, 4, 4, 4]), ("z", [2, 5])], init)
    _, pass_ = check_pass(
        proto,
        FuseBiasPass,
        {"x": rand(1, 3, 4, 4), "g": rand(2, 16)},
        ops_after={"Conv": 1, "Gemm": 1},
        absent=("Add",),
    )
    assert pass_.hits == {"Conv+Add": 1, "Gemm+Add": 1}


def test_spatial_add_is_not_a_bias() -> None:
    init = {"w": rand(4, 3, 1, 1), "c": rand(4, 4, seed=1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Add", ["a", "c"], ["y"])]
    proto = model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 4, 4, 4])], init)
    check_pass(proto, FuseBiasPass, {"x": rand(1, 3, 4, 4)}, ops_after={"Add": 1}, modified=False)
