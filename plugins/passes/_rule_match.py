"""Cheaper matching of onnxscript rewrite rules, with the same rewrites.

* A node is tried against a rule only when its op type is the op type of the rule's root (the
  pattern's output node), which every match needs: onnxscript tries every rule on every node and
  builds a match state (and a failure message) before it compares op types.
* A rule set is not applied at all when none of its rules can match: each rule needs a node of
  every fixed op type on the paths from its root through node outputs (alternatives excluded).
  onnxscript's ``apply_to_model`` walks the whole graph at least twice even then.

Rules whose root op type is not fixed (or whose pattern has several output nodes) are left as
they are and always applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import onnx_ir as ir

__all__ = ["FilteredRuleSet", "required_op_types", "root_op_type"]


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


def required_op_types(rule: Any) -> frozenset[str] | None:
    """Op types a graph must contain for ``rule`` to match (None: not known, assume it can)."""
    from onnxscript.rewriter import _pattern_ir

    if root_op_type(rule) is None:
        return None
    found: set[str] = set()
    seen: set[int] = set()
    stack = [rule._target_pattern.output_node]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.op, _pattern_ir.StringConstantPattern):
            found.add(node.op.value())
        stack.extend(v.producer() for v in node.inputs if isinstance(v, _pattern_ir.NodeOutputPattern))
    return frozenset(found)


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


class FilteredRuleSet:
    """An onnxscript ``RewriteRuleSet`` of some rules (same order, same results) that skips nodes
    whose op type cannot be the root of a rule, and knows when no rule can match a graph."""

    def __init__(self, rules: Iterable[Any]) -> None:
        from onnxscript.rewriter import pattern

        rules = list(rules)
        wrapped = []
        for rule in rules:
            op_type = root_op_type(rule)
            wrapped.append(rule if op_type is None else _RootFiltered(rule, op_type))
        self.rule_set = pattern.RewriteRuleSet(wrapped)
        self._needs = [required_op_types(rule) for rule in rules]
        # a set with a rule that keeps the matched nodes removes unused nodes on every application
        self._skippable = all(getattr(rule, "remove_nodes", False) for rule in rules)

    def can_match(self, present: set[str] | frozenset[str]) -> bool:
        """False when the graph, holding nodes of the op types ``present``, cannot match any rule
        (applying the set would then change nothing)."""
        return not self._skippable or any(needs is None or needs <= present for needs in self._needs)

    def apply_to_model(self, model: ir.Model) -> int:
        return self.rule_set.apply_to_model(model)
