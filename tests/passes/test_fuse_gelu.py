"""gelu_fusion: erf and tanh forms, in several operand orders, become Gelu (opset 20);
fp32 tolerance 1e-5 (erf) and 1e-4 (tanh: ONNX Runtime's kernel evaluates it differently)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from openatc.plugins.passes.fuse_gelu import FuseGeluPass

from ._helpers import check_pass, model, rand

_C = {
    "sqrt2": np.array(math.sqrt(2.0), np.float32),
    "one": np.array(1.0, np.float32),
    "half": np.array(0.5, np.float32),
    "three": np.array(3.0, np.float32),
    "k": np.array(0.044715, np.float32),
    "s": np.array(math.sqrt(2.0 / math.pi), np.float32),
}


def _erf_tail(order: str) -> list:
    head = [helper.make_node("Div", ["x", "sqrt2"], ["t"]), helper.make_node("Erf", ["t"], ["e"])]
    head.append(helper.make_node("Add", ["one", "e"], ["p"]))
    if order == "legacy":  # (x * (erf + 1)) * 0.5
        return [*head, helper.make_node("Mul", ["x", "p"], ["q"]), helper.make_node("Mul", ["q", "half"], ["y"])]
    if order == "half_first":  # x * ((erf + 1) * 0.5)
        return [*head, helper.make_node("Mul", ["half", "p"], ["q"]), helper.make_node("Mul", ["x", "q"], ["y"])]
    return [*head, helper.make_node("Mul", ["x", "half"], ["q"]), helper.make_node("Mul", ["q", "p"], ["y"])]


@pytest.mark.parametrize("order", ["legacy", "half_first", "x_half"])
def test_erf_gelu(order: str) -> None:
    proto = model([helper.make_node("Relu", ["i"], ["x"]), *_erf_tail(order)], [("i", [4, 64])], [("y", [4, 64])], _C)
    _, pass_ = check_pass(
        proto, FuseGeluPass, {"i": rand(4, 64, scale=3)}, ops_after={"Gelu": 1}, absent=("Erf", "Mul"), atol=1e-5
    )
    assert pass_.hits["Gelu(erf)"] == 1


@pytest.mark.parametrize("cube", ["pow", "muls"])
def test_tanh_gelu(cube: str) -> None:
    if cube == "pow":
        cubed = [helper.make_node("Pow", ["x", "three"], ["x3"])]
    else:
        cubed = [helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x", "x2"], ["x3"])]
    nodes = [
        helper.make_node("Neg", ["i"], ["x"]),
        *cubed,
        helper.make_node("Mul", ["k", "x3"], ["kx3"]),
        helper.make_node("Add", ["x", "kx3"], ["inner"]),
        helper.make_node("Mul", ["inner", "s"], ["z"]),
        helper.make_node("Tanh", ["z"], ["t"]),
        helper.make_node("Add", ["t", "one"], ["p"]),
        helper.make_node("Mul", ["x", "p"], ["q"]),
        helper.make_node("Mul", ["half", "q"], ["y"]),
    ]
    proto = model(nodes, [("i", [4, 64])], [("y", [4, 64])], _C)
    m, pass_ = check_pass(
        proto, FuseGeluPass, {"i": rand(4, 64, scale=3)}, ops_after={"Gelu": 1}, absent=("Tanh",), atol=1e-4
    )
    assert pass_.hits["Gelu(tanh)"] == 1
    gelu = next(n for n in m.graph if n.op_type == "Gelu")
    assert gelu.attributes["approximate"].as_string() == "tanh"


def test_before_opset_20_nothing_happens() -> None:
    proto = model(
        [helper.make_node("Relu", ["i"], ["x"]), *_erf_tail("legacy")], [("i", [4, 8])], [("y", [4, 8])], _C, opset=18
    )
    check_pass(proto, FuseGeluPass, {"i": rand(4, 8)}, ops_after={"Erf": 1}, modified=False)
