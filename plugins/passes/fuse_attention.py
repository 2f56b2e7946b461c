"""Scaled dot-product attention becomes ONNX Runtime's ``Attention`` or ``MultiHeadAttention`` op."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ._graph import attr_int, attr_ints, const_array, is_op, new_initializer, single_use, static_shape

MS = "com.microsoft"
_HEADS = (0, 2, 1, 3)
_KEYS_T = (0, 2, 3, 1)


@dataclass
class _Match:
    q: ir.Value
    k: ir.Value
    v: ir.Value
    heads: int
    scale: float
    bias: ir.Value | None
    last: ir.Node


def _scalar(value: ir.Value | None) -> float | None:
    array = const_array(value)
    return float(array.reshape(())) if array is not None and array.size == 1 else None


def _through_scale(value: ir.Value) -> tuple[ir.Value, float] | None:
    """Skips ``Mul(value, c)``/``Div(value, c)`` nodes with scalar constants; returns (input, factor)."""
    factor = 1.0
    while True:
        node = value.producer()
        if not is_op(node, ("Mul", "Div")) or not single_use(value):
            return value, factor
        c = _scalar(node.inputs[1])
        if c is not None:
            factor *= c if node.op_type == "Mul" else 1.0 / c
            value = node.inputs[0]
            continue
        c = _scalar(node.inputs[0]) if node.op_type == "Mul" else None
        if c is None:
            return value, factor
        factor *= c
        value = node.inputs[1]


def _split_heads(value: ir.Value, perm: tuple[int, ...]) -> tuple[ir.Value, int] | None:
    """``Transpose(Reshape(x, [B, S, H, D]), perm)``, possibly with scalar scales around the
    Transpose: returns (x scaled, H) when x is [B, S, H*D]. Scales are rejected here (handled by
    :func:`_through_scale` before)."""
    transpose = value.producer()
    if not is_op(transpose, "Transpose") or attr_ints(transpose, "perm") != perm or not single_use(value):
        return None
    reshape = transpose.inputs[0].producer()
    if not is_op(reshape, "Reshape") or not single_use(transpose.inputs[0]):
        return None
    x = reshape.inputs[0]
    split = static_shape(reshape.outputs[0])
    xs = static_shape(x)
    if split is None or xs is None or len(split) != 4 or len(xs) != 3:
        return None
    if xs[:2] != split[:2] or xs[2] != split[2] * split[3]:
        return None
    return x, split[2]


def _key_heads(value: ir.Value) -> tuple[ir.Value, int, float] | None:
    """K^T as one Transpose (0,2,3,1) of the split heads, or as the dynamo exporter writes it: a
    Transpose (0,1,3,2) of the (0,2,1,3) heads, possibly with a scalar scale between them."""
    split = _split_heads(value, _KEYS_T)
    if split is not None:
        return split[0], split[1], 1.0
    swap = value.producer()
    if is_op(swap, "Transpose") and attr_ints(swap, "perm") == (0, 1, 3, 2) and single_use(value):
        source = swap.inputs[0]
    else:
        source = _folded_swap(value)
        if source is None:
            return None
    heads, factor = _through_scale(source)
    split = _split_heads(heads, _HEADS)
    return None if split is None else (split[0], split[1], factor)


def _folded_swap(value: ir.Value) -> ir.Value | None:
    """x when ``value`` is ``Reshape(Transpose(Reshape(x, [B*H, S, D]), (0, 2, 1)), [B, H, D, S])``
    for x of shape [B, H, S, D]: the last two axes of x swapped, as the dynamo exporter writes K^T
    of ``scaled_dot_product_attention`` (with the heads folded into the batch)."""
    outer = value.producer()
    if not is_op(outer, "Reshape") or not single_use(value) or not single_use(outer.inputs[0]):
        return None
    swap = outer.inputs[0].producer()
    if not is_op(swap, "Transpose") or attr_ints(swap, "perm") != (0, 2, 1) or not single_use(swap.inputs[0]):
        return None
    inner = swap.inputs[0].producer()
    if not is_op(inner, "Reshape"):
        return None
    x = inner.inputs[0]
    xs, folded, out = static_shape(x), static_shape(inner.outputs[0]), static_shape(value)
    if xs is None or folded is None or out is None or len(xs) != 4:
        return None
    b, h, s, d = xs
    if folded != (b * h, s, d) or out != (b, h, d, s):
        return None
    return x


def _nan_guard(softmax: ir.Node) -> ir.Node | None:
    """``Where(IsNaN(p), 0, p)`` on the softmax's output ``p`` (the dynamo exporter's guard for rows
    that the mask hides entirely), or None."""
    probs = softmax.outputs[0]
    if probs.is_graph_output() or len(probs.uses()) != 2:
        return None
    users = {use.node.op_type: use.node for use in probs.uses() if is_op(use.node, ("IsNaN", "Where"))}
    isnan, where = users.get("IsNaN"), users.get("Where")
    if isnan is None or where is None or not single_use(isnan.outputs[0]):
        return None
    if where.inputs[0] is not isnan.outputs[0] or where.inputs[2] is not probs:
        return None
    zero = const_array(where.inputs[1])
    return where if zero is not None and zero.size == 1 and float(zero.reshape(())) == 0.0 else None


def _rows_never_all_masked(bias: ir.Value | None) -> bool:
    """True when no row of the scores can be all -inf (so the softmax cannot give NaN on finite
    inputs and a NaN guard after it changes nothing): no bias, or a constant one with a finite
    entry in every row."""
    if bias is None:
        return True
    array = const_array(bias)
    return array is not None and bool(np.isfinite(array).any(axis=-1).all())


class FuseAttentionPass(ir.passes.InPlacePass):
    """Finds ``Softmax(scale * Q K^T [+ bias]) V`` with the heads split by ``Reshape`` + ``Transpose``
    and merged back after, as both PyTorch exporters write it (the legacy exporter scales the scores
    with Div/Mul; the dynamo exporter scales Q and K^T with Mul by sqrt(scale)), and replaces it with:

    * ``com.microsoft.Attention`` (one packed QKV projection) when Q, K and V are ``x @ W + b``
      projections of the same input with constant weights, if the backend offers it;
    * otherwise ``com.microsoft.MultiHeadAttention`` on Q, K, V, if the backend offers it.

    ``offered`` is the set of com.microsoft op types the backend runs; nothing happens without them.
    ``slow`` are those it runs slowly (its ``slow_ops``): with ``Attention`` there and
    ``MultiHeadAttention`` offered, every match becomes ``MultiHeadAttention`` and the projections
    stay as they are.
    """

    def __init__(
        self,
        offered: frozenset[str] = frozenset({"Attention", "MultiHeadAttention"}),
        slow: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.offered = offered
        self.packed = "Attention" in offered and not ("Attention" in slow and "MultiHeadAttention" in offered)
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {"Attention": 0, "MultiHeadAttention": 0}
        if not self.offered & {"Attention", "MultiHeadAttention"}:
            return ir.passes.PassResult(model, modified=False)
        for node in list(model.graph):
            if node.graph is None or not is_op(node, "Softmax"):
                continue
            match = self._match(node)
            if match is None:
                continue
            kind = self._rewrite(model, match)
            if kind:
                self.hits[kind] += 1
        modified = any(self.hits.values())
        if modified:
            model.opset_imports.setdefault(MS, 1)
            ir.passes.common.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=modified)

    @staticmethod
    def _match(softmax: ir.Node) -> _Match | None:
        scores = softmax.inputs[0]
        rank = len(static_shape(scores) or ())
        if rank != 4 or attr_int(softmax, "axis", -1) not in (-1, 3):
            return None
        guard = _nan_guard(softmax)
        probs = softmax.outputs[0] if guard is None else guard.outputs[0]
        if not single_use(probs) or (guard is None and len(softmax.outputs[0].uses()) != 1):
            return None
        pv = next(iter(probs.uses())).node
        if not is_op(pv, "MatMul") or pv.inputs[0] is not probs:
            return None
        bias = None
        add = scores.producer()
        if is_op(add, "Add") and single_use(scores):
            for i in (0, 1):
                other = add.inputs[1 - i]
                if (
                    add.inputs[i].producer() is not None
                    and is_op(add.inputs[i].producer(), ("MatMul", "Mul", "Div"))
                    and len(static_shape(other) or ()) == 4
                ):
                    scores, bias = add.inputs[i], other
                    break
            else:
                return None
        if guard is not None and not _rows_never_all_masked(bias):
            return None
        qk_value, scale = _through_scale(scores)
        qk = qk_value.producer()
        if not is_op(qk, "MatMul") or not single_use(qk_value):
            return None
        qh, q_scale = _through_scale(qk.inputs[0])
        kt, k_scale = _through_scale(qk.inputs[1])
        q = _split_heads(qh, _HEADS)
        k = _key_heads(kt)
        v = _split_heads(pv.inputs[1], _HEADS)
        if q is None or k is None or v is None or not (q[1] == k[1] == v[1]):
            return None
        merge_t = next(iter(pv.outputs[0].uses())).node if single_use(pv.outputs[0]) else None
        if (
            not is_op(merge_t, "Transpose")
            or attr_ints(merge_t, "perm") != _HEADS
            or not single_use(merge_t.outputs[0])
        ):
            return None
        merge_r = next(iter(merge_t.outputs[0].uses())).node
        out_shape = static_shape(merge_r.outputs[0]) if is_op(merge_r, "Reshape") else None
        qs = static_shape(q[0])
        merged = (qs[0], qs[1], static_shape(v[0])[2]) if qs is not None else None
        # the merged heads as [B, S, E], or flattened to [B*S, E] for a Gemm after (GPT-2's Conv1D)
        if out_shape is None or merged is None or out_shape not in (merged, (merged[0] * merged[1], merged[2])):
            return None
        if bias is not None:
            bs = static_shape(bias)
            sq, sk = qs[1], static_shape(k[0])[1]
            if bs[2:] != (sq, sk) or bs[0] not in (1, qs[0]) or bs[1] not in (1, q[1]):
                return None
        return _Match(q[0], k[0], v[0], q[1], scale * q_scale * k_scale * k[2], bias, merge_r)

    def _rewrite(self, model: ir.Model, m: _Match) -> str | None:
        graph = m.last.graph
        assert graph is not None
        packed = self._packed_projection(m) if self.packed else None
        attrs = [ir.AttrInt64("num_heads", m.heads), ir.AttrFloat32("scale", m.scale)]
        if packed is not None:
            x, weight, bias = packed
            names = f"{m.last.name or 'attention'}_qkv"
            w_val = new_initializer(graph, f"{names}_weight", weight)
            b_val = new_initializer(graph, f"{names}_bias", bias)
            hidden = [int(weight.shape[1] // 3)] * 3
            attrs.append(ir.AttrInt64s("qkv_hidden_sizes", hidden))
            inputs = [x, w_val, b_val, None, None, m.bias]
            kind = "Attention"
        elif "MultiHeadAttention" in self.offered:
            inputs = [m.q, m.k, m.v, None, None, m.bias]
            kind = "MultiHeadAttention"
        else:
            return None
        while inputs and inputs[-1] is None:
            inputs.pop()
        node = ir.Node(MS, kind, inputs, attributes=attrs, name=f"{m.last.name or 'attn'}_{kind}")
        graph.insert_before(m.last, node)
        out, new = m.last.outputs[0], node.outputs[0]
        if len(out.shape) == 2:  # the flattened [B*S, E] form: flatten the fused op's [B, S, E] output
            shape = new_initializer(graph, f"{node.name}_flat", np.array(list(out.shape), np.int64))
            new.shape, new.type = ir.Shape([*(static_shape(m.q) or ())[:2], out.shape[1]]), out.type
            flat = ir.Node("", "Reshape", [new, shape], name=f"{node.name}_flatten")
            graph.insert_before(m.last, flat)
            new = flat.outputs[0]
        new.shape, new.type = out.shape, out.type
        name = out.name
        out.replace_all_uses_with(new, replace_graph_outputs=True)
        out.name = None
        new.name = name
        return kind

    @staticmethod
    def _packed_projection(m: _Match) -> tuple[ir.Value, np.ndarray, np.ndarray] | None:
        """(x, [Wq|Wk|Wv], [bq|bk|bv]) when Q, K, V are ``Add(MatMul(x, W), b)`` of one ``x``, or
        the three equal parts of one such projection split on the last axis (GPT-2)."""
        split = _split_projection(m)
        if split is not None:
            return split
        parts = []
        for value in (m.q, m.k, m.v):
            add = value.producer()
            if is_op(add, "MatMul"):  # no bias (an all-zero bias Add was removed as a no-op)
                w = const_array(add.inputs[1])
                if w is None or w.ndim != 2:
                    return None
                parts.append((add.inputs[0], w, np.zeros(w.shape[1], w.dtype)))
                continue
            if not is_op(add, "Add"):
                return None
            for i in (0, 1):
                mm = add.inputs[i].producer()
                b = const_array(add.inputs[1 - i])
                if is_op(mm, "MatMul") and b is not None and b.ndim == 1:
                    w = const_array(mm.inputs[1])
                    if w is not None and w.ndim == 2 and w.shape[1] == b.shape[0]:
                        parts.append((mm.inputs[0], w, b))
                        break
            else:
                return None
        x = parts[0][0]
        if (
            any(p[0] is not x for p in parts)
            or len({p[1].shape for p in parts}) != 1
            or len(static_shape(x) or ()) != 3
        ):
            return None
        weight = np.concatenate([p[1] for p in parts], axis=1)
        bias = np.concatenate([p[2] for p in parts])
        if weight.dtype not in (np.float32, np.float16) or bias.dtype != weight.dtype:
            return None
        return x, weight, bias


def _split_projection(m: _Match) -> tuple[ir.Value, np.ndarray, np.ndarray] | None:
    """(x, W, b) when Q, K, V are outputs 0, 1, 2 of ``Split(p, axis=-1)`` into equal parts, with
    ``p = x·W + b`` of a 3-D ``x``: ``Add(MatMul(x, W), b)``, or ``Reshape(Gemm(Reshape(x, [B·S, E]),
    W, b), [B, S, 3E])`` as the dynamo exporter writes GPT-2's Conv1D."""
    split = m.q.producer()
    if not is_op(split, "Split") or len(split.outputs) != 3:
        return None
    if tuple(split.outputs) != (m.q, m.k, m.v) or attr_int(split, "axis", 0) not in (-1, 2):
        return None
    sizes = const_array(split.inputs[1]) if len(split.inputs) > 1 else None
    if sizes is not None and len({int(v) for v in sizes.reshape(-1)}) != 1:
        return None
    p = split.inputs[0]
    node = p.producer()
    x = w = b = None
    if is_op(node, "Reshape"):
        gemm = node.inputs[0].producer()
        if (
            is_op(gemm, "Gemm")
            and single_use(node.inputs[0])
            and len(gemm.inputs) == 3
            and attr_int(gemm, "transA", 0) == 0
            and attr_int(gemm, "transB", 0) == 0
            and all(gemm.attributes[k].as_float() == 1.0 for k in ("alpha", "beta") if k in gemm.attributes)
        ):
            flat = gemm.inputs[0].producer()
            if is_op(flat, "Reshape"):
                x, w, b = flat.inputs[0], const_array(gemm.inputs[1]), const_array(gemm.inputs[2])
    elif is_op(node, "Add"):
        for i in (0, 1):
            mm = node.inputs[i].producer()
            if is_op(mm, "MatMul"):
                x, w, b = mm.inputs[0], const_array(mm.inputs[1]), const_array(node.inputs[1 - i])
                break
    xs, ps = static_shape(x), static_shape(p)
    if x is None or w is None or b is None or xs is None or ps is None or len(xs) != 3 or w.ndim != 2:
        return None
    if ps != (xs[0], xs[1], w.shape[1]) or w.shape[0] != xs[2] or w.shape[1] % 3 or b.shape != (w.shape[1],):
        return None
    if w.dtype not in (np.float32, np.float16) or b.dtype != w.dtype:
        return None
    return x, w, b
