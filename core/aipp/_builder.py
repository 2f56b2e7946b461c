"""A small node builder for the AIPP ops (what :class:`openatc.types.AippFormat` builds with)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

__all__ = ["AippBuilder"]


class AippBuilder:
    """Collects the nodes that feed one model input; ``batch``/``height``/``width`` describe the source image.

    The sizes are ints (static AIPP) or 1-D int64 runtime values of one element (dynamic AIPP);
    ``dims``, ``div`` and ``add`` work with both, so a format's ``build`` serves both modes.

    ``op(op_type, *inputs, **attributes)`` adds a single-output node and returns its output;
    ``const(array)`` adds a ``Constant`` node. Node and value names start with ``prefix``.
    """

    def __init__(self, prefix: str, batch: int, height: int | ir.Value, width: int | ir.Value) -> None:
        self.prefix = prefix
        self.batch = batch
        self.height = height
        self.width = width
        self.nodes: list[ir.Node] = []

    def _name(self, kind: str) -> str:
        return f"{self.prefix}/{kind}_{len(self.nodes)}"

    def op(self, op_type: str, *inputs: ir.Value | None, **attributes: Any) -> ir.Value:
        name = self._name(op_type)
        node = ir.node(op_type, list(inputs), attributes or None, name=name)
        node.outputs[0].name = name
        self.nodes.append(node)
        return node.outputs[0]

    def dims(self, *parts: int | ir.Value) -> ir.Value:
        """A 1-D int64 tensor of ``parts``: a constant when all are ints, else a Concat of runtime 1-D values."""
        if all(isinstance(p, int) for p in parts):
            return self.const(np.array(parts, dtype=np.int64))
        pieces = [self.const(np.array([p], dtype=np.int64)) if isinstance(p, int) else p for p in parts]
        return self.op("Concat", *pieces, axis=0)

    def div(self, value: int | ir.Value, k: int) -> int | ir.Value:
        """``value // k`` for an int or a 1-D int64 runtime value."""
        return value // k if isinstance(value, int) else self.op("Div", value, self.const(np.array([k], np.int64)))

    def add(self, a: int | ir.Value, b: int | ir.Value) -> int | ir.Value:
        """``a + b`` for ints or 1-D int64 runtime values."""
        if isinstance(a, int) and isinstance(b, int):
            return a + b
        a_v = self.const(np.array([a], np.int64)) if isinstance(a, int) else a
        b_v = self.const(np.array([b], np.int64)) if isinstance(b, int) else b
        return self.op("Add", a_v, b_v)

    def const(self, array: Any) -> ir.Value:
        value = np.asarray(array)
        name = self._name("Constant")
        node = ir.node("Constant", [], {"value": ir.tensor(value, name=name)}, name=name)
        out = node.outputs[0]
        out.name = name
        out.dtype = ir.DataType.from_numpy(value.dtype)
        out.shape = ir.Shape(value.shape)
        out.const_value = ir.tensor(value, name=name)
        self.nodes.append(node)
        return out
