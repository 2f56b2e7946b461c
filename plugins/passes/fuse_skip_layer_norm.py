"""Add + LayerNormalization becomes ONNX Runtime's SkipLayerNormalization (off by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._rules import RuleSetPass


class FuseSkipLayerNormPass(RuleSetPass):
    """``LayerNormalization(x + skip [+ bias])`` becomes ``com.microsoft.SkipLayerNormalization``
    (onnxscript's rules). Off by default: ONNX Runtime's kernel measured 8-10% slower than
    Add + LayerNormalization on the example encoder (see plugins/backends/cpu.py). Does nothing
    unless ``offered`` (the backend's com.microsoft fused ops) has SkipLayerNormalization."""

    def __init__(self, offered: frozenset[str] = frozenset({"SkipLayerNormalization"})) -> None:
        super().__init__()
        self.offered = offered

    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "SkipLayerNormalization+bias(pre)": ("LayerNormalization", "Add"),
        "SkipLayerNormalization+bias": ("LayerNormalization", "Add"),
        "SkipLayerNormalization": ("LayerNormalization", "Add"),
    }

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        if "SkipLayerNormalization" not in self.offered:
            return []
        from onnxscript.rewriter.ort_fusions import skip_normalization as skip

        return [
            ("SkipLayerNormalization+bias(pre)", skip._skip_layer_pre_add_bias_rule),
            ("SkipLayerNormalization+bias", skip._skip_layer_add_bias_rule),
            ("SkipLayerNormalization", skip._skip_layer_rule),
        ]

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        result = super().call(model)
        if result.modified:
            model.opset_imports.setdefault("com.microsoft", 1)
        return result
