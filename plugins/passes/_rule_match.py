"""Cheaper matching of onnxscript rewrite rules: a node is tried against a rule only when its op
type is the op type of the rule's root (the pattern's output node), which every match needs.

onnxscript tries every rule on every node and builds a match state (and a failure message) before
it compares op types; on graphs of hundreds of nodes that costs more than the rewrites themselves.
Rules whose root op type is not fixed (or whose pattern has several output nodes) are left as
they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import onnx_ir as ir

__all__ = ["filtered_rule_set", "root_op_type"]


def root_op_type(rule: Any) -> str | None:
    """The op type a node must have for ``rule`` to match it, or None when it is not fixed."""
    from onnxscript.rewriter import _matcher, _pattern_ir

    pattern = getattr(rule, "_target_pattern", None)
    if type(getattr(rule, "_matcher", None)) is not _matcher.SimplePatternMatcher or pattern is None:
        return None
    if not pattern.has_single_output_node:
        return None
    op = pattern.output_node.op
    return op.value() if isinstance(op, _pattern_ir.StringConstantPattern) else None


class _RootFiltered:
    """``rule`` with ``try_rewrite`` answering None at once for nodes of another op type."""

    def __init__(self, rule: Any, op_type: str) -> None:
        self._rule = rule
        self._op_type = op_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rule, name)

    def __repr__(self) -> str:
        return repr(self._rule)

    def try_rewrite(self, model: ir.Model, graph: Any, node: ir.Node, **kwargs: Any) -> Any:
        if node.op_type != self._op_type:
            return None
        return self._rule.try_rewrite(model, graph, node, **kwargs)


def filtered_rule_set(rules: Iterable[Any]) -> Any:
    """An onnxscript ``RewriteRuleSet`` of ``rules`` (same order, same results) that skips nodes
    whose op type cannot be the root of a rule."""
    from onnxscript.rewriter import pattern

    wrapped = []
    for rule in rules:
        op_type = root_op_type(rule)
        wrapped.append(rule if op_type is None else _RootFiltered(rule, op_type))
    return pattern.RewriteRuleSet(wrapped)
