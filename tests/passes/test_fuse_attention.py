"""attention_fusion: scaled dot-product attention as the legacy and the dynamo PyTorch exporters
write it becomes com.microsoft Attention (packed QKV) or MultiHeadAttention; checked against ONNX
Runtime on the original model, fp32 tolerance 1e-4 (different summation order)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from openatc.plugins.passes.fuse_attention import FuseAttentionPass

from ._helpers import check_pass, model, rand

B, S, H, D = 2, 8, 4, 8
E = H * D


def _proj(name: str, src: str, nodes: list, init: dict, seed: int, bias: bool = True) -> str:
    init[f"w{name}"] = rand(E, E, seed=seed, scale=0.2)
    nodes.append(helper.make_node("MatMul", [src, f"w{name}"], [f"{name}mm"]))
    if not bias:
        return f"{name}mm"
    init[f"b{name}"] = rand(E, seed=seed + 10, scale=0.2)
    nodes.append(helper.make_node("Add", [f"b{name}", f"{name}mm"], [f"{name}p"]))
    return f"{name}p"


def _heads(name: str, value: str, perm: list[int], nodes: list) -> str:
    nodes.append(helper.make_node("Reshape", [value, "split"], [f"{name}r"]))
    nodes.append(helper.make_node("Transpose", [f"{name}r"], [f"{name}h"], perm=perm))
    return f"{name}h"


def _attention(style: str, *, cross: bool = False, mask: bool = False, bias: bool = True):
    nodes: list = []
    init: dict = {"split": np.array([B, S, H, D], np.int64), "merge": np.array([B, S, E], np.int64)}
    q = _proj("q", "x", nodes, init, 1, bias)
    k = _proj("k", "m" if cross else "x", nodes, init, 2, bias)
    v = _proj("v", "m" if cross else "x", nodes, init, 3, bias)
    qh = _heads("q", q, [0, 2, 1, 3], nodes)
    if style == "sdpa":  # dynamo's scaled_dot_product_attention: K^T with the heads folded into the batch
        kh = _heads("k", k, [0, 2, 1, 3], nodes)
        init["fold"] = np.array([-1, S, D], np.int64)
        init["unfold"] = np.array([B, H, D, S], np.int64)
        nodes.append(helper.make_node("Reshape", [kh, "fold"], ["kf"]))
        nodes.append(helper.make_node("Transpose", ["kf"], ["kft"], perm=[0, 2, 1]))
        nodes.append(helper.make_node("Reshape", ["kft", "unfold"], ["kt"]))
        init["root"] = np.array(D**-0.25, np.float32)
        nodes.append(helper.make_node("Mul", [qh, "root"], ["qs"]))
        nodes.append(helper.make_node("Mul", ["kt", "root"], ["ks"]))
        nodes.append(helper.make_node("MatMul", ["qs", "ks"], ["scores"]))
    elif style == "legacy":  # K^T by one Transpose, scores divided by sqrt(D)
        kt = _heads("k", k, [0, 2, 3, 1], nodes)
        nodes.append(helper.make_node("MatMul", [qh, kt], ["qk"]))
        init["sqrt_d"] = np.array(math.sqrt(D), np.float32)
        nodes.append(helper.make_node("Div", ["qk", "sqrt_d"], ["scores"]))
    else:  # dynamo: K heads, a second Transpose, Q and K^T each scaled by D**-0.25
        kh = _heads("k", k, [0, 2, 1, 3], nodes)
        nodes.append(helper.make_node("Transpose", [kh], ["kt"], perm=[0, 1, 3, 2]))
        init["root"] = np.array(D**-0.25, np.float32)
        nodes.append(helper.make_node("Mul", [qh, "root"], ["qs"]))
        nodes.append(helper.make_node("Mul", ["kt", "root"], ["ks"]))
        nodes.append(helper.make_node("MatMul", ["qs", "ks"], ["scores"]))
    scores = "scores"
    if mask:
        init["mask"] = np.triu(np.full((S, S), -1e4, np.float32), 1).reshape(1, 1, S, S)
        nodes.append(helper.make_node("Add", ["scores", "mask"], ["masked"]))
        scores = "masked"
    vh = _heads("v", v, [0, 2, 1, 3], nodes)
    nodes += [
        helper.make_node("Softmax", [scores], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", vh], ["o"]),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ot", "merge"], ["y"]),
    ]
    inputs = [("x", [B, S, E])] + ([("m", [B, S, E])] if cross else [])
    proto = model(nodes, inputs, [("y", [B, S, E])], init)
    feeds = {"x": rand(B, S, E, seed=7)}
    if cross:
        feeds["m"] = rand(B, S, E, seed=8)
    return proto, feeds


def _pass() -> FuseAttentionPass:
    return FuseAttentionPass(frozenset({"Attention", "MultiHeadAttention"}))


@pytest.mark.parametrize("style", ["legacy", "dynamo", "sdpa"])
@pytest.mark.parametrize("mask", [False, True])
def test_self_attention_becomes_packed_attention(style: str, mask: bool) -> None:
    proto, feeds = _attention(style, mask=mask)
    m, pass_ = check_pass(
        proto, _pass, feeds, ops_after={"com.microsoft.Attention": 1}, absent=("Softmax", "Transpose"), atol=1e-4
    )
    assert pass_.hits == {"Attention": 1, "MultiHeadAttention": 0}
    assert len(list(m.graph)) == 1


@pytest.mark.parametrize("style", ["legacy", "dynamo"])
def test_slow_attention_gives_multi_head_attention(style: str) -> None:
    """A backend that lists Attention in its slow_ops gets MultiHeadAttention after the projections."""
    proto, feeds = _attention(style, mask=True)
    _, pass_ = check_pass(
        proto,
        lambda: FuseAttentionPass(frozenset({"Attention", "MultiHeadAttention"}), slow=frozenset({"Attention"})),
        feeds,
        ops_after={"com.microsoft.MultiHeadAttention": 1},
        absent=("Softmax", "com.microsoft.Attention"),
        atol=1e-4,
    )
    assert pass_.hits == {"Attention": 0, "MultiHeadAttention": 1}
    only_packed = FuseAttentionPass(frozenset({"Attention"}), slow=frozenset({"Attention"}))
    assert only_packed.packed  # slow, but the only fused form offered


def test_cross_attention_becomes_multi_head_attention() -> None:
    proto, feeds = _attention("legacy", cross=True)
    _, pass_ = check_pass(
        proto, _pass, feeds, ops_after={"com.microsoft.MultiHeadAttention": 1}, absent=("Softmax",), atol=1e-4
    )
    assert pass_.hits["MultiHeadAttention"] == 1


def test_nothing_without_the_backend_offering_it() -> None:
    proto, feeds = _attention("legacy")
    check_pass(proto, lambda: FuseAttentionPass(frozenset()), feeds, ops_after={"Softmax": 1}, modified=False)


@pytest.mark.parametrize("style", ["legacy", "sdpa"])
def test_projections_without_bias_are_packed_with_a_zero_bias(style: str) -> None:
    proto, feeds = _attention(style, bias=False)
    m, pass_ = check_pass(
        proto, _pass, feeds, ops_after={"com.microsoft.Attention": 1}, absent=("Softmax", "MatMul"), atol=1e-4
    )
    assert pass_.hits["Attention"] == 1
    bias = m.graph.node(0).inputs[2].const_value.numpy()
    assert bias.shape == (3 * E,) and not bias.any()


def _gpt2_attention(mask: np.ndarray, form: str = "matmul"):
    """GPT-2 as the dynamo exporter writes it: one QKV projection split in three, a constant causal
    mask of -inf, ``Where(IsNaN(p), 0, p)`` after the softmax, heads merged to [B*S, E] for a Gemm."""
    init: dict = {
        "w": rand(E, 3 * E, seed=1, scale=0.2),
        "b": rand(3 * E, seed=2, scale=0.2),
        "split": np.array([B, S, H, D], np.int64),
        "merge": np.array([B * S, E], np.int64),
        "scale": np.array(1 / math.sqrt(D), np.float32),
        "mask": mask,
        "zero": np.array(0.0, np.float32),
    }
    if form == "gemm":  # the dynamo exporter's Conv1D: Reshape to 2-D, Gemm, Reshape back
        init["flat"] = np.array([B * S, E], np.int64)
        init["unflat"] = np.array([B, S, 3 * E], np.int64)
        nodes = [
            helper.make_node("Reshape", ["x", "flat"], ["x2"]),
            helper.make_node("Gemm", ["x2", "w", "b"], ["g"], alpha=1.0, beta=1.0),
            helper.make_node("Reshape", ["g", "unflat"], ["qkv"]),
        ]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["qkv"])]
    nodes.append(helper.make_node("Split", ["qkv"], ["q", "k", "v"], axis=2, num_outputs=3))
    qh, vh = _heads("q", "q", [0, 2, 1, 3], nodes), _heads("v", "v", [0, 2, 1, 3], nodes)
    kt = _heads("k", "k", [0, 2, 3, 1], nodes)
    nodes += [
        helper.make_node("MatMul", [qh, kt], ["qk"]),
        helper.make_node("Mul", ["qk", "scale"], ["scores"]),
        helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
        helper.make_node("IsNaN", ["p"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "p"], ["pg"]),
        helper.make_node("MatMul", ["pg", vh], ["o"]),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ot", "merge"], ["y"]),
    ]
    return model(nodes, [("x", [B, S, E])], [("y", [B * S, E])], init), {"x": rand(B, S, E, seed=7)}


@pytest.mark.parametrize("form", ["matmul", "gemm"])
def test_gpt2_causal_attention_with_nan_guard_becomes_packed_attention(form: str) -> None:
    causal = np.triu(np.full((S, S), -np.inf, np.float32), 1).reshape(1, 1, S, S)
    proto, feeds = _gpt2_attention(causal, form)
    _, pass_ = check_pass(
        proto,
        _pass,
        feeds,
        ops_after={"com.microsoft.Attention": 1, "Reshape": 1},
        absent=("Softmax", "IsNaN", "Where", "Transpose", "Split", "Gemm", "MatMul"),
        atol=1e-4,
    )
    assert pass_.hits["Attention"] == 1


def test_gpt2_attention_without_packed_attention_becomes_multi_head_attention() -> None:
    causal = np.triu(np.full((S, S), -np.inf, np.float32), 1).reshape(1, 1, S, S)
    proto, feeds = _gpt2_attention(causal)
    _, pass_ = check_pass(
        proto,
        lambda: FuseAttentionPass(frozenset({"MultiHeadAttention"})),
        feeds,
        ops_after={"com.microsoft.MultiHeadAttention": 1, "Split": 1},
        absent=("Softmax", "IsNaN"),
        atol=1e-4,
    )
    assert pass_.hits["MultiHeadAttention"] == 1


def test_nan_guard_kept_when_a_row_can_be_all_masked() -> None:
    mask = np.zeros((1, 1, S, S), np.float32)
    mask[..., 0, :] = -np.inf  # row 0 all masked: the softmax gives NaN there, the guard makes it 0
    proto, feeds = _gpt2_attention(mask)
    check_pass(proto, _pass, feeds, ops_after={"Softmax": 1, "IsNaN": 1}, modified=False)
