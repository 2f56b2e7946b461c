"""The root op-type filter of the rule passes: same rewrites, fewer match attempts."""

from __future__ import annotations

import onnx_ir as ir
import pytest
from onnx import helper

from openatc.plugins.passes._rule_match import FilteredRuleSet, required_op_types, root_op_type

from ._helpers import model


def _relu_chain() -> ir.Model:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Sigmoid", ["b"], ["c"]),
        helper.make_node("Relu", ["c"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    return ir.serde.deserialize_model(model(nodes, [("x", [2, 3])], [("y", [2, 3])]))


def test_root_op_types_of_onnxscript_rules() -> None:
    from onnxscript.rewriter.rules import common

    assert root_op_type(common.successive_relu_rule) == "Relu"
    assert root_op_type(common.fuse_batchnorm_into_conv_rule) == "BatchNormalization"
    assert root_op_type(common.matmul_add_to_gemm_rule) == "Add"
    assert root_op_type(object()) is None


def test_filtered_rule_set_rewrites_like_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter.rules import common

    rule = common.successive_relu_rule
    plain, filtered = _relu_chain(), _relu_chain()
    assert pattern.RewriteRuleSet([rule]).apply_to_model(plain) == 2
    tried: list[str] = []
    real = type(rule).try_rewrite

    def counting(self, model, graph, node, **kwargs):
        tried.append(node.op_type)
        return real(self, model, graph, node, **kwargs)

    monkeypatch.setattr(type(rule), "try_rewrite", counting)
    assert FilteredRuleSet([rule]).apply_to_model(filtered) == 2
    assert [n.op_type for n in filtered.graph] == [n.op_type for n in plain.graph] == ["Relu", "Sigmoid", "Relu"]
    assert ir.serde.serialize_model(filtered).graph == ir.serde.serialize_model(plain).graph
    assert tried and set(tried) == {"Relu"}  # the Sigmoid never reached onnxscript's matcher


def test_required_op_types_and_can_match() -> None:
    from onnxscript.rewriter.rules import common

    assert required_op_types(common.successive_clip_relu_rule) == {"Clip", "Relu"}
    rules = FilteredRuleSet([common.successive_relu_rule, common.min_max_rule])
    assert rules.can_match({"Relu", "Sigmoid"}) and rules.can_match({"Min", "Max"})
    assert not rules.can_match({"Sigmoid", "Min"})


def test_rule_pass_applies_only_rule_sets_that_can_match(monkeypatch: pytest.MonkeyPatch) -> None:
    from openatc.plugins.passes.fuse_activation import FuseActivationPass

    applied: list[int] = []
    real = FilteredRuleSet.apply_to_model

    def counting(self, model):
        count = real(self, model)
        applied.append(count)
        return count

    monkeypatch.setattr(FilteredRuleSet, "apply_to_model", counting)
    m = _relu_chain()
    pass_ = FuseActivationPass()
    assert pass_(m).modified
    assert pass_.hits["Relu+Relu"] == 2 and [n.op_type for n in m.graph] == ["Relu", "Sigmoid", "Relu"]
    # no Clip, Div, HardSigmoid, Min or Max: only the Relu+Relu rule set runs, in two sweeps
    assert applied == [2, 0]


def test_op_types_include_subgraphs() -> None:
    from openatc.plugins.passes._graph import op_types

    branch = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info("t", 1, [2, 3])]
    )
    other = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["e"])], "else", [], [helper.make_tensor_value_info("e", 1, [2, 3])]
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["c"], to=9),
        helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other),
    ]
    m = ir.serde.deserialize_model(model(nodes, [("x", [2, 3])], [("y", [2, 3])]))
    expected = {node.op_type for node in ir.traversal.RecursiveGraphIterator(m.graph)}
    assert op_types(m.graph) == expected == {"ReduceMax", "Cast", "If", "Sigmoid", "Tanh"}
