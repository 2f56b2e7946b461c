"""openatc.memory: liveness, lower bound and arena on hand-made graphs."""

from __future__ import annotations

import onnx_ir as ir
from onnx import helper

from openatc.memory import _ORDERS, ALIGNMENT, Tensor, _lower_bound, _place, plan_memory, plan_tensors
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


def _residual_blocks(blocks: int) -> list[Tensor]:
    """The lifetimes of PP-OCR cls's residual SE blocks (sizes in bytes at batch 6): a residual
    tensor lives through a block of large tensors and the block's Add reads it while writing the
    next one."""
    tensors = []
    for k in range(blocks):
        b = 10 * k
        shapes = [
            ("bn_a", 921600, 1, 2), ("hswish_a", 921600, 2, 3), ("bn_b", 921600, 3, 4), ("hswish_b", 921600, 4, 8),
            ("pool", 4864, 5, 6), ("relu", 1216, 6, 7), ("hsig", 4864, 7, 8), ("scaled", 921600, 8, 9),
            ("bn_c", 147456, 9, 10),
        ]  # fmt: skip
        tensors.append(Tensor(f"residual{k}", 147456, b, b + 10))
        tensors += [Tensor(f"{name}{k}", size, b + first, b + last) for name, size, first, last in shapes]
    return tensors


def test_repair_reaches_the_bound_on_residual_chains() -> None:
    tensors = _residual_blocks(5)
    bound = _lower_bound(tensors)
    for key in _ORDERS.values():  # plain greedy placement leaves a second residual slot
        assert _place(sorted(tensors, key=key))[0] > bound
    arena, offsets, strategy = plan_tensors(tensors)
    assert arena == bound and "repair" in strategy
    for a in tensors:
        assert offsets[a.name] % ALIGNMENT == 0 and offsets[a.name] + a.size <= arena
        for b in tensors:
            if a.name < b.name and a.first <= b.last and b.first <= a.last:  # live at once: apart
                assert offsets[a.name] + a.size <= offsets[b.name] or offsets[b.name] + b.size <= offsets[a.name]
