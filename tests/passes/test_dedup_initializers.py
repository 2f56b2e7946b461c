"""deduplicate_initializers: equal initializers (dtype, shape, bytes) are stored once; equal
samples with different bytes, equal bytes with another shape or dtype, and graph inputs are kept.
Numerics exact against ONNX Runtime on the original, serialization valid, idempotent."""

from __future__ import annotations

import numpy as np
from onnx import helper

from openatc.plugins.passes.dedup_initializers import DeduplicateInitializersPass

from ._helpers import check_pass, model, rand


def test_equal_initializers_are_stored_once() -> None:
    w = rand(64, 64, seed=1)
    near = w.copy()
    near[0, 1] += 1.0  # off the sampled stride: the sample matches, the bytes do not
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["b"]),  # w2 == w1
        helper.make_node("MatMul", ["b", "w3"], ["c"]),  # w3 differs in one element
        helper.make_node("Add", ["c", "r1"], ["d"]),
        helper.make_node("Add", ["d", "r2"], ["e"]),  # r2 == r1
        helper.make_node("Add", ["e", "r3"], ["y"]),  # r3: r1's bytes in another shape
    ]
    init = {"w1": w, "w2": w.copy(), "w3": near, "r1": w[:1].copy(), "r2": w[:1].copy(), "r3": w[0].copy()}
    proto = model(nodes, [("x", [2, 64])], [("y", [2, 64])], init)
    m, pass_ = check_pass(proto, DeduplicateInitializersPass, {"x": rand(2, 64, seed=3)}, atol=0)
    assert pass_.hits == {"duplicates": 2}
    assert sorted(m.graph.initializers) == ["r1", "r3", "w1", "w3"]


def test_different_dtypes_are_not_merged() -> None:
    a = np.zeros((8, 8), np.float32)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
    proto = model(nodes, [("x", [8, 8])], [("y", [8, 8])], {"a": a, "b": a.copy()})
    _, pass_ = check_pass(proto, DeduplicateInitializersPass, {"x": rand(8, 8)}, atol=0)
    assert pass_.hits == {"duplicates": 1}
    proto = model(
        [helper.make_node("Cast", ["i"], ["f"], to=1), helper.make_node("Add", ["f", "x"], ["y"])],
        [("x", [8, 8])],
        [("y", [8, 8])],
        {"i": np.zeros((8, 8), np.int32)},
    )
    check_pass(proto, DeduplicateInitializersPass, {"x": rand(8, 8)}, atol=0, modified=False)
