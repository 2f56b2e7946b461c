"""Shared machinery of the pattern-rule passes: named onnxscript rules applied to a fixed point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from openatc.graph import walk_nodes

from ._graph import op_types
from ._rule_match import FilteredRuleSet

#: A pass stops after this many sweeps over its rules even if rules still fire (a safety net
#: against two rules undoing each other).
MAX_SWEEPS = 8


#: Op types that carry a layer's identity: a rewrite that removes exactly one of them passes its
#: name on to the node that replaces it (``FusedConv`` from ``conv1`` + ``relu1`` is ``conv1``).
_ANCHOR_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


def _producers(model: ir.Model) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Value name -> (name, op type, input value names) of the node producing it."""
    found = {}
    for node in walk_nodes(model.graph):
        record = (node.name or "", node.op_type, tuple(v.name or "" if v is not None else "" for v in node.inputs))
        for value in node.outputs:
            if value.name:
                found[value.name] = record
    return found


def keep_layer_names(model: ir.Model, before: dict[str, tuple[str, str, tuple[str, ...]]]) -> int:
    """Gives nodes created by rewrites the name of the layer they replace; returns how many.

    onnxscript's rewriter names new nodes ``node_<Op>_<n>`` but keeps output value names, so the
    nodes a new node replaced are found backwards from its outputs' old producers through nodes
    that are gone. The new node takes the name of a removed node of its own op type, or else of the
    one removed Conv/ConvTranspose/MatMul/Gemm, so that skip_layers, --keep_dtype and compare name
    the layers the user knows (``conv1`` after Conv+BatchNormalization folding, not ``node_Conv_3``).
    """
    old_names = {record[0] for record in before.values()}
    nodes = list(walk_nodes(model.graph))
    taken = {node.name for node in nodes}
    renamed = 0
    for node in nodes:
        if node.name in old_names:
            continue
        removed: list[tuple[str, str]] = []
        queue = [v.name for v in node.outputs if v.name in before]
        seen: set[str] = set()
        while queue:
            value = queue.pop(0)
            if value in seen or value not in before:
                continue
            seen.add(value)
            name, op_type, inputs = before[value]
            if name in taken or (name, op_type) in removed:
                continue
            removed.append((name, op_type))
            queue.extend(inputs)
        same = [name for name, op_type in removed if op_type == node.op_type and name]
        anchors = [name for name, op_type in removed if op_type in _ANCHOR_OPS and name]
        chosen = same[0] if same else anchors[0] if len(anchors) == 1 else None
        if chosen:
            node.name = chosen
            taken.add(chosen)
            renamed += 1
    return renamed


class RuleSetPass(ir.passes.InPlacePass):
    """Applies named ``onnxscript.rewriter`` rules until none fires; counts hits per rule name.

    Subclasses implement :meth:`rules` (``(name, rule)`` pairs; several rules may share a name, e.g.
    the commuted variants of one rule). ``self.hits`` maps every name to its number of rewrites.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    #: Op types a rule needs in the graph to fire, by rule name (a rule whose op types are all
    #: missing is skipped: matching every node against it costs more than the whole pass otherwise).
    needs: ClassVar[dict[str, tuple[str, ...]]] = {}

    def rules(self, model: ir.Model) -> Sequence[tuple[str, object]]:
        raise NotImplementedError

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        named = list(self.rules(model))
        self.hits = {name: 0 for name, _ in named}
        sets = [(name, FilteredRuleSet([rule])) for name, rule in named]
        total = 0
        for _ in range(MAX_SWEEPS):
            fired = 0
            before = None  # the producers at the start of the sweep: taken before the first rewrite
            present = op_types(model.graph)
            current = present  # kept up to date within the sweep, unlike ``present``
            for name, rule_set in sets:
                if name in self.needs and not present.issuperset(self.needs[name]):
                    continue
                if not rule_set.can_match(current):
                    continue
                if before is None:
                    before = _producers(model)
                count = rule_set.apply_to_model(model)
                if count:
                    current = op_types(model.graph)
                self.hits[name] += count
                fired += count
            total += fired
            if fired:
                assert before is not None
                keep_layer_names(model, before)
            if not fired:
                break
        return ir.passes.PassResult(model, modified=total > 0)
