"""Constant nodes become initializers (onnx_ir's pass, without its slowest check)."""

from __future__ import annotations

from typing import Any

import onnx_ir as ir
import onnx_ir.passes.common as common


class LiftConstantsPass(common.LiftConstantsToInitializersPass):
    """onnx_ir's ``LiftConstantsToInitializersPass``, same results: a ``value`` attribute of type
    TENSOR is taken as it is, where ``Attr.as_tensor()`` first checks it against a runtime protocol
    (about 20 us a node in Python 3.11: most of the pass's time, on every Constant node, in every
    round, also for the small ones that stay Constant nodes)."""

    def _constant_node_attribute_to_tensor(
        self, node: ir.Node, attr_name: str, attr_value: ir.Attr, initializer_name: str
    ) -> Any:
        if attr_name == "value" and attr_value.type == ir.AttributeType.TENSOR:
            tensor = attr_value.value
            return None if tensor.size < self.size_limit else tensor
        return super()._constant_node_attribute_to_tensor(node, attr_name, attr_value, initializer_name)
