"""openatc.memory: liveness, lower bound and arena on hand-made graphs."""

from __future__ import annotations

import onnx_ir as ir
from onnx import helper

from openatc.memory import ALIGNMENT, plan_memory
from openatc.plugins.passes.infer_shapes import InferShapesPass

from ._helpers import model


def _plan(proto):
    m = ir.serde.deserialize_model(proto)
    InferShapesPass()(m)
    return plan_memory(m.graph)


def test_chain_reuses_two_buffers() -> None:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(6)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    proto = model(nodes, [("x", [16, 16])], [("y", [16, 16])])
    plan = _plan(proto)
    size = 16 * 16 * 4
    assert plan.intermediate_bytes == 5 * size
    assert plan.lower_bound_bytes == 2 * size == plan.arena_bytes
    assert all(offset % ALIGNMENT == 0 for offset in plan.offsets.values())


def test_overlapping_lifetimes_never_share_memory() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Sigmoid", ["x"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["c"], axis=0),
        helper.make_node("Tanh", ["c"], ["d"]),
        helper.make_node("Neg", ["d"], ["y"]),
    ]
    proto = model(nodes, [("x", [8, 8])], [("y", [16, 8])])
    plan = _plan(proto)
    sizes = {"a": 256, "b": 256, "c": 512, "d": 512}
    spans = {"a": (0, 2), "b": (1, 2), "c": (2, 3), "d": (3, 4)}
    for p in sizes:
        for q in sizes:
            if p < q and spans[p][0] <= spans[q][1] and spans[q][0] <= spans[p][1]:
                a0, b0 = plan.offsets[p], plan.offsets[q]
                assert a0 + sizes[p] <= b0 or b0 + sizes[q] <= a0, (p, q)
    assert plan.lower_bound_bytes == 1024 and plan.arena_bytes <= 1.05 * plan.lower_bound_bytes
