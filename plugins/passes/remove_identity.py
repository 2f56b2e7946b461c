"""Removes Identity nodes, in the main graph and in subgraphs, without touching outer scopes."""

from __future__ import annotations

import onnx_ir as ir

from openatc.graph import walk_nodes


class RemoveIdentityPass(ir.passes.InPlacePass):
    """``y = Identity(x)``: uses of ``y`` become uses of ``x`` and the node goes.

    When ``y`` is an output of its graph, ``x`` takes over the name ``y`` — unless ``x`` is a graph
    input, an initializer, or a value of an enclosing graph (a subgraph output that refers to the
    outer scope): renaming those would change another graph, so such nodes stay. (onnx_ir's own
    IdentityEliminationPass renames outer-scope values, which breaks If/Loop bodies.)
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        removed = 0
        for node in list(walk_nodes(model.graph)):
            if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and self._remove(node):
                removed += 1
        self.hits = {"Identity": removed}
        return ir.passes.PassResult(model, modified=removed > 0)

    @staticmethod
    def _remove(node: ir.Node) -> bool:
        if len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] is None:
            return False
        x, y = node.inputs[0], node.outputs[0]
        graph = node.graph
        assert graph is not None
        if y.is_graph_output():
            producer = x.producer()
            local = producer is not None and producer.graph is graph
            if not local or x.is_graph_output() or x.is_graph_input() or x.is_initializer():
                return False
            name = y.name
            y.replace_all_uses_with(x, replace_graph_outputs=True)
            graph.remove(node, safe=True)
            x.name = name
            return True
        y.replace_all_uses_with(x)
        graph.remove(node, safe=True)
        return True
