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
    assert pass_.hits == {"Conv+Mul": 0, "Conv+Add": 1, "ConvTranspose+Add": 0, "Gemm+Add": 1, "Mul/Add+Conv": 0}


def test_spatial_add_is_not_a_bias() -> None:
    init = {"w": rand(4, 3, 1, 1), "c": rand(4, 4, seed=1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Add", ["a", "c"], ["y"])]
    proto = model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 4, 4, 4])], init)
    check_pass(proto, FuseBiasPass, {"x": rand(1, 3, 4, 4)}, ops_after={"Add": 1}, modified=False)


def test_conv_scale_and_shift_fold_into_weights_and_bias() -> None:
    """PP-OCRv4's learnable affine block: Conv, Mul by a scalar Constant, Add of a scalar Constant;
    and a per-channel scale on a Conv with a bias whose weight another Conv also uses."""
    scalar = helper.make_node("Constant", [], ["s"], value=helper.make_tensor("s", 1, [], [1.7]))
    shift = helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", 1, [], [-0.3]))
    init = {"w": rand(4, 3, 3, 3), "b": rand(4, seed=5), "k": rand(4, 1, 1, seed=6)}
    nodes = [
        scalar,
        shift,
        helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["s", "a"], ["m"]),
        helper.make_node("Add", ["m", "t"], ["y"]),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], group=1),
        helper.make_node("Mul", ["c", "k"], ["z"]),
    ]
    proto = model(nodes, [("x", [2, 3, 6, 6])], [("y", [2, 4, 6, 6]), ("z", [2, 4, 4, 4])], init)
    m, pass_ = check_pass(
        proto, FuseBiasPass, {"x": rand(2, 3, 6, 6, seed=9)}, ops_after={"Conv": 2}, absent=("Mul", "Add")
    )
    assert pass_.hits == {"Conv+Mul": 2, "Conv+Add": 1, "ConvTranspose+Add": 0, "Gemm+Add": 0, "Mul/Add+Conv": 0}
    assert [v.name for v in m.graph.outputs] == ["y", "z"]


def test_spatial_scale_is_not_folded() -> None:
    init = {"w": rand(4, 3, 1, 1), "k": rand(4, 4, seed=1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Mul", ["a", "k"], ["y"])]
    proto = model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 4, 4, 4])], init)
    check_pass(proto, FuseBiasPass, {"x": rand(1, 3, 4, 4)}, ops_after={"Mul": 1}, modified=False)


def test_affine_before_unpadded_conv_folds_into_it() -> None:
    """Mul then Add of constants before a 1x1 Conv (per input channel) and before a grouped 3x3 Conv
    without padding (scalars) fold into the Convs; before a padded Conv they stay."""
    init = {
        "s": rand(1, 4, 1, 1, seed=1),
        "t": rand(4, 1, 1, seed=2),
        "w1": rand(6, 4, 1, 1, seed=3),
        "b1": rand(6, seed=4),
        "s2": rand(seed=5),
        "t2": rand(seed=6),
        "w2": rand(4, 2, 3, 3, seed=7),
        "w3": rand(4, 4, 3, 3, seed=8),
    }
    nodes = [
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("Mul", ["h", "s"], ["m"]),
        helper.make_node("Add", ["t", "m"], ["a"]),
        helper.make_node("Conv", ["a", "w1", "b1"], ["y"]),
        helper.make_node("Mul", ["s2", "h"], ["m2"]),
        helper.make_node("Add", ["m2", "t2"], ["a2"]),
        helper.make_node("Conv", ["a2", "w2"], ["z"], group=2, strides=[2, 2]),
        helper.make_node("Add", ["h", "t2"], ["a3"]),
        helper.make_node("Conv", ["a3", "w3"], ["v"], pads=[1, 1, 1, 1]),
    ]
    outputs = [("y", [2, 6, 7, 7]), ("z", [2, 4, 3, 3]), ("v", [2, 4, 7, 7])]
    proto = model(nodes, [("x", [2, 4, 7, 7])], outputs, init)
    _, pass_ = check_pass(
        proto, FuseBiasPass, {"x": rand(2, 4, 7, 7, seed=9)}, ops_after={"Conv": 3, "Mul": 0, "Add": 1}
    )
    assert pass_.hits["Mul/Add+Conv"] == 2


def test_conv_transpose_add_folds_into_bias() -> None:
    """PP-OCRv4 det's head: ConvTranspose then a per-channel Add (its bias, exported apart)."""
    init = {"w": rand(4, 3, 2, 2), "b": rand(3, seed=1), "c": rand(3, 1, 1, seed=2)}
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["a"], strides=[2, 2]),
        helper.make_node("Add", ["a", "c"], ["y"]),
    ]
    proto = model(nodes, [("x", [1, 4, 5, 5])], [("y", [1, 3, 10, 10])], init)
    _, pass_ = check_pass(
        proto, FuseBiasPass, {"x": rand(1, 4, 5, 5, seed=3)}, ops_after={"ConvTranspose": 1}, absent=("Add",)
    )
    assert pass_.hits["ConvTranspose+Add"] == 1
