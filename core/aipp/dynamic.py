"""Dynamic AIPP (``aipp_mode: dynamic``): one graph, parameters chosen per run (spec 2.11).

The compiled graph takes the raw image (uint8, NHWC, height/width/channels free; at most
``max_src_image_size`` bytes) and a parameter vector ``<input>__aipp_params`` (float32,
``PARAMS_FIXED + 8 * N`` values, every field exactly representable). :class:`AippParams` is the
typed object a program fills, as it would call ``aclmdlSetAIPP*``; :func:`aipp_feeds` validates it
as ATC's runtime does and packs the vector. Runtime formats are ATC's (``aclAippInputFormat``):
YUV420SP_U8, XRGB8888_U8, RGB888_U8, YUV400_U8. The graph picks the decoder with If nodes, then
runs the same steps as static AIPP; "off" switches are packed as neutral values (identity
matrix x 256, zero biases, full-image crop, zero padding).

Parameter vector layout: ``[0]`` format code, ``[1:3]`` src w, h, ``[3:7]`` channel permutation,
``[7]`` padding value, ``[8:17]`` CSC matrix (row-major), ``[17:20]`` bias subtracted before the
matrix, ``[20:23]`` bias added after it, ``[23]`` 1 when the CSC may run in float32 (the bound of
static AIPP, :func:`openatc.aipp.insert.float_exact`, holds for this matrix), else 0 (int32 ops);
then 20 values per batch image: ``[0:4]`` subtracted
(mean + min), ``[4:8]`` multipliers (var_reci), ``[8:10]`` crop start h, w, ``[10:12]`` crop end
h, w, ``[12:14]`` resize output h, w (the crop size when resize is off), ``[14:16]`` padding
top, left, ``[16:18]`` padding bottom, right, ``[18]`` resize switch, ``[19]`` reserved.

Each batch image has its own crop, resize and padding (ATC's ``batchIdx`` calls): the graph
unrolls the batch (N is fixed per gear). Resize (``scf``) is bilinear with half-pixel centres
(OpenCV's ``INTER_LINEAR``, without antialiasing), rounded half to even to integer pixels; it
runs after the crop and before the CSC (ATC documents crop -> resize -> padding, not the place
of the CSC nor the interpolation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from openatc.aipp._builder import AippBuilder
from openatc.aipp.config import DEFAULT_RGB_MATRIX, DEFAULT_YUV_MATRIX, AippConfig
from openatc.errors import OpenATCError
from openatc.types import AippFormat, TensorSpec

__all__ = [
    "DYNAMIC_FORMATS",
    "PARAMS_FIXED",
    "AippImageParams",
    "AippParams",
    "aipp_feeds",
    "build_dynamic",
    "params_from_bytes",
]

#: Runtime formats of dynamic AIPP and their aclAippInputFormat codes.
DYNAMIC_FORMATS = {"YUV420SP_U8": 1, "XRGB8888_U8": 2, "RGB888_U8": 3, "YUV400_U8": 4}
PARAMS_FIXED = 24
_PER_BATCH = 20
_OFFSET = 256 << 17


@dataclass(frozen=True)
class AippImageParams:
    """Crop, resize and padding of one batch image (``aclmdlSetAIPPCropParams``,
    ``aclmdlSetAIPPScfParams`` and ``aclmdlSetAIPPPaddingParams`` with their ``batchIdx``).

    The resize input is the crop size (or the source size without crop); its output plus the
    padding must give the model's H x W.
    """

    crop: bool = False
    load_start_pos_w: int = 0
    load_start_pos_h: int = 0
    crop_size_w: int = 0
    crop_size_h: int = 0
    resize: bool = False
    resize_output_w: int = 0
    resize_output_h: int = 0
    padding: bool = False
    top_padding_size: int = 0
    bottom_padding_size: int = 0
    left_padding_size: int = 0
    right_padding_size: int = 0


_GEOMETRY = tuple(AippImageParams.__dataclass_fields__)


@dataclass(frozen=True)
class AippParams:
    """Dynamic AIPP parameters for one model input (ATC's ``aclmdlSetAIPP*`` calls as one object).

    ``mean_chn``, ``min_chn`` and ``var_reci_chn`` take 4 values (one per channel, for every
    image of the batch) or one 4-tuple per batch image. Sizes follow the static fields of the same
    names; switches that are off ignore their fields. The crop, resize and padding fields apply
    to every batch image unless ``images`` gives one :class:`AippImageParams` per batch image.
    """

    input_format: str
    src_image_size_w: int
    src_image_size_h: int
    csc_switch: bool = False
    matrix: tuple[tuple[int, int, int], ...] | None = None  # default: ATC's matrix for the format
    input_bias: tuple[int, int, int] = (16, 128, 128)
    output_bias: tuple[int, int, int] = (16, 128, 128)
    rbuv_swap_switch: bool = False
    ax_swap_switch: bool = False
    crop: bool = False
    load_start_pos_w: int = 0
    load_start_pos_h: int = 0
    crop_size_w: int = 0
    crop_size_h: int = 0
    padding: bool = False
    top_padding_size: int = 0
    bottom_padding_size: int = 0
    left_padding_size: int = 0
    right_padding_size: int = 0
    padding_value: float = 0.0
    mean_chn: Sequence[Any] = (0, 0, 0, 0)
    min_chn: Sequence[Any] = (0.0, 0.0, 0.0, 0.0)
    var_reci_chn: Sequence[Any] = (1.0, 1.0, 1.0, 1.0)
    resize: bool = False
    resize_output_w: int = 0
    resize_output_h: int = 0
    images: Sequence[AippImageParams] = ()

    def image(self, i: int) -> AippImageParams:
        """The crop/resize/padding of batch image ``i``."""
        if self.images:
            return self.images[i]
        return AippImageParams(**{k: getattr(self, k) for k in _GEOMETRY})


_HEADER = np.dtype(
    [
        ("input_format", "u1"),
        ("csc_switch", "i1"),
        ("rbuv_swap_switch", "i1"),
        ("ax_swap_switch", "i1"),
        ("batch_num", "i1"),
        ("reserve1", "i1", 3),
        ("src_w", "<i4"),
        ("src_h", "<i4"),
        ("matrix", "<i2", 9),
        ("reserve2", "<i2", 3),
        ("output_bias", "u1", 3),
        ("input_bias", "u1", 3),
        ("reserve3", "u1", 2),
        ("reserve4", "i1", 16),
    ]
)
_BATCH = np.dtype(
    [
        ("crop_switch", "i1"),
        ("scf_switch", "i1"),
        ("padding_switch", "i1"),
        ("rotate_switch", "i1"),
        ("reserve", "i1", 4),
        ("crop", "<i4", 4),  # start w, start h, size w, size h
        ("scf", "<i4", 4),
        ("padding", "<i4", 4),  # top, bottom, left, right
        ("mean", "<i2", 4),
        ("min", "<f2", 4),
        ("var_reci", "<f2", 4),
        ("reserve1", "i1", 16),
    ]
)
_ACL_FORMATS = {code: name for name, code in DYNAMIC_FORMATS.items()}


def params_from_bytes(data: bytes | np.ndarray, name: str = "input") -> AippParams:
    """Reads ATC's packed dynamic-AIPP buffer (``ascend_dynamic_aipp_data``, spec 2.11: a 64-byte
    header, then 96 bytes per batch image) into an :class:`AippParams`.

    Each batch block gives that image's crop, resize (``scfInputSize`` must equal the crop size,
    or the source size without crop) and padding (constant only).
    """
    buffer = np.frombuffer(bytes(data), dtype=np.uint8)
    if buffer.size < _HEADER.itemsize + _BATCH.itemsize:
        raise _bad(
            name, f"the AIPP buffer has {buffer.size} bytes, at least {_HEADER.itemsize + _BATCH.itemsize} needed"
        )
    head = buffer[: _HEADER.itemsize].view(_HEADER)[0]
    count = max(int(head["batch_num"]), 1)
    size = _HEADER.itemsize + count * _BATCH.itemsize
    if buffer.size < size:
        raise _bad(name, f"the AIPP buffer has {buffer.size} bytes; batchNum={count} needs {size}")
    batches = buffer[_HEADER.itemsize : size].view(_BATCH)
    fmt = _ACL_FORMATS.get(int(head["input_format"]))
    if fmt is None:
        raise _bad(
            name, f"inputFormat={int(head['input_format'])} is not supported yet (1..4: {', '.join(DYNAMIC_FORMATS)})"
        )
    src_w, src_h = int(head["src_w"]), int(head["src_h"])
    images = []
    for i, batch in enumerate(batches):
        if int(batch["padding_switch"]) not in (0, 1):
            raise _bad(
                name,
                f"batch image {i}: paddingSwitch={int(batch['padding_switch'])}: only 0 (off) and 1 (constant) "
                "are supported",
            )
        crop, scf, pad = ([int(v) for v in batch[k]] for k in ("crop", "scf", "padding"))
        crop_on, scf_on = bool(batch["crop_switch"]), bool(batch["scf_switch"])
        if scf_on:
            expected = (crop[2], crop[3]) if crop_on else (src_w, src_h)
            if (scf[0], scf[1]) != expected:
                raise _bad(
                    name,
                    f"batch image {i}: scfInputSize {scf[0]}x{scf[1]} (w x h) must equal the "
                    f"{'crop' if crop_on else 'source'} size {expected[0]}x{expected[1]}",
                )
        images.append(
            AippImageParams(
                crop=crop_on,
                load_start_pos_w=crop[0],
                load_start_pos_h=crop[1],
                crop_size_w=crop[2],
                crop_size_h=crop[3],
                resize=scf_on,
                resize_output_w=scf[2],
                resize_output_h=scf[3],
                padding=bool(batch["padding_switch"]),
                top_padding_size=pad[0],
                bottom_padding_size=pad[1],
                left_padding_size=pad[2],
                right_padding_size=pad[3],
            )
        )
    return AippParams(
        fmt,
        src_w,
        src_h,
        csc_switch=bool(head["csc_switch"]),
        matrix=tuple(tuple(int(v) for v in head["matrix"][r * 3 : r * 3 + 3]) for r in range(3)),
        input_bias=tuple(int(v) for v in head["input_bias"]),  # type: ignore[arg-type]
        output_bias=tuple(int(v) for v in head["output_bias"]),  # type: ignore[arg-type]
        rbuv_swap_switch=bool(head["rbuv_swap_switch"]),
        ax_swap_switch=bool(head["ax_swap_switch"]),
        mean_chn=[tuple(int(v) for v in b["mean"]) for b in batches],
        min_chn=[tuple(float(v) for v in b["min"]) for b in batches],
        var_reci_chn=[tuple(float(v) for v in b["var_reci"]) for b in batches],
        images=images,
    )


def _bad(name: str, reason: str) -> OpenATCError:
    return OpenATCError("E40012", f"dynamic AIPP parameters for input '{name}': {reason}")


def _per_batch(name: str, field: str, values: Sequence[Any], n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape == (4,):
        array = np.broadcast_to(array, (n, 4))
    if array.shape != (n, 4):
        raise _bad(name, f"{field} needs 4 values or {n} x 4 (one row per batch image), got shape {array.shape}")
    return array


def _check_range(name: str, field: str, values: Any, low: float, high: float) -> None:
    for v in np.asarray(values, dtype=np.float64).ravel():
        if not low <= v <= high:
            raise _bad(name, f"{field}={v:g} is out of range [{low}, {high}]")


def pack_params(name: str, params: AippParams, info: Mapping[str, Any], image_shape: Sequence[int]) -> np.ndarray:
    """Validates ``params`` against the model and the image (spec 2.11 / S6), returns the vector."""
    model = info["model_input"]
    layout = model["format"]
    n, c, h, w = model["shape"] if layout == "NCHW" else [model["shape"][i] for i in (0, 3, 1, 2)]
    if len(image_shape) == 4:  # with --dynamic_batch_size each gear has its batch: the image's batch picks the gear
        n = int(image_shape[0])
    fmt = params.input_format
    if fmt not in DYNAMIC_FORMATS:
        raise _bad(name, f"input_format {fmt} is not supported yet by dynamic AIPP; use {', '.join(DYNAMIC_FORMATS)}")
    sw, sh = params.src_image_size_w, params.src_image_size_h
    if not (2 <= sw <= 4096 and 1 <= sh <= 4096):
        raise _bad(name, f"src_image_size {sw}x{sh} (w x h) is out of range [2, 4096] x [1, 4096]")
    even = fmt == "YUV420SP_U8"
    if even and (sw % 2 or sh % 2):
        raise _bad(name, f"YUV420SP_U8 needs even src_image_size_w/h, got {sw}x{sh} (w x h)")
    rows, cols, chans = {
        "YUV420SP_U8": (sh * 3 // 2, sw, 1),
        "XRGB8888_U8": (sh, sw, 4),
        "RGB888_U8": (sh, sw, 3),
        "YUV400_U8": (sh, sw, 1),
    }[fmt]
    if tuple(image_shape) != (n, rows, cols, chans):
        raise _bad(name, f"the image has shape {tuple(image_shape)}, {fmt} of {sw}x{sh} needs {(n, rows, cols, chans)}")
    if n * rows * cols * chans > info["config"]["max_src_image_size"]:
        raise _bad(
            name,
            f"the image has {n * rows * cols * chans} bytes, more than max_src_image_size="
            f"{info['config']['max_src_image_size']} of the model",
        )
    if params.images and len(params.images) != n:
        raise _bad(name, f"images gives {len(params.images)} crop/resize/padding entries for a batch of {n}")
    geometry = [
        _geometry(name, i if params.images else None, params.image(i), (sw, sh), (h, w), even) for i in range(n)
    ]
    channels = 1 if fmt == "YUV400_U8" else (4 if fmt == "XRGB8888_U8" else 3)
    if c > channels:
        raise _bad(name, f"{fmt} gives {channels} channel(s), the model input has {c}")
    yuv = fmt in ("YUV420SP_U8", "YUV400_U8")
    perm = [1, 2, 3, 0] if channels == 4 and params.ax_swap_switch else [0, 1, 2, 3]
    if channels >= 3 and params.rbuv_swap_switch:
        i, j = (1, 2) if yuv else (0, 2)
        perm[i], perm[j] = perm[j], perm[i]
    matrix = np.eye(3, dtype=np.int64) * 256
    pre = post = (0, 0, 0)
    if params.csc_switch:
        if fmt == "YUV400_U8":
            raise _bad(name, "YUV400_U8 has one channel; csc_switch needs three")
        matrix = np.array(params.matrix or (DEFAULT_YUV_MATRIX if yuv else DEFAULT_RGB_MATRIX), dtype=np.int64)
        if matrix.shape != (3, 3):
            raise _bad(name, f"matrix needs 3 x 3 values, got shape {matrix.shape}")
        _check_range(name, "matrix", matrix, -32677, 32676)
        _check_range(name, "input_bias", params.input_bias, 0, 255)
        _check_range(name, "output_bias", params.output_bias, 0, 255)
        pre, post = (params.input_bias, (0, 0, 0)) if yuv else ((0, 0, 0), params.output_bias)
    mean = _per_batch(name, "mean_chn", params.mean_chn, n)
    low = _per_batch(name, "min_chn", params.min_chn, n)
    var = _per_batch(name, "var_reci_chn", params.var_reci_chn, n)
    _check_range(name, "mean_chn", mean, 0, 255)
    _check_range(name, "min_chn", low, 0, 255)
    _check_range(name, "var_reci_chn", var, -65504, 65504)
    limit = (0, 255) if model["dtype"] == "uint8" else (-65504, 65504)
    _check_range(name, "padding_value", params.padding_value, *limit)
    from openatc.aipp.insert import float_exact

    exact = float_exact(matrix, 256 * np.array(post, np.int64) - matrix @ np.array(pre, np.int64))
    head = [DYNAMIC_FORMATS[fmt], sw, sh, *perm, params.padding_value, *matrix.ravel(), *pre, *post, int(exact)]
    batch = np.concatenate([mean + low, var, np.array(geometry, np.float64)], axis=1).ravel()
    return np.concatenate([np.array(head, np.float64), batch]).astype(np.float32)


def _geometry(
    name: str, index: int | None, g: AippImageParams, src: tuple[int, int], model: tuple[int, int], even: bool
) -> list[int]:
    """Checks one image's crop, resize and padding (spec 2.6, ATC's runtime); returns its 12 vector values."""
    who = "" if index is None else f"batch image {index}: "
    (sw, sh), (h, w) = src, model
    if even and g.crop and (g.load_start_pos_w % 2 or g.load_start_pos_h % 2):
        raise _bad(name, f"{who}YUV420SP_U8 needs even load_start_pos_w/h")
    start_h, start_w = (g.load_start_pos_h, g.load_start_pos_w) if g.crop else (0, 0)
    size_h, size_w = (g.crop_size_h, g.crop_size_w) if g.crop else (sh, sw)
    if g.crop and (
        start_w + size_w > sw or start_h + size_h > sh or size_w <= 0 or size_h <= 0 or min(start_w, start_h) < 0
    ):
        raise _bad(name, f"{who}crop {size_w}x{size_h} at ({start_w}, {start_h}) does not fit the {sw}x{sh} image")
    out_h, out_w = size_h, size_w
    if g.resize:
        out_w, out_h = g.resize_output_w, g.resize_output_h
        if not (16 <= size_w <= 4096 and 16 <= size_h <= 4096):
            raise _bad(
                name, f"{who}resize input {size_w}x{size_h} (w x h, the crop or source size) is out of range [16, 4096]"
            )
        if not (16 <= out_w <= 1920 and 16 <= out_h <= 4096):
            raise _bad(name, f"{who}resize_output {out_w}x{out_h} (w x h) is out of range [16, 1920] x [16, 4096]")
        for axis, before, after in (("w", size_w, out_w), ("h", size_h, out_h)):
            if not (before <= 16 * after and after <= 16 * before):
                raise _bad(name, f"{who}resize ratio {after}/{before} on {axis} is out of range [1/16, 16]")
    pads = (
        (g.top_padding_size, g.left_padding_size, g.bottom_padding_size, g.right_padding_size)
        if g.padding
        else (0, 0, 0, 0)
    )
    _check_range(name, f"{who}padding sizes", pads, 0, 32)
    total_h, total_w = out_h + pads[0] + pads[2], out_w + pads[1] + pads[3]
    if (total_h, total_w) != (h, w):
        what = "crop, resize and padding" if g.resize else "crop and padding"
        raise _bad(name, f"{who}{what} give {total_h}x{total_w} (H x W), the model input is {h}x{w}")
    return [start_h, start_w, start_h + size_h, start_w + size_w, out_h, out_w, *pads, int(g.resize), 0]


def aipp_feeds(
    inputs: Sequence[TensorSpec], feeds: Mapping[str, Any], aipp: Mapping[str, AippParams] | None
) -> Mapping[str, Any]:
    """``feeds`` plus the packed parameters of every dynamic-AIPP input (E40012 when missing or wrong)."""
    dynamic = {s.name: s.aipp for s in inputs if s.aipp and s.aipp.get("mode") == "dynamic"}
    if not dynamic and not aipp:
        return feeds
    unknown = sorted(set(aipp or {}) - set(dynamic))
    if unknown:
        raise OpenATCError(
            "E40012",
            f"aipp= names {unknown}, which are not dynamic-AIPP inputs; "
            f"dynamic-AIPP inputs: {sorted(dynamic) or 'none'}",
        )
    result = dict(feeds)
    for name, info in dynamic.items():
        params_name = info["params_input"]
        if params_name in feeds and not (aipp and name in aipp):
            continue  # packed by the caller
        if not aipp or name not in aipp:
            raise OpenATCError(
                "E40012",
                f"input '{name}' uses dynamic AIPP and needs its parameters",
                hint=f"Pass aipp={{'{name}': openatc.AippParams(input_format=..., src_image_size_w=..., ...)}}.",
            )
        image = feeds.get(name)
        if not isinstance(image, np.ndarray):
            continue  # the Session reports the missing image
        params = aipp[name]
        if isinstance(params, (bytes, bytearray, memoryview, np.ndarray)):  # ATC's packed buffer
            params = params_from_bytes(params, name)
        result[params_name] = pack_params(name, params, info, image.shape)
    return result


def build_dynamic(
    name: str, config: AippConfig, formats: Mapping[str, AippFormat], image: Any
) -> tuple[ir.Value, ir.Value, list[ir.Node], list[ir.Value]]:
    """The raw-image and parameter inputs and the nodes that turn them into the model input."""
    raw = ir.Value(
        name=name,
        shape=ir.Shape([image.n, f"{name}_aipp_rows", f"{name}_aipp_cols", f"{name}_aipp_channels"]),
        type=ir.TensorType(ir.DataType.UINT8),
    )
    params = ir.Value(
        name=f"{name}__aipp_params",
        shape=ir.Shape([PARAMS_FIXED + _PER_BATCH * image.n]),
        type=ir.TensorType(ir.DataType.FLOAT),
    )
    b = AippBuilder(f"aipp/{name}", image.n, 0, 0)

    def take(start: int, end: int, to: ir.DataType | None = None) -> ir.Value:
        v = b.op("Slice", params, b.dims(start), b.dims(end), b.dims(0))
        return b.op("Cast", v, to=to) if to is not None else v

    fmt = take(0, 1, ir.DataType.INT64)
    w, h = take(1, 2, ir.DataType.INT64), take(2, 3, ir.DataType.INT64)
    x = _decode_chain(b, raw, fmt, (h, w), formats, list(DYNAMIC_FORMATS.items()))
    x = b.op("Gather", x, take(3, 7, ir.DataType.INT64), axis=1)
    matrix = b.op("Reshape", take(8, 17, ir.DataType.INT32), b.dims(3, 3))
    pre = b.op("Reshape", take(17, 20, ir.DataType.INT32), b.dims(1, 3, 1, 1))
    post = b.op("Reshape", take(20, 23, ir.DataType.INT32), b.dims(1, 3, 1))
    conv_w, conv_b = _float_csc_params(b, take(8, 17), take(17, 20), take(20, 23))
    use_float = b.op("Reshape", b.op("Greater", take(23, 24), b.const(np.array([0.5], np.float32))), b.dims())
    pad_value = b.op("Reshape", take(7, 8), b.dims())
    if image.dtype == "uint8":
        pad_value = b.op("Cast", pad_value, to=ir.DataType.UINT8)
    outs = []
    for i in range(image.n):  # each batch image: its crop, resize, CSC, normalization and padding
        base = PARAMS_FIXED + _PER_BATCH * i

        def own(start: int, end: int, to: ir.DataType | None = None, base: int = base) -> ir.Value:
            return take(base + start, base + end, to)

        xi = x if image.n == 1 else b.op("Slice", x, b.dims(i), b.dims(i + 1), b.dims(0))
        xi = b.op("Slice", xi, own(8, 10, ir.DataType.INT64), own(10, 12, ir.DataType.INT64), b.dims(2, 3))
        xi = _resize(b, xi, own(12, 14, ir.DataType.INT64), own(18, 19), i)
        xi = _csc(b, xi, (matrix, pre, post), (conv_w, conv_b), use_float, i)
        xi = b.op("Slice", xi, b.dims(0), b.dims(image.c), b.dims(1))
        if image.dtype != "uint8":
            xi = b.op("Cast", xi, to=ir.DataType.FLOAT)
            xi = b.op("Sub", xi, b.op("Reshape", own(0, image.c), b.dims(1, image.c, 1, 1)))
            xi = b.op("Mul", xi, b.op("Reshape", own(4, 4 + image.c), b.dims(1, image.c, 1, 1)))
        zero = b.const(np.zeros(2, np.int64))
        pads = b.op("Concat", zero, own(14, 16, ir.DataType.INT64), zero, own(16, 18, ir.DataType.INT64), axis=0)
        outs.append(b.op("Pad", xi, pads, pad_value))
    x = outs[0] if len(outs) == 1 else b.op("Concat", *outs, axis=0)
    x = b.op("Reshape", x, b.dims(image.n, image.c, image.h, image.w))
    if image.layout == "NHWC":
        x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    if image.dtype in ("float16", "float64"):
        x = b.op("Cast", x, to=ir.DataType.from_numpy(np.dtype(image.dtype)))
    return raw, x, b.nodes, [params]


def _resize(b: AippBuilder, x: ir.Value, size: ir.Value, switch: ir.Value, i: int) -> ir.Value:
    """uint8 [1, 4, h, w] -> int32 [1, 4, size]: bilinear (half-pixel), rounded half to even; an
    If skips it when the image's resize switch is off."""
    then_b = AippBuilder(f"{b.prefix}/resize{i}", 1, 0, 0)
    sizes = then_b.op("Concat", then_b.dims(1, 4), size, axis=0)
    y = then_b.op("Cast", x, to=ir.DataType.FLOAT)
    y = then_b.op("Resize", y, None, None, sizes, mode="linear", coordinate_transformation_mode="half_pixel")
    y = then_b.op("Round", y)
    then_b.nodes[-1].metadata_props["openatc.keep_fp32"] = "aipp resize rounding"
    y = then_b.op("Cast", y, to=ir.DataType.INT32)
    else_b = AippBuilder(f"{b.prefix}/no_resize{i}", 1, 0, 0)
    same = else_b.op("Cast", x, to=ir.DataType.INT32)
    cond = b.op("Reshape", b.op("Greater", switch, b.const(np.array([0.5], np.float32))), b.dims())
    then_graph = ir.Graph([], [y], nodes=then_b.nodes, name=f"{then_b.prefix}/then")
    else_graph = ir.Graph([], [same], nodes=else_b.nodes, name=f"{else_b.prefix}/else")
    out = b.op("If", cond, then_branch=then_graph, else_branch=else_graph)
    out.dtype = ir.DataType.INT32
    return out


def _float_csc_params(b: AippBuilder, matrix: ir.Value, pre: ir.Value, post: ir.Value) -> tuple[ir.Value, ir.Value]:
    """The 1 x 1 Conv of static AIPP's float32 CSC from the runtime matrix and biases (float32
    params, integers): weights ``[m / 256, 0; 0, 0, 0, 1]`` [4, 4, 1, 1] (channel 3 passes) and
    bias ``((256 * post - m @ pre) - 127.5) / 256``, then 127.5 / 256 below 0 for channel 3;
    every value exact in float32 (integers below 2^24 scaled by powers of two)."""
    m = b.op("Reshape", matrix, b.dims(3, 3))
    w3 = b.op("Concat", b.op("Mul", m, b.const(np.float32(1 / 256))), b.const(np.zeros((3, 1), np.float32)), axis=1)
    w = b.op("Concat", w3, b.const(np.array([[0, 0, 0, 1]], np.float32)), axis=0)
    c = b.op("Sub", b.op("Mul", post, b.const(np.float32(256))), b.op("MatMul", m, pre))
    c = b.op("Mul", b.op("Sub", c, b.const(np.float32(127.5))), b.const(np.float32(1 / 256)))
    c = b.op("Concat", c, b.const(np.array([-127.5 / 256], np.float32)), axis=0)
    return b.op("Reshape", w, b.dims(4, 4, 1, 1)), c


def _csc(
    b: AippBuilder,
    x: ir.Value,
    fixed: tuple[ir.Value, ir.Value, ir.Value],
    conv: tuple[ir.Value, ir.Value],
    use_float: ir.Value,
    i: int,
) -> ir.Value:
    """int32 [1, 4, h, w] -> uint8: CSC of channels 0..2, channel 3 kept. An If picks the float32
    Conv + QuantizeLinear (when the packed flag says it is exact) or the int32 fixed-point ops."""
    then_b = AippBuilder(f"{b.prefix}/csc_float{i}", 1, 0, 0)
    t = then_b.op("Conv", then_b.op("Cast", x, to=ir.DataType.FLOAT), *conv)
    fast = then_b.op("QuantizeLinear", t, then_b.const(np.float32(1.0)), then_b.const(np.uint8(0)))
    else_b = AippBuilder(f"{b.prefix}/csc_int{i}", 1, 0, 0)
    matrix, pre, post = fixed
    colours = else_b.op("Slice", x, else_b.dims(0), else_b.dims(3), else_b.dims(1))
    flat = else_b.op("Reshape", else_b.op("Sub", colours, pre), else_b.dims(1, 3, -1))
    y = else_b.op("MatMul", matrix, flat)
    y = else_b.op("Div", else_b.op("Add", y, else_b.const(np.int32(_OFFSET))), else_b.const(np.int32(256)))
    y = else_b.op("Add", else_b.op("Sub", y, else_b.const(np.int32(_OFFSET // 256))), post)
    y = else_b.op("Clip", y, else_b.const(np.int32(0)), else_b.const(np.int32(255)))
    y = else_b.op("Reshape", y, else_b.op("Shape", colours))
    y = else_b.op("Concat", y, else_b.op("Slice", x, else_b.dims(3), else_b.dims(4), else_b.dims(1)), axis=1)
    slow = else_b.op("Cast", y, to=ir.DataType.UINT8)
    then_graph = ir.Graph([], [fast], nodes=then_b.nodes, name=f"{then_b.prefix}/then")
    else_graph = ir.Graph([], [slow], nodes=else_b.nodes, name=f"{else_b.prefix}/else")
    out = b.op("If", use_float, then_branch=then_graph, else_branch=else_graph)
    out.dtype = ir.DataType.UINT8
    return out


def _decode_chain(
    b: AippBuilder,
    raw: ir.Value,
    fmt: ir.Value,
    sizes: tuple[ir.Value, ir.Value],
    formats: Mapping[str, AippFormat],
    remaining: list[tuple[str, int]],
) -> ir.Value:
    """Nested If nodes that decode with the format whose code equals ``fmt``: uint8 [N, 4, H, W]."""
    (fmt_name, code), rest = remaining[0], remaining[1:]
    then_b = AippBuilder(f"{b.prefix}/{fmt_name}", b.batch, *sizes)
    then_out = _decode(then_b, raw, formats, fmt_name)
    if not rest:
        b.nodes.extend(then_b.nodes)
        return then_out
    else_b = AippBuilder(f"{b.prefix}/not_{fmt_name}", b.batch, *sizes)
    else_out = _decode_chain(else_b, raw, fmt, sizes, formats, rest)
    cond = b.op("Reshape", b.op("Equal", fmt, b.const(np.array([code], np.int64))), b.dims())
    then_graph = ir.Graph([], [then_out], nodes=then_b.nodes, name=f"{then_b.prefix}/then")
    else_graph = ir.Graph([], [else_out], nodes=else_b.nodes, name=f"{else_b.prefix}/else")
    out = b.op("If", cond, then_branch=then_graph, else_branch=else_graph)
    out.dtype = ir.DataType.UINT8
    return out


def _decode(b: AippBuilder, raw: ir.Value, formats: Mapping[str, AippFormat], fmt_name: str) -> ir.Value:
    record = formats.get(fmt_name)
    if record is None:
        raise OpenATCError(
            "E10052", f"dynamic AIPP needs the AIPP-format plugin for {fmt_name}, which is not installed"
        )
    # channel-first (per-channel ops broadcast over planes), then zero channels up to 4; uint8
    # until the crop (the int32 cast of the CSC waits for it)
    if record.semi_planar is not None:  # one exact ConvTranspose with the identity map (static AIPP's)
        from openatc.aipp.insert import _semi_planar_csc

        identity = np.eye(4, 3, dtype=np.int64) * 256  # a fourth, zero channel
        return _semi_planar_csc(b, raw, record.semi_planar, identity, np.zeros(4, np.int64))
    x = b.op("Transpose", record.build(b, raw), perm=[0, 3, 1, 2])
    if record.channels < 4:
        x = b.op("Pad", x, b.dims(0, 0, 0, 0, 0, 4 - record.channels, 0, 0))
    x.dtype = ir.DataType.UINT8
    return x


def load_aipp_params(text: str) -> dict[str, AippParams]:
    """``openatc run --aipp "x:params.json;y:other.json"``: each JSON object holds AippParams fields
    (``images``: a list of objects with AippImageParams fields, one per batch image)."""
    import json
    from dataclasses import fields
    from pathlib import Path

    known = {f.name for f in fields(AippParams)}
    result: dict[str, AippParams] = {}
    for item in (part.strip() for part in text.split(";") if part.strip()):
        name, sep, path = item.rpartition(":")
        if not sep or not name:
            raise OpenATCError(
                "E10001", f"--aipp entry '{item}' is not name:file.json", hint='e.g. --aipp "x:aipp.json"'
            )
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OpenATCError("E10001", f"--aipp {name}: cannot read JSON from '{path}': {exc}") from None
        unknown = sorted(set(data) - known) if isinstance(data, dict) else ["(not an object)"]
        if unknown:
            raise OpenATCError(
                "E10001",
                f"--aipp {name}: '{path}' has unknown fields {unknown}",
                hint=f"Fields: {', '.join(sorted(known))}.",
            )
        try:
            images = data.get("images") or []
            if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
                raise TypeError("'images' must be a list of objects (one per batch image)")
            for image in images:
                wrong = sorted(set(image) - set(_GEOMETRY))
                if wrong:
                    raise TypeError(f"images: unknown fields {wrong}; fields: {', '.join(_GEOMETRY)}")
            result[name] = AippParams(**{**data, "images": [AippImageParams(**i) for i in images]})
        except TypeError as exc:
            raise OpenATCError("E10001", f"--aipp {name}: '{path}': {exc}") from None
    return result


def image_shapes(inputs: Sequence[TensorSpec], aipp: Mapping[str, AippParams]) -> dict[str, tuple[int, ...]]:
    """The raw image shape each dynamic-AIPP input takes with its parameters (for generated inputs)."""
    shapes = {}
    for spec in inputs:
        params = aipp.get(spec.name)
        if params is None or not spec.aipp or spec.aipp.get("mode") != "dynamic":
            continue
        n = spec.shape[0] if isinstance(spec.shape[0], int) else spec.aipp["model_input"]["shape"][0]
        h, w = params.src_image_size_h, params.src_image_size_w
        rows, c = {"YUV420SP_U8": (h * 3 // 2, 1), "XRGB8888_U8": (h, 4), "YUV400_U8": (h, 1)}.get(
            params.input_format, (h, 3)
        )
        shapes[spec.name] = (int(n), rows, w, c)
    return shapes
