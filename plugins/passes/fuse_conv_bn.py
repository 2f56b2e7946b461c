"""Folds BatchNormalization into the Conv, ConvTranspose or Gemm before it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._rules import RuleSetPass


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
