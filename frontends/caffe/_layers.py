"""Caffe layer handlers: each turns one layer into ONNX nodes and sets its tops' shapes.

Shapes follow Caffe's own rules (pooling rounds up, then drops a window starting in the padding;
convolution rounds down), so every output shape is known statically while converting.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from openatc.errors import OpenATCError

from ._convert import Handler, Walk
from ._detection import detection_output
from ._inputs import declare_inputs

__all__ = ["HANDLERS", "declare_inputs"]


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _spatial(param: Any, name: str, default: int | None, rank: int) -> list[int]:
    """Caffe's ``kernel_size``/``pad``/``stride`` forms: repeated, single, or ``_h``/``_w``."""
    h, w = f"{name}_h", f"{name}_w"
    if rank == 2 and (param.HasField(h) or param.HasField(w)):
        return [getattr(param, h), getattr(param, w)]
    field = name if name != "kernel" else "kernel_size"
    value = getattr(param, field)
    singular = isinstance(value, int)  # PoolingParameter's fields are not repeated
    values = ([value] if param.HasField(field) else []) if singular else list(value)
    if not values:
        if default is None:
            raise ValueError(f"{name} is not given")
        return [default] * rank
    return values * rank if len(values) == 1 else values


# -- convolution and pooling ---------------------------------------------------------------------
def _conv(walk: Walk, layer: Any) -> None:
    p = layer.convolution_param
    x = walk.bottom()
    rank = len(x.shape) - 2
    k = _spatial(p, "kernel", None, rank)
    s = _spatial(p, "stride", 1, rank)
    pad = _spatial(p, "pad", 0, rank)
    d = list(p.dilation) * rank if len(p.dilation) == 1 else (list(p.dilation) or [1] * rank)
    g, c, o = p.group, x.shape[1], p.num_output
    if c % g or o % g:
        raise ValueError(f"group {g} does not divide channels {c} / num_output {o}")
    deconv = layer.type == "Deconvolution"
    w_shape = (c, o // g, *k) if deconv else (o, c // g, *k)
    w = walk.param(0, w_shape, "weights")
    inputs = [x.name, walk.const("weights", w if w is not None else np.zeros(w_shape, np.float32))]
    if p.bias_term:
        b = walk.param(1, (o,), "bias")
        inputs.append(walk.const("bias", b if b is not None else np.zeros(o, np.float32)))
    if deconv:
        out = [s[i] * (x.shape[2 + i] - 1) + d[i] * (k[i] - 1) + 1 - 2 * pad[i] for i in range(rank)]
    else:
        out = [(x.shape[2 + i] + 2 * pad[i] - (d[i] * (k[i] - 1) + 1)) // s[i] + 1 for i in range(rank)]
    if min(out) <= 0:
        raise ValueError(f"the output would be empty (input {list(x.shape)})")
    walk.final(
        "ConvTranspose" if deconv else "Conv",
        inputs,
        [(x.shape[0], o, *out)],
        kernel_shape=k,
        strides=s,
        pads=pad + pad,
        dilations=d,
        group=g,
    )


def _pool(walk: Walk, layer: Any) -> None:
    p = layer.pooling_param
    x = walk.bottom()
    if p.pool == 2:
        raise OpenATCError(
            "E20003",
            f"layer '{layer.name}' (Pooling) uses STOCHASTIC pooling, which has no inference definition here",
        )
    op = "MaxPool" if p.pool == 0 else "AveragePool"
    n, c, h, w = x.shape
    if p.global_pooling:
        walk.final("Global" + op, [x.name], [(n, c, 1, 1)])
        return
    k = _spatial(p, "kernel", None, 2)
    s = [p.stride_h, p.stride_w] if p.HasField("stride_h") or p.HasField("stride_w") else [p.stride] * 2
    pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") or p.HasField("pad_w") else [p.pad] * 2
    ceil = p.round_mode == 0 if p.HasField("round_mode") else p.ceil_mode
    out = []
    for i, size in enumerate((h, w)):
        span = (size + 2 * pad[i] - k[i]) / s[i]
        o = (math.ceil(span) if ceil else math.floor(span)) + 1
        if pad[i] and (o - 1) * s[i] >= size + pad[i]:
            o -= 1  # the last window must start inside the image
        out.append(o)
    x_name, padded = x.name, (h, w)
    if op == "AveragePool" and any(pad):
        # Caffe divides by the window clipped to the padded image: pad explicitly, then exclude only
        # the extra end padding that ceil rounding adds.
        x_name = walk.op("Pad", [x.name, walk.ints("pads", [0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]])])[0]
        padded, begin = (h + 2 * pad[0], w + 2 * pad[1]), [0, 0]
    else:
        begin = list(pad)
    end = [max((out[i] - 1) * s[i] + k[i] - padded[i] - begin[i], 0) for i in range(2)]
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": begin + end}
    if op == "AveragePool":
        attrs["count_include_pad"] = 0
    walk.final(op, [x_name], [(n, c, *out)], **attrs)


def _inner_product(walk: Walk, layer: Any) -> None:
    p = layer.inner_product_param
    x = walk.bottom()
    axis = _axis(p.axis, len(x.shape))
    k, o = math.prod(x.shape[axis:]), p.num_output
    w = walk.param(0, (k, o) if p.transpose else (o, k), "weights")
    if w is None:
        w = np.zeros((o, k), np.float32)
    elif p.transpose:
        w = w.T
    inputs = [x.name]
    lead = math.prod(x.shape[:axis])
    if len(x.shape) != 2 or axis != 1:
        inputs = walk.op("Reshape", [x.name, walk.ints("shape_in", [lead, k])])
    inputs.append(walk.const("weights", np.ascontiguousarray(w)))
    if p.bias_term:
        b = walk.param(1, (o,), "bias")
        inputs.append(walk.const("bias", b if b is not None else np.zeros(o, np.float32)))
    out_shape = (*x.shape[:axis], o)
    if len(out_shape) == 2:
        walk.final("Gemm", inputs, [out_shape], transB=1)
    else:
        y = walk.op("Gemm", inputs, transB=1)
        walk.final("Reshape", [y[0], walk.ints("shape_out", out_shape)], [out_shape])


# -- activations ----------------------------------------------------------------------------------
def _unary(op: str, **attrs: Any) -> Handler:
    def handler(walk: Walk, layer: Any) -> None:
        x = walk.bottom()
        walk.final(op, [x.name], [x.shape], **attrs)

    return handler


def _relu(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    slope = layer.relu_param.negative_slope
    if slope:
        walk.final("LeakyRelu", [x.name], [x.shape], alpha=slope)
    else:
        walk.final("Relu", [x.name], [x.shape])


def _elu(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    walk.final("Elu", [x.name], [x.shape], alpha=layer.elu_param.alpha)


def _channel_shape(x_shape: tuple[int, ...], values: np.ndarray, axis: int = 1) -> np.ndarray:
    """``values`` laid over ``x_shape`` from ``axis`` (Caffe's broadcast of Scale/Bias/PReLU)."""
    trailing = len(x_shape) - axis - values.ndim
    return values.reshape(values.shape + (1,) * max(trailing, 0))


def _prelu(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    shared = layer.prelu_param.channel_shared
    slope = walk.param(0, (1,) if shared else (x.shape[1],), "slope")
    if slope is None:
        slope = np.zeros(1, np.float32)
    slope = slope.reshape(()) if shared else _channel_shape(x.shape, slope)
    walk.final("PRelu", [x.name, walk.const("slope", slope.astype(np.float32))], [x.shape])


def _affine(walk: Walk, x: Any, scale: float, shift: float) -> str:
    name = x.name
    if scale != 1:
        name = walk.op("Mul", [name, walk.const("scale", np.array(scale, np.float32))])[0]
    if shift != 0:
        name = walk.op("Add", [name, walk.const("shift", np.array(shift, np.float32))])[0]
    return name


def _power(walk: Walk, layer: Any) -> None:
    p, x = layer.power_param, walk.bottom()
    y = _affine(walk, x, p.scale, p.shift)
    if p.power == 1:
        walk.final("Identity", [y], [x.shape])
    else:
        walk.final("Pow", [y, walk.const("power", np.array(p.power, np.float32))], [x.shape])


def _exp(walk: Walk, layer: Any) -> None:
    p, x = layer.exp_param, walk.bottom()
    ln_base = 1.0 if p.base == -1 else math.log(p.base)
    y = _affine(walk, x, p.scale * ln_base, p.shift * ln_base)
    walk.final("Exp", [y], [x.shape])


def _log(walk: Walk, layer: Any) -> None:
    p, x = layer.log_param, walk.bottom()
    y = walk.op("Log", [_affine(walk, x, p.scale, p.shift)])[0]
    factor = 1.0 if p.base == -1 else 1.0 / math.log(p.base)
    walk.final("Mul", [y, walk.const("base", np.array(factor, np.float32))], [x.shape])


def _clip(walk: Walk, layer: Any, low: float | None = None, high: float | None = None) -> None:
    x = walk.bottom()
    if low is None:
        low, high = layer.clip_param.min, layer.clip_param.max
    bounds = [walk.const("min", np.array(low, np.float32)), walk.const("max", np.array(high, np.float32))]
    walk.final("Clip", [x.name, *bounds], [x.shape])


def _swish(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    beta = layer.swish_param.beta
    scaled = x.name if beta == 1 else walk.op("Mul", [x.name, walk.const("beta", np.array(beta, np.float32))])[0]
    walk.final("Mul", [x.name, walk.op("Sigmoid", [scaled])[0]], [x.shape])


def _upsample(walk: Walk, layer: Any) -> None:
    if len(layer.bottom) > 1:
        raise OpenATCError(
            "E20003",
            f"layer '{layer.name}' (Upsample) unpools with a mask (SegNet); only nearest upsampling is supported",
        )
    x, scale = walk.bottom(), layer.upsample_param.scale
    scales = walk.const("scales", np.array([1, 1, scale, scale], np.float32))
    shape = (*x.shape[:2], x.shape[2] * scale, x.shape[3] * scale)
    walk.final(
        "Resize",
        [x.name, "", scales],
        [shape],
        mode="nearest",
        nearest_mode="floor",
        coordinate_transformation_mode="asymmetric",
    )


def _threshold(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    gt = walk.op("Greater", [x.name, walk.const("threshold", np.array(layer.threshold_param.threshold, np.float32))])
    walk.final("Cast", gt, [x.shape], to=1)


# -- normalization ---------------------------------------------------------------------------------
def _batch_norm(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    c = x.shape[1]
    mean = walk.param(0, (c,), "mean")
    var = walk.param(1, (c,), "variance")
    factor = walk.param(2, (1,), "moving_average_factor", optional=True)
    f = float(factor.reshape(-1)[0]) if factor is not None else 1.0
    f = 0.0 if f == 0 else 1.0 / f
    mean = (mean if mean is not None else np.zeros(c, np.float32)) * f
    var = (var if var is not None else np.ones(c, np.float32)) * f
    inputs = [
        x.name,
        walk.const("gamma", np.ones(c, np.float32)),
        walk.const("beta", np.zeros(c, np.float32)),
        walk.const("mean", mean.astype(np.float32)),
        walk.const("variance", var.astype(np.float32)),
    ]
    walk.final("BatchNormalization", inputs, [x.shape], epsilon=layer.batch_norm_param.eps)


def _param_shape(x_shape: tuple[int, ...], axis: int, num_axes: int) -> tuple[int, ...]:
    axis = _axis(axis, len(x_shape)) if x_shape else 0
    end = len(x_shape) if num_axes == -1 else axis + num_axes
    return tuple(x_shape[axis:end])


def _scale_or_bias(walk: Walk, layer: Any) -> None:
    is_scale = layer.type == "Scale"
    p = layer.scale_param if is_scale else layer.bias_param
    x = walk.bottom()
    axis = _axis(p.axis, len(x.shape))
    blob_index = 0
    if len(layer.bottom) > 1:
        other = walk.bottom(1)
        operand = walk.op(
            "Reshape", [other.name, walk.ints("bshape", _channel_shape(x.shape, np.zeros(other.shape), axis).shape)]
        )[0]
    else:
        shape = _param_shape(x.shape, axis, p.num_axes)
        values = walk.param(0, shape, "scale" if is_scale else "bias")
        if values is None:
            values = np.ones(shape, np.float32) if is_scale else np.zeros(shape, np.float32)
        operand = walk.const("scale" if is_scale else "bias", _channel_shape(x.shape, values, axis).astype(np.float32))
        blob_index = 1
    if is_scale and p.bias_term:
        y = walk.op("Mul", [x.name, operand])[0]
        shape = _param_shape(x.shape, axis, p.num_axes) if len(layer.bottom) == 1 else walk.bottom(1).shape
        bias = walk.param(blob_index, shape, "bias")
        if bias is None:
            bias = np.zeros(shape, np.float32)
        walk.final("Add", [y, walk.const("bias", _channel_shape(x.shape, bias, axis).astype(np.float32))], [x.shape])
    else:
        walk.final("Mul" if is_scale else "Add", [x.name, operand], [x.shape])


def _lrn(walk: Walk, layer: Any) -> None:
    p, x = layer.lrn_param, walk.bottom()
    if p.norm_region == 0:
        walk.final("LRN", [x.name], [x.shape], size=p.local_size, alpha=p.alpha, beta=p.beta, bias=p.k)
        return
    # WITHIN_CHANNEL: x / (1 + alpha * mean of x^2 over a local_size^2 window, zero padded) ^ beta
    half = (p.local_size - 1) // 2
    sq = walk.op("Mul", [x.name, x.name])[0]
    avg = walk.op(
        "AveragePool", [sq], kernel_shape=[p.local_size] * 2, pads=[half] * 4, strides=[1, 1], count_include_pad=1
    )[0]
    den = walk.op(
        "Pow", [_affine(walk, type(x)(avg, x.shape), p.alpha, 1.0), walk.const("beta", np.array(p.beta, np.float32))]
    )[0]
    walk.final("Div", [x.name, den], [x.shape])


def _normalize(walk: Walk, layer: Any) -> None:
    p, x = layer.norm_param, walk.bottom()
    axes = list(range(1, len(x.shape))) if p.across_spatial else [1]
    sq = walk.op("ReduceSumSquare", [x.name, walk.ints("axes", axes)], keepdims=1)[0]
    norm = walk.op("Sqrt", [walk.op("Add", [sq, walk.const("eps", np.array(p.eps, np.float32))])[0]])[0]
    y = walk.op("Div", [x.name, norm])[0]
    scale = walk.param(0, (1,) if p.channel_shared else (x.shape[1],), "scale")
    if scale is None:
        scale = np.ones(1, np.float32)
    scale = scale.reshape(()) if p.channel_shared else _channel_shape(x.shape, scale)
    walk.final("Mul", [y, walk.const("scale", scale.astype(np.float32))], [x.shape])


def _mvn(walk: Walk, layer: Any) -> None:
    p, x = layer.mvn_param, walk.bottom()
    axes = walk.ints("axes", list(range(1 if p.across_channels else 2, len(x.shape))))
    mean = walk.op("ReduceMean", [x.name, axes], keepdims=1)[0]
    centered = walk.op("Sub", [x.name, mean])[0]
    if not p.normalize_variance:
        walk.final("Identity", [centered], [x.shape])
        return
    var = walk.op("ReduceMean", [walk.op("Mul", [centered, centered])[0], axes], keepdims=1)[0]
    std = walk.op("Add", [walk.op("Sqrt", [var])[0], walk.const("eps", np.array(p.eps, np.float32))])[0]
    walk.final("Div", [centered, std], [x.shape])


def _softmax(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    walk.final("Softmax", [x.name], [x.shape], axis=_axis(layer.softmax_param.axis, len(x.shape)))


# -- structure --------------------------------------------------------------------------------------
def _eltwise(walk: Walk, layer: Any) -> None:
    p, xs = layer.eltwise_param, walk.bottoms()
    names = [b.name for b in xs]
    if p.operation == 1:
        coeffs = list(p.coeff)
        if coeffs and len(coeffs) != len(xs):
            raise ValueError(f"{len(coeffs)} coeff values for {len(xs)} bottoms")
        if coeffs and any(c != 1 for c in coeffs):
            names = [
                n if c == 1 else walk.op("Mul", [n, walk.const("coeff", np.array(c, np.float32))])[0]
                for n, c in zip(names, coeffs, strict=True)
            ]
        walk.final("Sum", names, [xs[0].shape])
    elif p.operation == 0:
        y = names[0]
        for n in names[1:-1]:
            y = walk.op("Mul", [y, n])[0]
        walk.final("Mul", [y, names[-1]], [xs[0].shape])
    else:
        walk.final("Max", names, [xs[0].shape])


def _concat(walk: Walk, layer: Any) -> None:
    p, xs = layer.concat_param, walk.bottoms()
    axis = _axis(p.axis if p.HasField("axis") or not p.HasField("concat_dim") else p.concat_dim, len(xs[0].shape))
    shape = list(xs[0].shape)
    shape[axis] = sum(b.shape[axis] for b in xs)
    walk.final("Concat", [b.name for b in xs], [shape], axis=axis)


def _slice(walk: Walk, layer: Any) -> None:
    p, x = layer.slice_param, walk.bottom()
    axis = _axis(p.axis if p.HasField("axis") or not p.HasField("slice_dim") else p.slice_dim, len(x.shape))
    n, size = len(layer.top), x.shape[axis]
    if p.slice_point:
        points = [0, *p.slice_point, size]
        sizes = [points[i + 1] - points[i] for i in range(len(points) - 1)]
    else:
        if size % n:
            raise ValueError(f"axis {axis} of size {size} does not split into {n} equal parts")
        sizes = [size // n] * n
    if len(sizes) != n or min(sizes) <= 0:
        raise ValueError(f"slice points {list(p.slice_point)} do not give {n} non-empty parts of {size}")
    shapes = [tuple(s if i == axis else d for i, d in enumerate(x.shape)) for s in sizes]
    walk.final("Split", [x.name, walk.ints("split", sizes)], shapes, axis=axis)


def _split(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    for i in range(len(layer.top)):
        name = walk.top_name(i)
        walk.nodes.append(_identity(x.name, name, walk.unique(f"{layer.name}/{i}")))
        walk.set_top(i, name, x.shape)


def _identity(src: str, dst: str, name: str) -> Any:
    from onnx import helper

    return helper.make_node("Identity", [src], [dst], name=name)


def _reshape_to(walk: Walk, shape: list[int] | tuple[int, ...]) -> None:
    x = walk.bottom()
    walk.final("Reshape", [x.name, walk.ints("shape", shape)], [tuple(shape)])


def _flatten(walk: Walk, layer: Any) -> None:
    p, x = layer.flatten_param, walk.bottom()
    start, end = _axis(p.axis, len(x.shape)), _axis(p.end_axis, len(x.shape))
    _reshape_to(walk, [*x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :]])


def _reshape(walk: Walk, layer: Any) -> None:
    p, x = layer.reshape_param, walk.bottom()
    rank = len(x.shape)
    start = p.axis if p.axis >= 0 else rank + p.axis + 1
    end = rank if p.num_axes == -1 else start + p.num_axes
    dims = list(p.shape.dim)
    middle = [x.shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    shape = [*x.shape[:start], *middle, *x.shape[end:]]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(x.shape) // known
    if math.prod(shape) != math.prod(x.shape):
        raise ValueError(f"cannot reshape {list(x.shape)} to {shape}")
    _reshape_to(walk, shape)


def _permute(walk: Walk, layer: Any) -> None:
    x = walk.bottom()
    order = list(layer.permute_param.order)
    order += [i for i in range(len(x.shape)) if i not in order]
    walk.final("Transpose", [x.name], [tuple(x.shape[i] for i in order)], perm=order)


def _crop(walk: Walk, layer: Any) -> None:
    p, x, ref = layer.crop_param, walk.bottom(), walk.bottom(1)
    axis = _axis(p.axis, len(x.shape))
    offsets = list(p.offset)
    axes = list(range(axis, len(x.shape)))
    if len(offsets) <= 1:
        offsets = [offsets[0] if offsets else 0] * len(axes)
    ends = [o + ref.shape[a] for o, a in zip(offsets, axes, strict=True)]
    shape = [*x.shape[:axis], *ref.shape[axis:]]
    inputs = [x.name, walk.ints("starts", offsets), walk.ints("ends", ends), walk.ints("axes", axes)]
    walk.final("Slice", inputs, [shape])


def _tile(walk: Walk, layer: Any) -> None:
    p, x = layer.tile_param, walk.bottom()
    axis = _axis(p.axis, len(x.shape))
    reps = [p.tiles if i == axis else 1 for i in range(len(x.shape))]
    walk.final("Tile", [x.name, walk.ints("repeats", reps)], [tuple(d * r for d, r in zip(x.shape, reps, strict=True))])


def _interp(walk: Walk, layer: Any) -> None:
    p, x = layer.interp_param, walk.bottom()
    if p.pad_beg or p.pad_end:
        raise ValueError("pad_beg/pad_end are not supported")
    h, w = x.shape[2:]
    if len(layer.bottom) > 1:
        oh, ow = walk.bottom(1).shape[2:]
    elif p.height and p.width:
        oh, ow = p.height, p.width
    else:
        oh, ow = h, w
        if p.shrink_factor != 1:
            oh, ow = (oh - 1) // p.shrink_factor + 1, (ow - 1) // p.shrink_factor + 1
        if p.zoom_factor != 1:
            oh, ow = oh + (oh - 1) * (p.zoom_factor - 1), ow + (ow - 1) * (p.zoom_factor - 1)
    shape = (*x.shape[:2], oh, ow)
    # sizes = (N, C) of the input, then the new H, W: the batch stays free for gears
    n_c = walk.op("Shape", [x.name], start=0, end=2)[0]
    sizes = walk.op("Concat", [n_c, walk.ints("hw", [oh, ow])], axis=0)[0]
    inputs = [x.name, "", "", sizes]
    walk.final("Resize", inputs, [shape], mode="linear", coordinate_transformation_mode="align_corners")


def _argmax(walk: Walk, layer: Any) -> None:
    p, x = layer.argmax_param, walk.bottom()
    k = p.top_k
    if p.HasField("axis"):
        axis = _axis(p.axis, len(x.shape))
        src, shape = x.name, list(x.shape)
    else:
        axis, shape = 1, [x.shape[0], math.prod(x.shape[1:])]
        src = walk.op("Reshape", [x.name, walk.ints("flat", shape)])[0]
    values, indices = walk.op("TopK", [src, walk.ints("k", [k])], n_out=2, axis=axis)
    idx = walk.op("Cast", [indices], to=1)[0]
    shape[axis] = k
    if p.HasField("axis"):
        walk.final("Identity", [values if p.out_max_val else idx], [shape])
    elif p.out_max_val:
        walk.final(
            "Concat",
            [walk.op("Unsqueeze", [t, walk.ints("ax", [1])])[0] for t in (idx, values)],
            [(shape[0], 2, k)],
            axis=1,
        )
    else:
        walk.final("Reshape", [idx, walk.ints("shape", [shape[0], 1, k])], [(shape[0], 1, k)])


def _reduction(walk: Walk, layer: Any) -> None:
    p, x = layer.reduction_param, walk.bottom()
    axis = _axis(p.axis, len(x.shape))
    axes = walk.ints("axes", list(range(axis, len(x.shape))))
    src = walk.op("Abs", [x.name])[0] if p.operation == 2 else x.name
    op = {1: "ReduceSum", 2: "ReduceSum", 3: "ReduceSumSquare", 4: "ReduceMean"}[p.operation]
    shape = x.shape[:axis]
    if p.coeff == 1:
        walk.final(op, [src, axes], [shape], keepdims=0)
    else:
        y = walk.op(op, [src, axes], keepdims=0)[0]
        walk.final("Mul", [y, walk.const("coeff", np.array(p.coeff, np.float32))], [shape])


def _prior_box(walk: Walk, layer: Any) -> None:
    from ._priorbox import prior_boxes

    x, image = walk.bottom(), walk.bottom(1)
    boxes = prior_boxes(layer.prior_box_param, x.shape[2:], image.shape[2:])
    walk.final("Identity", [walk.const("priors", boxes)], [boxes.shape])


HANDLERS: dict[str, Handler] = {
    "Convolution": _conv,
    "Deconvolution": _conv,
    "Pooling": _pool,
    "InnerProduct": _inner_product,
    "ReLU": _relu,
    "PReLU": _prelu,
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
    "ELU": _elu,
    "BNLL": _unary("Softplus"),
    "AbsVal": _unary("Abs"),
    "Power": _power,
    "Exp": _exp,
    "Log": _log,
    "Threshold": _threshold,
    "Clip": _clip,
    "ReLU6": lambda walk, layer: _clip(walk, layer, 0.0, 6.0),
    "Swish": _swish,
    "Upsample": _upsample,
    "BatchNorm": _batch_norm,
    "Scale": _scale_or_bias,
    "Bias": _scale_or_bias,
    "Eltwise": _eltwise,
    "Concat": _concat,
    "Slice": _slice,
    "Split": _split,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    "Softmax": _softmax,
    "LRN": _lrn,
    "MVN": _mvn,
    "Dropout": _unary("Identity"),
    "Crop": _crop,
    "Tile": _tile,
    "Interp": _interp,
    "Normalize": _normalize,
    "PriorBox": _prior_box,
    "ArgMax": _argmax,
    "DetectionOutput": detection_output,
    "Reduction": _reduction,
}
