"""A constant per-channel Add after Conv or Gemm becomes the op's bias; a constant per-channel Mul
after Conv scales its weights and bias."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ._graph import attr_int, attr_ints, bypass, const_array, is_op, remove_if_unused, single_use, static_shape


class FuseBiasPass(ir.passes.InPlacePass):
    """``Add(Conv(x, W[, B]), c)`` with ``c`` constant and per output channel (shape ``[C,1,..,1]``
    or ``[1,C,1,..,1]``) becomes ``Conv(x, W, B + c)``; ``Add(Gemm(a, b[, C]), c)`` with ``c``
    broadcasting to the Gemm output becomes ``Gemm(a, b, C + c)``. The Conv/Gemm output must be
    used by the Add only. New biases are new initializers (the old ones stay if still used).

    ``Mul(Conv(x, W[, B]), s)`` with ``s`` constant, per output channel or scalar, becomes
    ``Conv(x, W * s, B * s)`` (PP-OCRv4's learnable affine blocks: a scale and a shift after the
    convolutions; the shift then becomes the bias as above).

    ``Conv(Add(Mul(h, s), t), W, B)`` with ``s``, ``t`` constant (scalars, or per input channel
    when ``group`` is 1; either op may be missing) and no padding becomes
    ``Conv(h, W * s, B + sum(W * t))``: without padding every output sums over real inputs only,
    so the shift is exactly a bias (the affine block after an activation, before a 1x1 Conv).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {"Conv+Mul": 0, "Conv+Add": 0, "ConvTranspose+Add": 0, "Gemm+Add": 0, "Mul/Add+Conv": 0}
        for node in list(model.graph):
            if node.graph is not None and is_op(node, "Conv") and self._input_affine(model.graph, node):
                self.hits["Mul/Add+Conv"] += 1
        for node in list(model.graph):
            if node.graph is not None and is_op(node, "Mul") and len(node.inputs) == 2:
                for i in (0, 1):
                    producer = node.inputs[i].producer() if node.inputs[i] is not None else None
                    fits = is_op(producer, "Conv") and single_use(node.inputs[i])
                    if fits and self._scale(model.graph, producer, node, node.inputs[1 - i]):
                        self.hits["Conv+Mul"] += 1
                        break
        for node in list(model.graph):
            if node.graph is None or not is_op(node, "Add") or len(node.inputs) != 2:
                continue
            for i in (0, 1):
                producer = node.inputs[i].producer() if node.inputs[i] is not None else None
                if is_op(producer, ("Conv", "ConvTranspose", "Gemm")) and single_use(node.inputs[i]):
                    kind = self._fuse(model.graph, producer, node, node.inputs[1 - i])
                    if kind:
                        self.hits[kind] += 1
                        break
        return ir.passes.PassResult(model, modified=any(self.hits.values()))

    @staticmethod
    def _input_affine(graph: ir.Graph, conv: ir.Node) -> bool:
        x = conv.inputs[0]
        w = const_array(conv.inputs[1]) if len(conv.inputs) > 1 else None
        in_shape = static_shape(x)
        if x is None or w is None or in_shape is None or w.ndim != len(in_shape) or not _unpadded(conv):
            return False
        b = const_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
        if len(conv.inputs) > 2 and conv.inputs[2] is not None and b is None:
            return False
        grouped = attr_int(conv, "group", 1) != 1
        scale, shift, source, removed = None, None, x, []
        for op_type in ("Add", "Mul"):
            node = source.producer()
            if not is_op(node, op_type) or len(node.inputs) != 2 or not single_use(source):
                continue
            for i in (0, 1):
                c = const_array(node.inputs[1 - i])
                if c is None or c.dtype != w.dtype or node.inputs[i] is None:
                    continue
                if static_shape(node.inputs[i]) != in_shape or node.inputs[i].dtype != x.dtype:
                    continue
                per_channel = _per_channel(c, in_shape)
                if per_channel is None or (grouped and c.size != 1):
                    continue
                if op_type == "Add":
                    shift = per_channel
                else:
                    scale = per_channel
                removed.append(node)
                source = node.inputs[i]
                break
        if not removed:
            return False
        shape = (1, -1) + (1,) * (w.ndim - 2)
        new_w = w if scale is None else (w * scale[: w.shape[1]].reshape(shape)).astype(w.dtype)
        name = conv.name or conv.outputs[0].name or "conv"
        if shift is not None:
            # the shift goes through the original weights (it is added after the scale)
            extra = (w * shift[: w.shape[1]].reshape(shape)).sum(axis=tuple(range(1, w.ndim)), dtype=np.float64)
            old = b.astype(np.float64) if b is not None else 0.0
            new_b = (old + extra).astype(w.dtype)
            while len(conv.inputs) <= 2:
                conv.resize_inputs(len(conv.inputs) + 1)
            _set_input(graph, conv, 2, new_b, f"{name}_fused_bias")
        if scale is not None:
            _set_input(graph, conv, 1, new_w, f"{name}_scaled_weight")
        conv.replace_input_with(0, source)
        for node in removed:
            remove_if_unused(node)
        return True

    @staticmethod
    def _scale(graph: ir.Graph, conv: ir.Node, mul: ir.Node, other: ir.Value | None) -> bool:
        s = const_array(other)
        out_shape = static_shape(conv.outputs[0])
        w = const_array(conv.inputs[1]) if len(conv.inputs) > 1 else None
        if s is None or w is None or out_shape is None or s.dtype != _np_dtype(conv.outputs[0]) or w.dtype != s.dtype:
            return False
        if mul.outputs[0].dtype != conv.outputs[0].dtype or static_shape(mul.outputs[0]) != out_shape:
            return False
        per_channel = _per_channel(s, out_shape)
        if per_channel is None:
            return False
        b = const_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
        if len(conv.inputs) > 2 and conv.inputs[2] is not None and b is None:
            return False
        if not bypass(mul, conv.outputs[0]):  # rewires only: nothing changed when it refuses
            return False
        scaled_w = (w * per_channel.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        _set_input(graph, conv, 1, scaled_w, f"{conv.name or mul.name or 'conv'}_scaled_weight")
        if b is not None:
            _set_input(
                graph, conv, 2, (b * per_channel).astype(b.dtype), f"{conv.name or mul.name or 'conv'}_scaled_bias"
            )
        return True

    @staticmethod
    def _fuse(graph: ir.Graph, op: ir.Node, add: ir.Node, other: ir.Value | None) -> str | None:
        c = const_array(other)
        out_shape = static_shape(op.outputs[0])
        if c is None or out_shape is None or c.dtype != _np_dtype(op.outputs[0]):
            return None
        if add.outputs[0].dtype != op.outputs[0].dtype or static_shape(add.outputs[0]) != out_shape:
            return None
        if is_op(op, ("Conv", "ConvTranspose")):
            channels = out_shape[1]
            dims = list(c.shape)
            while dims and dims[0] == 1 and len(dims) > len(out_shape) - 1:
                dims.pop(0)
            if len(dims) > len(out_shape) - 1 or any(d != 1 for d in dims[1:]):
                return None
            if dims and dims[0] != 1 and (len(dims) < len(out_shape) - 1 or dims[0] != channels):
                return None
            extra = np.broadcast_to(c.reshape(-1) if c.size > 1 else c.reshape(()), (channels,))
            index, size = 2, (channels,)
        else:
            beta = op.attributes.get("beta")
            if c.ndim > 2 or (beta is not None and beta.as_float() != 1.0):
                return None
            try:
                np.broadcast_to(c, out_shape)
            except ValueError:
                return None
            extra = c if c.ndim == 2 or c.size > 1 else c.reshape(())
            index, size = 2, None
        old = const_array(op.inputs[index]) if len(op.inputs) > index and op.inputs[index] is not None else None
        if len(op.inputs) > index and op.inputs[index] is not None and old is None:
            return None
        if is_op(op, "Gemm") and old is not None:
            try:
                if np.broadcast_shapes(old.shape, extra.shape, out_shape) != tuple(out_shape):
                    return None
            except ValueError:
                return None
        bias = (extra if old is None else old + extra).astype(c.dtype)
        if size is not None:
            bias = np.ascontiguousarray(np.broadcast_to(bias, size))
        name = f"{op.name or add.name or 'op'}_fused_bias"
        while name in graph.initializers:
            name += "_"
        value = ir.Value(name=name, const_value=ir.Tensor(np.ascontiguousarray(bias), name=name))
        value.shape, value.dtype = ir.Shape(bias.shape), op.outputs[0].dtype
        graph.register_initializer(value)
        while len(op.inputs) <= index:
            op.resize_inputs(len(op.inputs) + 1)
        op.replace_input_with(index, value)
        if not bypass(add, op.outputs[0]):
            return None
        return "Gemm+Add" if is_op(op, "Gemm") else f"{op.op_type}+Add"


def _np_dtype(value: ir.Value) -> np.dtype | None:
    try:
        return np.dtype(value.dtype.numpy()) if value.dtype is not None else None
    except (TypeError, ValueError):
        return None


def _per_channel(c: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as one value per output channel of a Conv with output ``out_shape`` (``[C,1,..,1]``,
    ``[1,C,1,..,1]`` or a scalar), or None when it broadcasts otherwise."""
    channels = out_shape[1]
    dims = list(c.shape)
    while dims and dims[0] == 1 and len(dims) > len(out_shape) - 1:
        dims.pop(0)
    if len(dims) > len(out_shape) - 1 or any(d != 1 for d in dims[1:]):
        return None
    if dims and dims[0] != 1 and (len(dims) < len(out_shape) - 1 or dims[0] != channels):
        return None
    return np.ascontiguousarray(np.broadcast_to(c.reshape(-1) if c.size > 1 else c.reshape(()), (channels,)))


def _set_input(graph: ir.Graph, op: ir.Node, index: int, array: np.ndarray, name: str) -> None:
    """Feeds ``array`` as a new initializer to input ``index`` of ``op``."""
    while name in graph.initializers:
        name += "_"
    value = ir.Value(name=name, const_value=ir.Tensor(np.ascontiguousarray(array), name=name))
    value.shape, value.dtype = ir.Shape(array.shape), op.outputs[0].dtype
    graph.register_initializer(value)
    op.replace_input_with(index, value)


def _unpadded(conv: ir.Node) -> bool:
    """The Conv reads no padding: ``pads`` all zero and ``auto_pad`` NOTSET or VALID."""
    auto_pad = conv.attributes.get("auto_pad")
    if auto_pad is not None and auto_pad.as_string() not in ("NOTSET", "VALID"):
        return False
    pads = attr_ints(conv, "pads")
    return pads is None or not any(pads)
