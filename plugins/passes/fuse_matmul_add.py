"""MatMul + Add (2-D) becomes Gemm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._rules import RuleSetPass


class FuseMatMulAddPass(RuleSetPass):
    """``Add(MatMul(a, b), c)`` on 2-D operands becomes ``Gemm(a, b, c)``; a Transpose of ``a`` or
    ``b`` folds into ``transA``/``transB`` (onnxscript's rules)."""

    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "MatMul+Add": ("MatMul", "Add"),
        "Transpose+MatMul+Add": ("MatMul", "Add"),
        "MatMul(Transpose)+Add": ("MatMul", "Add"),
        "Transpose+MatMul(Transpose)+Add": ("MatMul", "Add"),
    }

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        from onnxscript.rewriter.rules import common

        return [
            ("MatMul+Add", common.matmul_add_to_gemm_rule),
            ("Transpose+MatMul+Add", common.transpose_a_matmul_add_to_gemm_rule),
            ("MatMul(Transpose)+Add", common.transpose_b_matmul_add_to_gemm_rule),
            ("Transpose+MatMul(Transpose)+Add", common.transpose_ab_matmul_add_to_gemm_rule),
        ]
