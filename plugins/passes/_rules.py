"""Shared machinery of the pattern-rule passes: named onnxscript rules applied to a fixed point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from ._graph import op_types
from ._rule_match import filtered_rule_set

#: A pass stops after this many sweeps over its rules even if rules still fire (a safety net
#: against two rules undoing each other).
MAX_SWEEPS = 8


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
        sets = [(name, filtered_rule_set([rule])) for name, rule in named]
        total = 0
        for _ in range(MAX_SWEEPS):
            fired = 0
            present = op_types(model.graph)
            current = present  # kept up to date within the sweep, unlike ``present``
            for name, rule_set in sets:
                if name in self.needs and not present.issuperset(self.needs[name]):
                    continue
                if not rule_set.can_match(current):
                    continue
                count = rule_set.apply_to_model(model)
                if count:
                    current = op_types(model.graph)
                self.hits[name] += count
                fired += count
            total += fired
            if not fired:
                break
        return ir.passes.PassResult(model, modified=total > 0)
