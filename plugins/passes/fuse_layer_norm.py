"""The decomposed layer normalization becomes one LayerNormalization node."""

from __future__ import annotations

from collections.abc import Sequence

import onnx_ir as ir

from ._rules import RuleSetPass


class FuseLayerNormPass(RuleSetPass):
    """``ReduceMean, Sub, Pow/Mul, ReduceMean, Add(eps), Sqrt, Div, Mul(scale) [, Add(bias)]`` over
    the last axis becomes ``LayerNormalization`` (opset 17+; onnxscript's rules)."""

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        if model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0)) < 17:
            return []
        from onnxscript.rewriter.rules.fusion import _layer_norm

        return [
            ("LayerNormalization", _layer_norm._layer_norm_rule),
            ("LayerNormalization+bias", _layer_norm._layer_norm_with_bias_rule),
        ]
