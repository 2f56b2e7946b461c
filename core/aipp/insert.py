"""Compiling AIPP into the model: the raw-image input replaces the model input (spec 2.3-2.7).

Static AIPP, in ATC's order, on NHWC pixels: the format plugin decodes the raw bytes; channel
swap (``ax_swap`` moves channel 0 last, then ``rbuv_swap`` exchanges R/B or U/V); crop; CSC with
8 fractional bits (``(sum(m * (in - input_bias)) >> 8)`` for YUV formats, ``(sum(m * in) >> 8) +
output_bias`` for RGB formats; ``>> 8`` is a floor, the result is clamped to [0, 255]), computed
exactly in float32 (Conv, or ConvTranspose for semi-planar YUV, then QuantizeLinear) when
:func:`float_exact` proves it and in int32 otherwise; normalization ``(in - mean_chn - min_chn) *
var_reci_chn`` in float32 (skipped for a uint8 model input, as ATC does); padding with
``padding_value``; then the model's layout and dtype. The new input is uint8 NHWC of the source
image size. Blocks with ``input_edge_idx`` give each consumer of one input its own chain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx_ir as ir

from openatc.aipp._builder import AippBuilder
from openatc.aipp.config import AippConfig
from openatc.errors import OpenATCError
from openatc.types import AippFormat, TensorSpec

__all__ = ["ModelImage", "check_conflicts", "insert_aipp", "resolve_static"]

logger = logging.getLogger(__name__)

_OFFSET = 256 << 17  # makes the CSC sums non-negative so that integer Div floors (|sum| < 3*255*32677)
_FLOAT_TYPES = {ir.DataType.FLOAT: "float32", ir.DataType.FLOAT16: "float16", ir.DataType.DOUBLE: "float64"}


@dataclass(frozen=True)
class ModelImage:
    """The model input AIPP feeds: batch, channels, height, width, numpy dtype and layout."""

    n: int
    c: int
    h: int
    w: int
    dtype: str
    layout: str

    def to_json(self) -> dict[str, Any]:
        shape = [self.n, self.c, self.h, self.w] if self.layout == "NCHW" else [self.n, self.h, self.w, self.c]
        return {"dtype": self.dtype, "shape": shape, "format": self.layout}


def _bad(where: str, reason: str, hint: str | None = None) -> OpenATCError:
    return OpenATCError("E10052", f"AIPP configuration is invalid: {where}: {reason}", hint=hint)


def check_conflicts(
    configs: Sequence[AippConfig],
    input_names: Sequence[str],
    *,
    fp16_nodes: Sequence[str] = (),
    dynamic_batch: bool = False,
    dynamic_image_size: bool = False,
    dynamic_dims: bool = False,
) -> None:
    """ATC's rules for AIPP together with other flags (spec 1.4.5 and 2.10).

    ``dynamic_batch`` is allowed with both modes (each gear gets its own AIPP ops for its batch).
    """
    del dynamic_batch
    if dynamic_dims:
        raise OpenATCError(
            "E10001", "--dynamic_dims does not support AIPP (--insert_op_conf)", hint="Remove one of the two flags."
        )
    for config in configs:
        name = _input_name(config, input_names)
        if name in fp16_nodes:
            raise OpenATCError(
                "E10034",
                f"input '{name}' is fed by AIPP ({config.where}) and also listed in --input_fp16_nodes",
                hint="An AIPP input is uint8; remove it from --input_fp16_nodes.",
            )
        static_sized = config.crop or config.padding or config.src_image_size_w or config.src_image_size_h
        if config.mode == "static" and dynamic_image_size and static_sized:
            raise _bad(
                config.where,
                "with --dynamic_image_size, static AIPP must have crop and padding off and src_image_size 0",
            )


def _input_name(config: AippConfig, names: Sequence[str]) -> str:
    if config.related_input_name:
        if config.related_input_name not in names:
            raise _bad(
                config.at("related_input_name"),
                f"related_input_name '{config.related_input_name}' is not a model input; inputs: {', '.join(names)}",
            )
        return config.related_input_name
    if config.related_input_rank >= len(names):
        raise _bad(
            config.at("related_input_rank"),
            f"related_input_rank={config.related_input_rank} but the model has {len(names)} input(s): "
            + ", ".join(names),
        )
    return names[config.related_input_rank]


def _model_image(value: ir.Value, layout: str, config: AippConfig) -> ModelImage:
    shape = value.shape
    dims = [d if isinstance(d, int) else -1 for d in shape] if shape is not None else []
    if len(dims) != 4 or any(d <= 0 for d in dims):
        raise _bad(
            config.where,
            f"AIPP needs a 4-D image input with fixed dims, but input '{value.name}' has shape {dims or '?'}",
            hint="Attach AIPP to an N,C,H,W (or N,H,W,C) image input; give its size with --input_shape.",
        )
    n, c, h, w = dims if layout == "NCHW" else (dims[0], dims[3], dims[1], dims[2])
    dtype = _FLOAT_TYPES.get(value.dtype) if value.dtype is not None else None
    if value.dtype == ir.DataType.UINT8:
        dtype = "uint8"
    if dtype is None:
        raise _bad(config.where, f"input '{value.name}' has dtype {value.dtype}; AIPP feeds float or uint8 inputs")
    if c not in (1, 3, 4):
        raise _bad(
            config.where,
            f"input '{value.name}' has {c} channels in layout {layout} {dims}; AIPP produces 1, 3 or 4 channels",
            hint="Check --input_format (NCHW or NHWC) against the model's input layout.",
        )
    return ModelImage(n, c, h, w, dtype, layout)


def resolve_static(config: AippConfig, fmt: AippFormat, image: ModelImage) -> AippConfig:
    """Fills sizes left 0 from the model input and checks alignment and the output size (E10052)."""
    src_w = config.src_image_size_w or image.w
    src_h = config.src_image_size_h or image.h
    for axis, size, low in (("w", src_w, 2), ("h", src_h, 1)):
        if not low <= size <= 4096:
            raise _bad(config.at(f"src_image_size_{axis}"), f"source size {size} is out of range [{low}, 4096]")
    crop_w = (config.crop_size_w or image.w) if config.crop else src_w
    crop_h = (config.crop_size_h or image.h) if config.crop else src_h
    resolved = replace(config, src_image_size_w=src_w, src_image_size_h=src_h)
    if config.crop:
        resolved = replace(resolved, crop_size_w=crop_w, crop_size_h=crop_h)
        for axis, start, size, src in (
            ("w", config.load_start_pos_w, crop_w, src_w),
            ("h", config.load_start_pos_h, crop_h, src_h),
        ):
            if start + size > src:
                raise _bad(
                    config.at(f"crop_size_{axis}"),
                    f"load_start_pos_{axis} + crop_size_{axis} = {start} + {size} exceeds src_image_size_{axis}={src}",
                )
    for name, value, align in (
        ("src_image_size_w", src_w, fmt.align_w),
        ("src_image_size_h", src_h, fmt.align_h),
        ("load_start_pos_w", config.load_start_pos_w, fmt.align_w),
        ("load_start_pos_h", config.load_start_pos_h, fmt.align_h),
    ):
        if value % align:
            raise _bad(config.at(name), f"{name}={value} must be a multiple of {align} for {fmt.name}")
    out_w = crop_w + config.left_padding_size + config.right_padding_size
    out_h = crop_h + config.top_padding_size + config.bottom_padding_size
    if (out_h, out_w) != (image.h, image.w):
        what = "crop_size" if config.crop else "src_image_size"
        raise _bad(
            config.where,
            f"the AIPP output is {out_h}x{out_w} (H x W: {what} {crop_h}x{crop_w} plus padding "
            f"top {config.top_padding_size}, bottom {config.bottom_padding_size}, left {config.left_padding_size}, "
            f"right {config.right_padding_size}) but the model input is {image.h}x{image.w}",
            hint="Crop/padding sizes must add up to the model input H and W.",
        )
    if image.c > fmt.channels:
        raise _bad(config.where, f"{fmt.name} gives {fmt.channels} channel(s) but the model input has {image.c}")
    if fmt.channels == 1 and config.csc_switch:
        raise _bad(config.at("csc_switch"), f"{fmt.name} has one channel; colour-space conversion needs three")
    low, high = (0, 255) if image.dtype == "uint8" else (-65504, 65504)
    if not low <= config.padding_value <= high:
        raise _bad(
            config.at("padding_value"), f"padding_value={config.padding_value:g} is out of range [{low}, {high}]"
        )
    return resolved


def insert_aipp(
    model: ir.Model,
    configs: Sequence[AippConfig],
    formats: Mapping[str, AippFormat],
    inputs: Sequence[TensorSpec],
    layout: str,
) -> list[TensorSpec]:
    """Inserts the AIPP ops of every block; returns the new input specs (uint8 NHWC, with ``aipp`` info)."""
    if layout not in ("NCHW", "NHWC"):
        raise OpenATCError(
            "E10052",
            f"AIPP needs --input_format NCHW or NHWC, got {layout}",
            hint="Give --input_format=NCHW (or NHWC for channels-last models).",
        )
    graph = model.graph
    names = [v.name or "" for v in graph.inputs]
    specs = list(inputs)
    first = next(iter(graph), None)
    groups: dict[str, list[AippConfig]] = {}
    for config in configs:
        groups.setdefault(_input_name(config, names), []).append(config)
    for name, group in groups.items():
        index = names.index(name)
        old = graph.inputs[index]
        image = _model_image(old, layout, group[0])
        edges = _edges(graph, old, group)
        raw: ir.Value | None = None
        nodes: list[ir.Node] = []
        extra: list[ir.Value] = []
        resolved: list[AippConfig] = []
        for k, config in enumerate(group):
            if config.mode == "static":
                fmt = _format(formats, config)
                config = resolve_static(config, fmt, image)
                raw, out, chain, _ = _build_static(name, config, fmt, image, raw, suffix=f"e{k}" if edges else "")
            else:
                from openatc.aipp.dynamic import build_dynamic

                raw, out, chain, extra = build_dynamic(name, config, formats, image)
            resolved.append(config)
            nodes += chain
            if edges:
                node, slot = edges[config.input_edge_idx or 0]
                node.replace_input_with(slot, out)
                out.name = f"{name}__aipp_edge{config.input_edge_idx}"
            else:
                old.replace_all_uses_with(out)
                out.name = f"{name}__aipp"
        assert raw is not None
        old.name = f"{name}__before_aipp"
        graph.inputs[index] = raw
        graph.inputs.extend(extra)
        if first is None:
            graph.extend(nodes)
        else:
            graph.insert_before(first, nodes)
        config = resolved[0]
        info: dict[str, Any] = {"mode": config.mode, "config": config.to_json(), "model_input": image.to_json()}
        if edges:
            info["edges"] = [
                {
                    "input_edge_idx": c.input_edge_idx,
                    "consumer": edges[c.input_edge_idx or 0][0].name,
                    "config": c.to_json(),
                }
                for c in sorted(resolved, key=lambda c: c.input_edge_idx or 0)
            ]
        if config.mode == "static":
            info["input_format_code"] = _format(formats, config).code
        else:
            info["params_input"] = extra[0].name
        raw.metadata_props["openatc.aipp"] = json.dumps(info, sort_keys=True)  # read by graph.value_spec
        while len(specs) <= index:  # callers outside the pipeline may pass no specs
            specs.append(TensorSpec(names[len(specs)], "unknown", ()))
        specs[index] = TensorSpec(name, "uint8", tuple(raw.shape or ()), "NHWC", aipp=info)
        specs.extend(TensorSpec(v.name or "", "float32", tuple(v.shape or ()), "ND") for v in extra)
        logger.info("AIPP (%s) inserted before input '%s': %d nodes", config.mode, name, len(nodes))
    return specs


def _edges(graph: ir.Graph, value: ir.Value, group: Sequence[AippConfig]) -> list[tuple[ir.Node, int]]:
    """The consumer edges ``(node, input slot)`` of ``value`` in graph order when the blocks name
    ``input_edge_idx`` (every edge must get a block: spec 2.2), else ``[]``."""
    if group[0].input_edge_idx is None:
        return []
    where = group[0].at("input_edge_idx")
    if group[0].mode == "dynamic":
        raise OpenATCError(
            "E10055",
            f"{where}: input_edge_idx with dynamic AIPP is not supported yet",
            hint="Use static AIPP for per-edge pre-processing, or remove input_edge_idx.",
        )
    order = {node: i for i, node in enumerate(graph)}
    edges = sorted(((u.node, u.idx) for u in value.uses() if u.node in order), key=lambda e: (order[e[0]], e[1]))
    described = ", ".join(f"{i}: {n.name or n.op_type} input {slot}" for i, (n, slot) in enumerate(edges))
    if value in graph.outputs or any(u.node not in order for u in value.uses()):
        raise _bad(
            where,
            f"input '{value.name}' is also a graph output or read inside a subgraph; input_edge_idx needs "
            "consumers in the main graph only",
        )
    for config in group:
        if (config.input_edge_idx or 0) >= len(edges):
            raise _bad(
                config.at("input_edge_idx"),
                f"input_edge_idx={config.input_edge_idx} but input '{value.name}' has {len(edges)} consumer edge(s)"
                f" ({described})",
            )
    if len(group) != len(edges):
        missing = sorted(set(range(len(edges))) - {c.input_edge_idx for c in group})
        raise _bad(
            where,
            f"input '{value.name}' feeds {len(edges)} edges ({described}) but AIPP covers only "
            f"{len(group)}; edges without AIPP: {missing}",
            hint="Every consumer of an AIPP input gets AIPP: add an aipp_op block (input_edge_idx) for each edge.",
        )
    return edges


def _format(formats: Mapping[str, AippFormat], config: AippConfig) -> AippFormat:
    fmt = formats.get(config.input_format)
    if fmt is None:
        raise OpenATCError(
            "E10052",
            f"AIPP configuration is invalid: {config.at('input_format')}: input_format {config.input_format} "
            f"is not supported: no AIPP-format plugin provides it; supported: {', '.join(sorted(formats))}",
            hint="Use one of the supported formats, or install a plugin that provides this one.",
        )
    return fmt


def _build_static(
    name: str,
    config: AippConfig,
    fmt: AippFormat,
    image: ModelImage,
    raw: ir.Value | None = None,
    suffix: str = "",
) -> tuple[ir.Value, ir.Value, list[ir.Node], list[ir.Value]]:
    """The ops of one static block: decode (NHWC) then, channel-first, swap, CSC, normalization, padding.

    Per-channel work runs on [N, C, H, W] so that biases and scales broadcast over whole planes
    (ONNX Runtime's broadcasting over an innermost axis of 3 is an order of magnitude slower).
    With CSC on, swaps, CSC and the channel selection are one affine map in float32 followed by
    QuantizeLinear (:func:`csc_affine`), exact whenever :func:`float_exact` proves it; otherwise
    the int32 fixed-point ops run.
    """
    h, w = config.src_image_size_h, config.src_image_size_w
    if raw is None:  # ``raw``: the image input another block (input_edge_idx) already made
        shape = ir.Shape([image.n, *fmt.raw_shape(h, w)])
        raw = ir.Value(name=name, shape=shape, type=ir.TensorType(ir.DataType.UINT8))
    b = AippBuilder(f"aipp/{name}" + (f"/{suffix}" if suffix else ""), image.n, h, w)
    x, cut = _crop_raw(b, raw, config, fmt)
    affine = None
    if config.csc_switch:
        affine = csc_affine(config, fmt, image.c)
    elif fmt.semi_planar is not None:  # no CSC: the identity map still decodes in one ConvTranspose
        identity = replace(config, matrix=_IDENTITY, input_bias=(0, 0, 0), output_bias=(0, 0, 0))
        affine = csc_affine(identity, fmt, image.c)
    if affine is not None and not float_exact(*affine):
        logger.info("AIPP CSC of '%s': matrix too large for exact float32 sums, int32 fixed point used", name)
        affine = None
    if affine is not None and fmt.semi_planar is not None:
        x = _semi_planar_csc(b, x, fmt.semi_planar, *affine)
        if cut is not None:
            x = b.op("Slice", x, b.dims(cut[0], cut[1]), b.dims(cut[2], cut[3]), b.dims(2, 3))
    else:
        x = fmt.build(b, x)
        if cut is not None:  # crop in pixels: what the raw crop could not do, or all of it
            x = b.op("Slice", x, b.dims(cut[0], cut[1]), b.dims(cut[2], cut[3]), b.dims(1, 2))
        x = b.op("Transpose", x, perm=[0, 3, 1, 2])
        if affine is not None:
            x = _conv_csc(b, x, *affine)
        else:
            x = swap_channels(b, x, fmt.channels, fmt.color, config.ax_swap_switch, config.rbuv_swap_switch)
            if config.csc_switch:
                x = b.op("Cast", x, to=ir.DataType.INT32)
                x = csc(b, x, fmt.channels, fmt.color, config.matrix, config.input_bias, config.output_bias)
                x = b.op("Cast", x, to=ir.DataType.UINT8)
            if image.c < fmt.channels:
                x = b.op("Slice", x, b.dims(0), b.dims(image.c), b.dims(1))
    nhwc = image.layout == "NHWC"
    if nhwc:  # the model's layout on the uint8 pixels (a quarter of the bytes of float32)
        x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    x = _normalize(b, x, config, image, axis=3 if nhwc else 1)
    if config.padding:
        top, left = config.top_padding_size, config.left_padding_size
        bottom, right = config.bottom_padding_size, config.right_padding_size
        pads = [0, top, left, 0, 0, bottom, right, 0] if nhwc else [0, 0, top, left, 0, 0, bottom, right]
        pad_value = np.array(config.padding_value, dtype=np.uint8 if image.dtype == "uint8" else np.float32)
        x = b.op("Pad", x, b.dims(*pads), b.const(pad_value))
    return raw, _to_model(b, x, image), b.nodes, []


#: Bound on the sum of |terms| of one CSC output, in units of the integer sum S (8 fractional
#: bits): below it every partial sum of S / 256 - 127.5 / 256 is a multiple of 2^-9 below 2^14
#: in magnitude, which float32 (24-bit significand) holds exactly, in any summation order.
FLOAT_EXACT_LIMIT = 1 << 22
_IDENTITY = ((256, 0, 0), (0, 256, 0), (0, 0, 256))


def csc_affine(config: AippConfig, fmt: AippFormat, out_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Swaps, CSC and channel selection as one integer map of the decoded channels (byte order).

    Returns ``(weight [out_channels, fmt.channels], bias [out_channels])`` (int64) such that the
    AIPP pixel of output channel k is ``clip(floor((weight[k] @ x + bias[k]) / 256), 0, 255)``:
    rows 0..2 are the matrix rows with the swap folded into the columns and the biases folded
    in (YUV: ``-m @ input_bias``; RGB: ``256 * output_bias``, exact since adding a multiple of
    256 commutes with the floor); row 3 (the A/X channel) copies its input (weight 256).
    """
    perm = list(range(fmt.channels))
    if fmt.channels == 4 and config.ax_swap_switch:
        perm = [1, 2, 3, 0]
    if fmt.channels >= 3 and config.rbuv_swap_switch:
        i, j = (1, 2) if fmt.color == "yuv" else (0, 2)
        perm[i], perm[j] = perm[j], perm[i]
    matrix = np.array(config.matrix, dtype=np.int64)
    weight = np.zeros((out_channels, fmt.channels), dtype=np.int64)
    bias = np.zeros(out_channels, dtype=np.int64)
    for k in range(out_channels):
        if k == 3:
            weight[k, perm[3]] = 256
            continue
        for j in range(3):
            weight[k, perm[j]] += matrix[k, j]
        if fmt.color == "yuv":
            bias[k] = -int(matrix[k] @ np.array(config.input_bias, dtype=np.int64))
        else:
            bias[k] = 256 * int(config.output_bias[k])
    return weight, bias


def float_exact(weight: np.ndarray, bias: np.ndarray) -> bool:
    """Whether the float32 CSC is exact for every uint8 input (see :data:`FLOAT_EXACT_LIMIT`)."""
    worst = np.abs(weight).sum(axis=1) * 255 + np.abs(bias) + 128
    return bool((worst < FLOAT_EXACT_LIMIT).all())


def _float_params(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of t = (S - 127.5) / 256: QuantizeLinear(t) rounds to floor(S / 256) and clamps.

    ``S`` is an integer, so ``(S - 127.5) / 256`` is never a half-integer: round-half-to-even gives
    ``floor(S / 256)`` without ties; QuantizeLinear to uint8 then saturates to [0, 255].
    """
    return (weight / 256).astype(np.float32), ((bias - 127.5) / 256).astype(np.float32)


def _fp32(value: ir.Value, b: AippBuilder) -> ir.Value:
    """Marks the node making ``value`` as FP32 for the precision step (its exactness needs float32)."""
    b.nodes[-1].metadata_props["openatc.keep_fp32"] = "aipp csc"
    return value


def _quantize(b: AippBuilder, t: ir.Value) -> ir.Value:
    return b.op("QuantizeLinear", t, b.const(np.float32(1.0)), b.const(np.uint8(0)))


def _conv_csc(b: AippBuilder, x: ir.Value, weight: np.ndarray, bias: np.ndarray) -> ir.Value:
    """uint8 [N, C, H, W] -> uint8 [N, C', H, W]: a 1x1 Conv in float32, then QuantizeLinear."""
    w, c = _float_params(weight, bias)
    x = b.op("Cast", x, to=ir.DataType.FLOAT)
    t = _fp32(b.op("Conv", x, b.const(w[:, :, None, None]), b.const(c)), b)
    return _quantize(b, t)


def _semi_planar_csc(
    b: AippBuilder, raw: ir.Value, block: tuple[int, int], weight: np.ndarray, bias: np.ndarray
) -> ir.Value:
    """Semi-planar bytes (Y plane, then U,V rows) -> uint8 [N, C, H, W] in one ConvTranspose.

    Each chroma sample and the ``rows x cols`` Y samples it covers become the channels of one
    low-resolution pixel ([N, rows*cols + 2, H/rows, W/cols]); a ConvTranspose with kernel and
    stride ``block`` writes every output pixel from its own Y phase and the shared U, V: decoding,
    chroma upsampling (replication) and the colour matrix together.
    """
    rows, cols = block
    n, h, w = b.batch, b.height, b.width  # h, w: ints, or runtime values (dynamic AIPP)
    hs, ws = b.div(h, rows), b.div(w, cols)
    y = b.op("Slice", raw, b.dims(0), b.dims(h), b.dims(1))
    # [N, hs, rows, ws, cols] -> [N, rows, cols, hs, ws] as two transposes that each move one axis
    # (ONNX Runtime's fast case; the 5-D permutation at once is several times slower)
    if rows > 1:
        y = b.op("Transpose", b.op("Reshape", y, b.dims(n, hs, rows, w)), perm=[0, 2, 1, 3])
    y = b.op("Transpose", b.op("Reshape", y, b.dims(n * rows, -1, cols)), perm=[0, 2, 1])
    y = b.op("Reshape", y, b.dims(n, rows * cols, hs, ws))
    uv = b.op("Slice", raw, b.dims(h), b.dims(b.add(h, hs)), b.dims(1))
    uv = b.op("Transpose", b.op("Reshape", uv, b.dims(n, hs, ws, 2)), perm=[0, 3, 1, 2])
    x = b.op("Cast", b.op("Concat", y, uv, axis=1), to=ir.DataType.FLOAT)
    w_f, c_f = _float_params(weight, bias)
    out = weight.shape[0]
    kernel = np.zeros((rows * cols + 2, out, rows, cols), dtype=np.float32)
    for a in range(rows):
        for c in range(cols):
            kernel[a * cols + c, :, a, c] = w_f[:, 0]
    kernel[rows * cols] = w_f[:, 1, None, None]
    kernel[rows * cols + 1] = w_f[:, 2, None, None]
    t = b.op("ConvTranspose", x, b.const(kernel), b.const(c_f), kernel_shape=[rows, cols], strides=[rows, cols])
    return _quantize(b, _fp32(t, b))


def _crop_raw(
    b: AippBuilder, raw: ir.Value, config: AippConfig, fmt: AippFormat
) -> tuple[ir.Value, tuple[int, int, int, int] | None]:
    """Crops the raw bytes before decoding when the format's planes allow it (decoding only the crop).

    Returns the raw value to decode (``b.height``/``b.width`` set to its size) and the pixel crop
    still to apply after decoding (top, left, bottom, right), or None.
    """
    if not config.crop:
        return raw, None
    top, left, h, w = config.load_start_pos_h, config.load_start_pos_w, config.crop_size_h, config.crop_size_w
    if not fmt.plane_rows:
        return raw, (top, left, top + h, left + w)
    h_al, w_al = -(-h // fmt.align_h) * fmt.align_h, -(-w // fmt.align_w) * fmt.align_w  # whole chroma samples
    planes, offset = [], 0
    for divisor in fmt.plane_rows:
        rows = b.dims(offset + top // divisor, left), b.dims(offset + (top + h_al) // divisor, left + w_al)
        planes.append(b.op("Slice", raw, *rows, b.dims(1, 2)))
        offset += config.src_image_size_h // divisor
    b.height, b.width = h_al, w_al
    x = planes[0] if len(planes) == 1 else b.op("Concat", *planes, axis=1)
    return x, None if (h_al, w_al) == (h, w) else (0, 0, h, w)


def swap_channels(b: AippBuilder, x: ir.Value, channels: int, color: str, ax_swap: bool, rbuv_swap: bool) -> ir.Value:
    """On [N, C, H, W]: ``ax_swap`` moves channel 0 (A/X) last; then ``rbuv_swap`` exchanges R,B or U,V."""
    perm = list(range(channels))
    if channels == 4 and ax_swap:
        perm = [1, 2, 3, 0]
    if channels >= 3 and rbuv_swap:
        i, j = (1, 2) if color == "yuv" else (0, 2)
        perm[i], perm[j] = perm[j], perm[i]
    if perm == list(range(channels)):
        return x
    return b.op("Gather", x, b.const(np.array(perm, dtype=np.int64)), axis=1)


def csc(
    b: AippBuilder,
    x: ir.Value,
    channels: int,
    color: str,
    matrix: Sequence[Sequence[int]],
    input_bias: Sequence[int],
    output_bias: Sequence[int],
) -> ir.Value:
    """Colour-space conversion of channels 0..2 of int32 ``x`` [N, C, H, W]; channel 3 passes through."""
    colours = x if channels == 3 else b.op("Slice", x, b.dims(0), b.dims(3), b.dims(1))
    if color == "yuv":
        colours = b.op("Sub", colours, b.const(np.array(input_bias, dtype=np.int32).reshape(1, 3, 1, 1)))
    flat = b.op("Reshape", colours, b.dims(b.batch, 3, -1))
    y = b.op("MatMul", b.const(np.array(matrix, dtype=np.int32)), flat)
    y = b.op("Div", b.op("Add", y, b.const(np.int32(_OFFSET))), b.const(np.int32(256)))
    y = b.op("Sub", y, b.const(np.int32(_OFFSET // 256)))
    if color == "rgb":
        y = b.op("Add", y, b.const(np.array(output_bias, dtype=np.int32).reshape(1, 3, 1)))
    y = b.op("Clip", y, b.const(np.int32(0)), b.const(np.int32(255)))
    y = b.op("Reshape", y, b.op("Shape", colours))
    if channels == 4:
        y = b.op("Concat", y, b.op("Slice", x, b.dims(3), b.dims(4), b.dims(1)), axis=1)
    return y


def _normalize(b: AippBuilder, x: ir.Value, config: AippConfig, image: ModelImage, axis: int = 1) -> ir.Value:
    """uint8 pixels (channels on ``axis``) -> ``(x - mean - min) * var_reci`` in float32; a uint8
    model input gets the pixels.

    One DequantizeLinear per channel computes ``(x - zero_point) * var_reci`` with the integer
    part of ``mean + min`` as the zero point; an Add subtracts ``fraction * var_reci`` when the
    subtrahend has a fraction (or exceeds 255).
    """
    if image.dtype == "uint8":  # uint8 -> uint8: ATC's normalization has no effect
        return x
    c = image.c
    sub = np.array(config.mean_chn[:c], np.float64) + np.array(config.min_chn[:c], np.float64)
    mul = np.array(config.var_reci_chn[:c], np.float32)
    zero = np.clip(np.floor(sub), 0, 255)
    rest = sub - zero
    x = b.op("DequantizeLinear", x, b.const(mul), b.const(zero.astype(np.uint8)), axis=axis)
    if rest.any():
        shape = [1, 1, 1, 1]
        shape[axis] = c
        x = b.op("Add", x, b.const((-rest * mul.astype(np.float64)).astype(np.float32).reshape(shape)))
    return x


def _to_model(b: AippBuilder, x: ir.Value, image: ModelImage) -> ir.Value:
    """The model input's dtype (the layout is already the model's)."""
    if image.dtype in ("float16", "float64"):
        x = b.op("Cast", x, to=ir.DataType.from_numpy(np.dtype(image.dtype)))
    return x
