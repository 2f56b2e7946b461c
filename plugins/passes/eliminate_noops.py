"""Removes nodes that compute their input unchanged."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from openatc.graph import walk_nodes

from ._graph import bypass, const_array, is_op, static_shape

_SHAPE_OPS = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand")
_NEUTRAL = {"Add": 0, "Sub": 0, "Mul": 1, "Div": 1}


class EliminateNoOpsPass(ir.passes.InPlacePass):
    """Bypasses no-op nodes: Dropout at inference, Cast to the same type, Reshape/Squeeze/Unsqueeze/
    Flatten/Expand to the same static shape, Transpose with the identity permutation, and Add/Sub of
    zeros or Mul/Div by ones that change neither shape nor type.

    Hits are counted per op type, in the main graph and in subgraphs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {}
        for node in list(walk_nodes(model.graph)):
            source = self._source(node)
            if source is not None and bypass(node, source):
                self.hits[node.op_type] = self.hits.get(node.op_type, 0) + 1
        return ir.passes.PassResult(model, modified=bool(self.hits))

    @staticmethod
    def _source(node: ir.Node) -> ir.Value | None:
        """The input ``node`` passes through unchanged, or None."""
        if not node.inputs or node.inputs[0] is None or not node.outputs:
            return None
        x, y = node.inputs[0], node.outputs[0]
        if is_op(node, "Dropout"):
            training = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
            training_off = len(node.inputs) <= 2 or node.inputs[2] is None or (training is not None and not training)
            return x if training_off else None
        if x.dtype is None or x.dtype != y.dtype:
            return None
        if is_op(node, "Cast"):
            to = node.attributes.get("to")
            return x if to is not None and to.as_int() == x.dtype.value else None
        if is_op(node, _SHAPE_OPS):
            shape = static_shape(x)
            return x if shape is not None and shape == static_shape(y) else None
        if is_op(node, "Transpose"):
            perm = node.attributes.get("perm")
            if perm is not None and list(perm.as_ints()) == list(range(len(perm.as_ints()))):
                return x
            return None
        if is_op(node, tuple(_NEUTRAL)) and len(node.inputs) == 2:
            shape = static_shape(x)
            other = const_array(node.inputs[1])
            if shape is None or other is None or shape != static_shape(y) or other.size == 0:
                return None
            return x if bool(np.all(other == _NEUTRAL[node.op_type])) else None
        return None
