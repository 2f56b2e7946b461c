"""Activation clean-ups: HardSwish from its decomposition, merged Relu/Clip chains, Min/Max as Clip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._rules import RuleSetPass


class FuseActivationPass(RuleSetPass):
    """``x * HardSigmoid(x)`` (and its Relu6 form) becomes ``HardSwish``; consecutive Relu/Clip merge
    into one; constant Min/Max pairs become ``Clip`` (onnxscript's rules)."""

    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "Relu+Relu": ("Relu",),
        "Relu+Clip": ("Relu", "Clip"),
        "Clip+Relu": ("Relu", "Clip"),
        "Clip+Clip": ("Clip",),
        "Min+Max->Clip": ("Min", "Max"),
        "Max+Min->Clip": ("Min", "Max"),
    }

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        from onnxscript.rewriter.rules import common

        named: list[tuple[str, object]] = [("HardSwish/HardSigmoid", rule) for rule in common.fuse_hardswish_rules()]
        named += [
            ("Relu+Relu", common.successive_relu_rule),
            ("Relu+Clip", common.successive_clip_relu_rule),
            ("Clip+Relu", common.successive_relu_clip_rule),
            ("Clip+Clip", common.successive_clip_rule),
            ("Min+Max->Clip", common.min_max_rule),
            ("Max+Min->Clip", common.max_min_rule),
        ]
        return named
