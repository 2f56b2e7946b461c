"""The FP16 rewrite of the precision step: FP16 layers read and write FP16, FP32 layers get Casts.

Kept apart from :mod:`openatc.precision` (which decides each layer's precision) so that both
modules stay short; the package docstring explains the design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx_ir as ir

__all__ = ["FP16_MAX", "Converter"]

FP16_MAX = 65504.0
_FLOAT = ir.DataType.FLOAT
_HALF = ir.DataType.FLOAT16
#: Ops whose inputs may be of any type: they never need a Cast.
_ANY_INPUT_OPS = frozenset({"Cast", "Shape", "Size", "CastLike"})


def _float_inputs(node: ir.Node) -> list[tuple[int, ir.Value]]:
    return [(i, v) for i, v in enumerate(node.inputs) if v is not None and v.dtype in (_FLOAT, _HALF)]


def _is_const(value: ir.Value) -> bool:
    return value.const_value is not None and value.is_initializer() and not value.is_graph_input()


class Converter:
    """Rewrites the graph so that FP16 layers read and write FP16 (see the module docstring)."""

    def __init__(self, graph: ir.Graph, fp16_ops: frozenset[tuple[str, str]] | None) -> None:
        self.graph = graph
        self.fp16_ops = fp16_ops
        self.casts: dict[tuple[ir.Value, ir.DataType], ir.Value] = {}
        self.half_consts: dict[ir.Value, ir.Value] = {}
        self.made_half: set[ir.Value] = set()  # values this conversion turned into FP16
        self.clipped: list[str] = []
        self.emulated = 0

    def cast(self, value: ir.Value, to: ir.DataType, before: ir.Node) -> ir.Value:
        """``value`` as ``to``: one Cast per value and type, placed right after its producer."""
        key = (value, to)
        if key not in self.casts:
            suffix = "fp16" if to == _HALF else "fp32"
            base = value.name or f"value{len(self.casts)}"
            node = ir.node("Cast", [value], attributes={"to": to}, name=f"{base}_to_{suffix}")
            out = node.outputs[0]
            out.name, out.dtype, out.shape = f"{base}_{suffix}", to, value.shape
            producer = value.producer()
            if producer is not None and producer.graph is self.graph:
                self.graph.insert_after(producer, node)
            else:
                self.graph.insert_before(before, node)
            self.casts[key] = out
        return self.casts[key]

    def half_const(self, value: ir.Value) -> ir.Value:
        """The FP16 copy of a float initializer, clipped to the FP16 range (ATC's is_weight_clip)."""
        if value not in self.half_consts:
            array = value.const_value.numpy()
            if array.size and float(np.abs(array).max()) > FP16_MAX:
                self.clipped.append(value.name or "?")
            half = np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)
            name = f"{value.name}_fp16"
            copy = ir.Value(
                name=name, type=ir.TensorType(_HALF), shape=value.shape, const_value=ir.tensor(half, name=name)
            )
            self.graph.register_initializer(copy)
            self.half_consts[value] = copy
        return self.half_consts[value]

    def convert(self, decided: Mapping[ir.Node, str], half_inputs: Iterable[ir.Value], keep_half_outputs: bool) -> None:
        for value in half_inputs:
            value.dtype = _HALF
            self.made_half.add(value)
        for node in list(self.graph):
            if decided.get(node) == "fp16":
                self._to_half(node)
            elif node.op_type not in _ANY_INPUT_OPS:
                for i, value in enumerate(node.inputs):
                    if value is not None and value in self.made_half:
                        node.replace_input_with(i, self.cast(value, _FLOAT, node))
        if not keep_half_outputs:
            self._restore_outputs()
        for value in self.half_consts:  # FP32 originals that only FP16 layers read are dropped
            if not any(True for _ in value.uses()) and not value.is_graph_output() and not value.is_graph_input():
                self.graph.initializers.pop(value.name)

    def _restore_outputs(self) -> None:
        """Graph outputs keep their original dtype and name (--output_type casts them afterwards)."""
        outputs = self.graph.outputs
        for i, value in enumerate(list(outputs)):
            if value not in self.made_half or value.is_graph_input():
                continue
            name = value.name
            cast = ir.node("Cast", [value], attributes={"to": _FLOAT}, name=f"{name}_output_fp32")
            value.name = f"{name}__fp16"
            out = cast.outputs[0]
            out.name, out.dtype, out.shape = name, _FLOAT, value.shape
            self.graph.append(cast)
            outputs[i] = out

    def _to_half(self, node: ir.Node) -> None:
        for i, value in _float_inputs(node):
            if value.dtype == _HALF:
                continue
            new = self.half_const(value) if _is_const(value) else self.cast(value, _HALF, node)
            node.replace_input_with(i, new)
        for out in node.outputs:
            if out.dtype == _FLOAT:
                out.dtype = _HALF
                self.made_half.add(out)
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        if self.fp16_ops is not None and (domain, node.op_type) not in self.fp16_ops:
            self._emulate(node)

    def _emulate(self, node: ir.Node) -> None:
        """FP16 in and out, FP32 inside: Cast up the inputs, Cast down the outputs."""
        self.emulated += 1
        for i, value in enumerate(node.inputs):
            if value is not None and value.dtype == _HALF:
                node.replace_input_with(i, self.cast(value, _FLOAT, node))
        for out in node.outputs:
            if out.dtype != _HALF:
                continue
            uses = list(out.uses())
            positions = [i for i, v in enumerate(self.graph.outputs) if v is out]
            name = out.name
            cast = ir.node("Cast", [out], attributes={"to": _HALF}, name=f"{name}_to_fp16")
            half = cast.outputs[0]
            half.name, half.dtype, half.shape = name, _HALF, out.shape
            out.name, out.dtype = f"{name}__fp32", _FLOAT
            self.graph.insert_after(node, cast)
            for use in uses:
                use.node.replace_input_with(use.idx, half)
            for i in positions:
                self.graph.outputs[i] = half
            self.made_half.discard(out)
            self.made_half.add(half)
