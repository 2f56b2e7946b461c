"""The decomposed layer normalization becomes one LayerNormalization node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from openatc.graph import walk_nodes

from ._rules import RuleSetPass


class FuseLayerNormPass(RuleSetPass):
    """``ReduceMean, Sub, Pow/Mul, ReduceMean, Add(eps), Sqrt, Div, Mul(scale) [, Add(bias)]`` over
    the last axis becomes ``LayerNormalization`` (opset 17+; onnxscript's rules)."""

    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "LayerNormalization": ("ReduceMean", "Sub"),
        "LayerNormalization+bias": ("LayerNormalization", "Add"),
    }

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        if model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0)) < 17:
            return []
        from onnxscript.rewriter.rules.fusion import _layer_norm

        return [
            ("LayerNormalization", _layer_norm._layer_norm_rule),
            ("LayerNormalization+bias", _layer_norm._layer_norm_with_bias_rule),
        ]

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        # onnxscript's pattern spells keepdims=1; exporters often leave the default (also 1) implicit.
        for node in walk_nodes(model.graph):
            if node.op_type == "ReduceMean" and node.domain in ("", "ai.onnx") and "keepdims" not in node.attributes:
                node.attributes["keepdims"] = ir.AttrInt64("keepdims", 1)
        return super().call(model)
