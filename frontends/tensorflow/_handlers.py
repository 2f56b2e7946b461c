"""Conversions of TensorFlow ops that tf2onnx 1.17 lacks, passed to it as custom op handlers.

Each handler rewrites the TensorFlow node in tf2onnx's graph into standard ONNX ops (no custom
domain), so the result runs on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["extra_handlers"]


def _erfc(ctx: Any, node: Any, name: str, args: Any) -> None:
    """``Erfc(x) = 1 - Erf(x)``: Keras 3's exact GELU (``approximate=False``) emits it."""
    from tf2onnx import utils

    del name, args
    x = node.input[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    erf = ctx.make_node("Erf", [x])
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def extra_handlers() -> dict[str, tuple[Any, list[Any]]]:
    """tf2onnx's ``custom_op_handlers``: op type -> (handler, extra args)."""
    return {"Erfc": (_erfc, [])}
