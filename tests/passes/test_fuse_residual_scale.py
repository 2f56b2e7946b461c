"""residual_scale_fusion: x + x*s with a smaller, broadcast s becomes x*(1+s); fp32 tolerance
1e-6 relative (one rounding moves from the products to the small gate)."""

from __future__ import annotations

import pytest
from onnx import helper

from openatc.plugins.passes.fuse_residual_scale import FuseResidualScalePass

from ._helpers import check_pass, model, rand

X = [2, 8, 5, 5]


def _se(order: str, gate_shape: list[int]) -> object:
    nodes = [
        helper.make_node("Relu", ["i"], ["x"]),
        helper.make_node("GlobalAveragePool", ["x"], ["p"])
        if gate_shape == [2, 8, 1, 1]
        else helper.make_node("Identity", ["g"], ["p"]),
        helper.make_node("Sigmoid", ["p"], ["s"]),
        helper.make_node("Mul", ["x", "s"] if order[0] == "x" else ["s", "x"], ["m"]),
        helper.make_node("Add", ["x", "m"] if order[1] == "x" else ["m", "x"], ["y"]),
    ]
    inputs = [("i", X)] + ([("g", gate_shape)] if gate_shape != [2, 8, 1, 1] else [])
    return model(nodes, inputs, [("y", X)])


@pytest.mark.parametrize("order", ["xx", "sx", "xm", "sm"])
def test_squeeze_excitation_residual(order: str) -> None:
    _, pass_ = check_pass(
        _se(order, [2, 8, 1, 1]),
        FuseResidualScalePass,
        {"i": rand(*X)},
        ops_after={"Add": 1, "Mul": 1},
        rtol=1e-6,
        atol=1e-6,
    )
    assert pass_.hits == {"x+x*s->x*(1+s)": 1}


def test_per_channel_constant_shape_gate() -> None:
    feeds = {"i": rand(*X), "g": rand(8, 1, 1, seed=2)}
    check_pass(_se("xx", [8, 1, 1]), FuseResidualScalePass, feeds, ops_after={"Add": 1, "Mul": 1}, rtol=1e-6, atol=1e-6)


def test_left_alone() -> None:
    """Same-size s (no saving), a product read elsewhere too, x*s + y with y another tensor."""
    check_pass(_se("xx", X), FuseResidualScalePass, {"i": rand(*X), "g": rand(*X)}, modified=False)
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["m"]),
        helper.make_node("Add", ["x", "m"], ["y"]),
        helper.make_node("Neg", ["m"], ["n"]),
    ]
    shared = model(nodes, [("x", X), ("s", [2, 8, 1, 1])], [("y", X), ("n", X)])
    check_pass(shared, FuseResidualScalePass, {"x": rand(*X), "s": rand(2, 8, 1, 1)}, modified=False)
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["z", "m"], ["y"])]
    other = model(nodes, [("x", X), ("s", [2, 8, 1, 1]), ("z", X)], [("y", X)])
    check_pass(other, FuseResidualScalePass, {"x": rand(*X), "s": rand(2, 8, 1, 1), "z": rand(*X)}, modified=False)
