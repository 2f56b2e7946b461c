"""Constant folding: onnxscript's folder, with a size limit and a guard for ops it mishandles."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.optimizer import constant_folding

from ._graph import static_type

#: Folding never creates constants larger than this (bytes): folding a broadcast or a large Tile
#: would bloat the .om for no run-time gain.
FOLD_OUTPUT_LIMIT = 1 << 20
#: Nodes with an input larger than this (elements) are not folded (Shape/Size always are).
FOLD_INPUT_LIMIT = 1 << 16
#: Sequence ops: onnxscript's SplitToSequence rewrite fails on some valid models, and folding
#: sequences gains nothing at run time.
_SEQUENCE_OPS = frozenset(
    {
        "SplitToSequence",
        "SequenceConstruct",
        "SequenceInsert",
        "SequenceAt",
        "SequenceErase",
        "SequenceEmpty",
        "SequenceLength",
        "ConcatFromSequence",
        "SequenceMap",
    }
)


def _skip(node: ir.Node) -> bool:
    """Nodes the folder must leave exactly as they are."""
    if node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type in _SEQUENCE_OPS:
        return True
    # onnxscript rewrites CastLike into Cast and drops saturate=0 on the way.
    saturate = node.attributes.get("saturate")
    return node.op_type in ("Cast", "CastLike") and saturate is not None and saturate.as_int() == 0


def _small_constant_of_shape(node: ir.Node, limit: int) -> bool | None:
    """True for a ``ConstantOfShape`` of a constant shape with at most ``limit`` elements, which
    onnxscript never folds by default (the legacy exporter writes ``expand(-1, ...)`` shape
    arithmetic with it); None (the folder's default rules) for every other node."""
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
        return None
    shape = node.inputs[0].const_value if node.inputs and node.inputs[0] is not None else None
    if shape is None:
        return None
    dims = shape.numpy().reshape(-1)
    return True if dims.size and (dims >= 0).all() and int(np.prod(dims)) <= limit else None


class FoldConstantsPass(constant_folding.FoldConstantsPass):
    """Evaluates nodes whose inputs are all constant (shape subgraphs included), size-limited.

    Unlike onnxscript's defaults, a ``ConstantOfShape`` is folded when its output is small (at most
    ``input_limit`` elements): shape arithmetic, not a fill that would bloat the .om.
    """

    def __init__(self, *, output_limit: int = FOLD_OUTPUT_LIMIT, input_limit: int = FOLD_INPUT_LIMIT) -> None:
        super().__init__(
            shape_inference=True,
            input_size_limit=input_limit,
            output_size_limit=output_limit,
            should_fold=lambda node: _small_constant_of_shape(node, input_limit),
        )

    def _do_inference(self, node: ir.Node) -> None:
        # onnxscript infers every node again; an output with a static shape keeps its dims whatever
        # the inference says, so nodes whose outputs are all typed and static are left as they are
        if all(static_type(out) for out in node.outputs):
            return
        super()._do_inference(node)

    def process_node(self, node: ir.Node, is_function: bool) -> Any:
        if _skip(node):
            return None
        return super().process_node(node, is_function)
