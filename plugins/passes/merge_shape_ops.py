"""Merges chains of Transpose and of Reshape/Squeeze/Unsqueeze/Flatten into one node."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from openatc.graph import walk_nodes

from ._graph import bypass, const_array, is_op, remove_if_unused, static_shape

_RESHAPING = ("Reshape", "Squeeze", "Unsqueeze", "Flatten")


class MergeShapeOpsPass(ir.passes.InPlacePass):
    """``Transpose(Transpose(x, p1), p2)`` becomes one Transpose (none when the permutations cancel);
    a Reshape/Squeeze/Unsqueeze/Flatten fed by another of those becomes one ``Reshape`` of the
    first input to the (static) output shape, or a Reshape to a constant shape without zeros
    reads the first input directly. Producers left without users are removed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {"transpose_pair": 0, "reshape_chain": 0}
        for node in list(walk_nodes(model.graph)):
            if node.graph is None:
                continue  # removed by an earlier rewrite of this sweep
            if is_op(node, "Transpose") and self._merge_transposes(node):
                self.hits["transpose_pair"] += 1
            elif is_op(node, _RESHAPING) and self._merge_reshapes(node):
                self.hits["reshape_chain"] += 1
        return ir.passes.PassResult(model, modified=any(self.hits.values()))

    @staticmethod
    def _merge_transposes(node: ir.Node) -> bool:
        inner = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
        if not is_op(inner, "Transpose") or inner.graph is not node.graph:
            return False
        p1, p2 = inner.attributes.get("perm"), node.attributes.get("perm")
        if p1 is None or p2 is None:
            return False
        first, second = list(p1.as_ints()), list(p2.as_ints())
        if len(first) != len(second):
            return False
        source = inner.inputs[0]
        merged = [first[i] for i in second]
        if merged == list(range(len(merged))):
            if not bypass(node, source):
                return False
        else:
            node.replace_input_with(0, source)
            node.attributes["perm"] = ir.AttrInt64s("perm", merged)
        remove_if_unused(inner)
        return True

    @staticmethod
    def _merge_reshapes(node: ir.Node) -> bool:
        x = node.inputs[0] if node.inputs else None
        inner = x.producer() if x is not None else None
        if not is_op(inner, _RESHAPING) or inner.graph is not node.graph or not inner.inputs:
            return False
        source = inner.inputs[0]
        if source is None:
            return False
        out_shape = static_shape(node.outputs[0])
        if out_shape is not None:
            target = ir.Value(name=f"{node.outputs[0].name}_shape")
            shape_node = ir.Node(
                "",
                "Constant",
                [],
                attributes=[ir.AttrTensor("value", ir.tensor(np.array(out_shape, dtype=np.int64)))],
                outputs=[target],
            )
            node.graph.insert_before(node, shape_node)
            reshape = ir.Node("", "Reshape", [source, target], name=node.name)
        elif is_op(node, "Reshape") and len(node.inputs) > 1:
            shape = const_array(node.inputs[1])
            allowzero = node.attributes.get("allowzero")
            if shape is None or (0 in shape.tolist() and not (allowzero and allowzero.as_int())):
                return False
            node.replace_input_with(0, source)
            remove_if_unused(inner)
            return True
        else:
            return False
        node.graph.insert_before(node, reshape)
        out = node.outputs[0]
        new = reshape.outputs[0]
        new.shape, new.type = out.shape, out.type
        if out.is_graph_output():
            name = out.name
            out.replace_all_uses_with(new, replace_graph_outputs=True)
            out.name = None
            new.name = name
        else:
            out.replace_all_uses_with(new)
            new.name = out.name
            out.name = None
        node.graph.remove(node, safe=True)
        remove_if_unused(inner)
        return True
