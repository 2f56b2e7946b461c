"""GELU from its erf or tanh decomposition becomes the ONNX ``Gelu`` op (opset 20)."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from ._graph import const_array, is_op, single_use, take_over

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _scalar(value: ir.Value | None, expected: float) -> bool:
    array = const_array(value)
    return array is not None and array.size == 1 and bool(np.isclose(float(array.reshape(())), expected, rtol=1e-4))


def _other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """The other input of a binary node one of whose inputs is ``value``."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    return b if a is value else a if b is value else None


def _only_consumer(value: ir.Value, op_type: str) -> ir.Node | None:
    if not single_use(value):
        return None
    node = next(iter(value.uses())).node
    return node if is_op(node, op_type) else None


class FuseGeluPass(ir.passes.InPlacePass):
    """``0.5 * x * (1 + erf(x / sqrt 2))`` becomes ``Gelu(x)``; ``0.5 * x * (1 + tanh(sqrt(2/pi) *
    (x + 0.044715 x^3)))`` becomes ``Gelu(x, approximate="tanh")``, in the operand orders and
    groupings exporters emit. Needs opset 20 or later (the ONNX frontend converts to 21).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {"Gelu(erf)": 0, "Gelu(tanh)": 0}
        if model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0)) < 20:
            return ir.passes.PassResult(model, modified=False)
        for node in list(model.graph):
            if node.graph is None:
                continue
            if is_op(node, "Erf"):
                x, kind = self._erf_input(node), "Gelu(erf)"
            elif is_op(node, "Tanh"):
                x, kind = self._tanh_input(node), "Gelu(tanh)"
            else:
                continue
            if x is not None and self._replace_tail(node, x, kind == "Gelu(tanh)"):
                self.hits[kind] += 1
        modified = any(self.hits.values())
        if modified:
            ir.passes.common.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=modified)

    @staticmethod
    def _erf_input(erf: ir.Node) -> ir.Value | None:
        scaled = erf.inputs[0].producer() if erf.inputs[0] is not None else None
        if is_op(scaled, "Div") and _scalar(scaled.inputs[1], _SQRT_2):
            return scaled.inputs[0]
        if is_op(scaled, "Mul"):
            for i in (0, 1):
                if _scalar(scaled.inputs[1 - i], 1.0 / _SQRT_2):
                    return scaled.inputs[i]
        return None

    @staticmethod
    def _tanh_input(tanh: ir.Node) -> ir.Value | None:
        outer = tanh.inputs[0].producer() if tanh.inputs[0] is not None else None
        if not is_op(outer, "Mul"):
            return None
        inner = next((v.producer() for v in outer.inputs if not _scalar(v, _SQRT_2_OVER_PI)), None)
        if not is_op(inner, "Add") or not any(_scalar(v, _SQRT_2_OVER_PI) for v in outer.inputs):
            return None
        for i in (0, 1):
            x, scaled_cube = inner.inputs[i], inner.inputs[1 - i].producer()
            if not is_op(scaled_cube, "Mul"):
                continue
            for j in (0, 1):
                if _scalar(scaled_cube.inputs[1 - j], 0.044715) and _is_cube(scaled_cube.inputs[j], x):
                    return x
        return None

    @staticmethod
    def _replace_tail(anchor: ir.Node, x: ir.Value, tanh: bool) -> bool:
        """Matches ``Add(anchor, 1)`` and the two Muls by x and 0.5 after it; rewrites on success."""
        add = _only_consumer(anchor.outputs[0], "Add")
        if add is None or not _scalar(_other(add, anchor.outputs[0]), 1.0):
            return False
        mul1 = _only_consumer(add.outputs[0], "Mul")
        if mul1 is None:
            return False
        other = _other(mul1, add.outputs[0])
        last: ir.Node | None = None
        if other is x or _scalar(other, 0.5):  # (1+erf)*x then *0.5, or (1+erf)*0.5 then *x
            mul2 = _only_consumer(mul1.outputs[0], "Mul")
            want_half = other is x
            if mul2 is not None:
                rest = _other(mul2, mul1.outputs[0])
                if (want_half and _scalar(rest, 0.5)) or (not want_half and rest is x):
                    last = mul2
        else:  # (x*0.5) * (1+erf)
            half = other.producer() if other is not None else None
            if is_op(half, "Mul") and x in half.inputs and _scalar(_other(half, x), 0.5):
                last = mul1
        if last is None or last.outputs[0].dtype != x.dtype:
            return False
        attributes = [ir.AttrString("approximate", "tanh")] if tanh else []
        gelu = ir.Node("", "Gelu", [x], attributes=attributes, name=f"{last.name or 'gelu'}_gelu")
        graph = last.graph
        assert graph is not None
        graph.insert_before(last, gelu)
        take_over(last.outputs[0], gelu.outputs[0])
        return True


def _is_cube(value: ir.Value, x: ir.Value) -> bool:
    node = value.producer()
    if is_op(node, "Pow"):
        return node.inputs[0] is x and _scalar(node.inputs[1], 3.0)
    if not is_op(node, "Mul") or x not in node.inputs:
        return False
    square = _other(node, x)
    square_node = square.producer() if square is not None else None
    return is_op(square_node, "Mul") and square_node.inputs[0] is x and square_node.inputs[1] is x
