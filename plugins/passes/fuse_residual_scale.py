"""``x + x * s`` becomes ``x * (1 + s)`` when ``s`` is smaller than ``x`` (broadcast).

PP-OCRv4 det's neck adds each squeeze-excitation result back to its input (``x + x * se(x)``,
``se(x)`` of shape [N, C, 1, 1]). As ``x * (1 + se(x))`` the full-size Add disappears: the ``1 +``
runs on the [N, C, 1, 1] tensor. The result differs from the original by a rounding (float
addition is done once on the small operand instead of on every product).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ._graph import NodeRewritePass, is_op, new_initializer, single_use, static_shape, take_over


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


class FuseResidualScalePass(NodeRewritePass):
    """``Add(x, Mul(x, s))`` (either order) with ``s`` broadcasting to a larger ``x`` becomes
    ``Mul(x, Add(s, 1))``; static float shapes only, the Mul used only by the Add."""

    op_type = "Add"

    def rewrite(self, add: ir.Node) -> str | None:
        if len(add.inputs) != 2 or None in add.inputs:
            return None
        for x, product in (add.inputs, reversed(add.inputs)):
            mul = product.producer()
            if not is_op(mul, "Mul") or len(mul.inputs) != 2 or not single_use(product) or x not in mul.inputs:
                continue
            s = mul.inputs[1] if mul.inputs[0] is x else mul.inputs[0]
            if s is None or s is x:
                continue
            x_shape, s_shape, y_shape = static_shape(x), static_shape(s), static_shape(add.outputs[0])
            if x_shape is None or s_shape is None or y_shape != x_shape or len(s_shape) > len(x_shape):
                continue
            if x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE) or s.dtype != x.dtype:
                continue
            if _size(s_shape) >= _size(x_shape) or np.broadcast_shapes(x_shape, s_shape) != x_shape:
                continue
            graph = add.graph
            assert graph is not None
            base = add.name or "residual_scale"
            one = new_initializer(graph, f"{base}_one", np.ones((), x.dtype.numpy()))
            gain = ir.Node("", "Add", [s, one], name=f"{base}_gain")
            scaled = ir.Node("", "Mul", [x, gain.outputs[0]], name=base)
            graph.insert_before(add, [gain, scaled])
            gain.outputs[0].shape, gain.outputs[0].dtype = ir.Shape(s_shape), x.dtype
            take_over(add.outputs[0], scaled.outputs[0])
            graph.remove([add, mul], safe=True)
            return "x+x*s->x*(1+s)"
        return None
