"""Folds BatchNormalization into the Conv, ConvTranspose or Gemm before it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._graph import is_op
from ._rules import RuleSetPass

_INBOUND = ("Conv", "ConvTranspose", "Gemm")


def lift_parameters(model: ir.Model) -> int:
    """Constant nodes feeding the parameters of a Conv/ConvTranspose/Gemm + BatchNormalization pair
    become initializers, whatever their size; returns how many were lifted.

    onnxscript's rules need the parameters as initializers, and ``lift_constants`` keeps tensors of
    fewer than 16 elements as Constant nodes: a BatchNormalization over 8 channels (PP-OCR's
    classifier) would otherwise stay unfused.
    """
    graph = model.graph
    lifted = 0
    for bn in list(graph):
        if not is_op(bn, "BatchNormalization") or bn.inputs[0] is None:
            continue
        inbound = bn.inputs[0].producer()
        if not is_op(inbound, _INBOUND) or inbound.graph is not graph:
            continue
        for value in [*inbound.inputs[1:], *bn.inputs[1:]]:
            constant = value.producer() if value is not None else None
            if not is_op(constant, "Constant") or constant.graph is not graph or value.is_graph_output():
                continue
            attr = constant.attributes.get("value")
            if len(constant.attributes) != 1 or attr is None or value.name is None:
                continue
            if value.name in graph.initializers:
                continue
            tensor = attr.as_tensor()
            initializer = ir.Value(
                name=value.name, shape=ir.Shape(tensor.shape), type=ir.TensorType(tensor.dtype), const_value=tensor
            )
            graph.register_initializer(initializer)
            value.replace_all_uses_with(initializer)
            graph.remove(constant, safe=True)
            lifted += 1
    return lifted


class FuseConvBatchNormPass(RuleSetPass):
    """``BatchNormalization(Conv(x, W, B))`` becomes ``Conv(x, W', B')`` (onnxscript's rules; the
    BatchNormalization parameters and the weights must be constant)."""

    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "Conv+BatchNormalization": ("Conv", "BatchNormalization"),
        "ConvTranspose+BatchNormalization": ("ConvTranspose", "BatchNormalization"),
        "Gemm+BatchNormalization": ("Gemm", "BatchNormalization"),
    }

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        from onnxscript.rewriter.rules import common

        return [
            ("Conv+BatchNormalization", common.fuse_batchnorm_into_conv_rule),
            ("ConvTranspose+BatchNormalization", common.fuse_batchnorm_into_conv_transpose_rule),
            ("Gemm+BatchNormalization", common.fuse_batchnorm_into_gemm_rule),
        ]

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        lifted = lift_parameters(model)
        result = super().call(model)
        return ir.passes.PassResult(model, modified=result.modified or lifted > 0)
