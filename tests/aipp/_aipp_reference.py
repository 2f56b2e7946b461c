"""A numpy reference of ATC's AIPP, written from the spec (../shared/spec/atc-reference.md section 2).

It shares no code with openatc.aipp: raw layouts from section 2.7 and the format table of
docs/aipp.md, order from 2.3 (swap, crop, CSC, normalization, padding), CSC formulas from 2.4
with the documented choices (``>> 8`` as an arithmetic shift, i.e. floor; clamp to [0, 255]),
normalization from 2.5. Everything is computed in int64 / float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

YUV_FORMATS = {"YUV420SP_U8", "YUV422SP_U8", "YUYV_U8", "YUV400_U8", "AYUV444_U8"}
FOUR_CHANNELS = {"XRGB8888_U8", "ARGB8888_U8", "AYUV444_U8"}


@dataclass
class Aipp:
    """The fields of one aipp_op block (ATC's names), with explicit values."""

    input_format: str
    src_w: int
    src_h: int
    rbuv_swap: bool = False
    ax_swap: bool = False
    crop: tuple[int, int, int, int] | None = None  # start_w, start_h, size_w, size_h
    matrix: list[list[int]] | None = None  # csc on when given
    input_bias: tuple[int, int, int] = (16, 128, 128)
    output_bias: tuple[int, int, int] = (16, 128, 128)
    mean: tuple[int, ...] = (0, 0, 0, 0)
    min: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    var_reci: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    resize: tuple[int, int] | None = None  # output w, h (dynamic AIPP only)
    padding: tuple[int, int, int, int] | None = None  # top, bottom, left, right
    padding_value: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def config_text(self, model_dtype_is_float: bool = True) -> str:
        """The aipp_op block for these fields, in ATC's text format."""
        lines = ["aipp_op {", "  aipp_mode : static", f"  input_format : {self.input_format}"]
        lines += [f"  src_image_size_w : {self.src_w}", f"  src_image_size_h : {self.src_h}"]
        lines += [
            f"  rbuv_swap_switch : {str(self.rbuv_swap).lower()}",
            f"  ax_swap_switch : {str(self.ax_swap).lower()}",
        ]
        if self.crop:
            sw, sh, cw, ch = self.crop
            lines += ["  crop : true", f"  load_start_pos_w : {sw}", f"  load_start_pos_h : {sh}"]
            lines += [f"  crop_size_w : {cw}", f"  crop_size_h : {ch}"]
        if self.matrix is not None:
            lines.append("  csc_switch : true")
            lines += [f"  matrix_r{r}c{c} : {self.matrix[r][c]}" for r in range(3) for c in range(3)]
            lines += [f"  input_bias_{i} : {v}" for i, v in enumerate(self.input_bias)]
            lines += [f"  output_bias_{i} : {v}" for i, v in enumerate(self.output_bias)]
        for i in range(4):
            lines += [f"  mean_chn_{i} : {self.mean[i]}", f"  min_chn_{i} : {self.min[i]}"]
            lines.append(f"  var_reci_chn_{i} : {self.var_reci[i]}")
        if self.padding:
            t, b, left, r = self.padding
            lines += ["  padding : true", f"  top_padding_size : {t}", f"  bottom_padding_size : {b}"]
            lines += [f"  left_padding_size : {left}", f"  right_padding_size : {r}"]
            lines.append(f"  padding_value : {self.padding_value}")
        lines += [f"  {k} : {v}" for k, v in self.extra.items()]
        return "\n".join([*lines, "}"]) + "\n"


def raw_shape(fmt: str, h: int, w: int) -> tuple[int, int, int]:
    """NHWC dims of one raw image (without N)."""
    return {
        "YUV420SP_U8": (h * 3 // 2, w, 1),
        "YUV422SP_U8": (h * 2, w, 1),
        "YUYV_U8": (h, w, 2),
        "YUV400_U8": (h, w, 1),
        "RGB888_U8": (h, w, 3),
    }.get(fmt, (h, w, 4))


def unpack(fmt: str, raw: np.ndarray, h: int, w: int) -> np.ndarray:
    """Raw bytes [N, ...] -> pixels [N, H, W, C] (int64) in byte order; chroma replicated."""
    raw = raw.astype(np.int64)
    if fmt in ("YUV420SP_U8", "YUV422SP_U8"):
        y = raw[:, :h, :, 0]
        rows = h // 2 if fmt == "YUV420SP_U8" else h
        uv = raw[:, h : h + rows, :, 0].reshape(raw.shape[0], rows, w // 2, 2)
        uv = np.repeat(np.repeat(uv, h // rows, axis=1), 2, axis=2)
        return np.concatenate([y[..., None], uv], axis=-1)
    if fmt == "YUYV_U8":
        y = raw[..., 0]
        uv = raw[..., 1].reshape(raw.shape[0], h, w // 2, 2)  # U at even pixels, V at odd ones
        return np.concatenate([y[..., None], np.repeat(uv, 2, axis=2)], axis=-1)
    return raw


def reference(cfg: Aipp, raw: np.ndarray, *, channels: int, dtype: str, layout: str) -> np.ndarray:
    """The model input AIPP produces from ``raw`` (N images)."""
    x = unpack(cfg.input_format, raw, cfg.src_h, cfg.src_w)
    k = x.shape[-1]
    yuv = cfg.input_format in YUV_FORMATS
    # 1. channel swap: A/X from the front to the back, then R<->B (RGB) or U<->V (YUV)
    if k == 4 and cfg.ax_swap:
        x = np.concatenate([x[..., 1:], x[..., :1]], axis=-1)
    if k >= 3 and cfg.rbuv_swap:
        i, j = (1, 2) if yuv else (0, 2)
        x = x.copy()
        x[..., [i, j]] = x[..., [j, i]]
    # 2. crop
    if cfg.crop:
        sw, sh, cw, ch = cfg.crop
        x = x[:, sh : sh + ch, sw : sw + cw, :]
    # 2b. resize (dynamic AIPP's scf): bilinear, half-pixel centres, rounded half to even
    if cfg.resize:
        x = bilinear(x, cfg.resize[1], cfg.resize[0])
    # 3. CSC, 8 fractional bits
    if cfg.matrix is not None:
        m = np.array(cfg.matrix, dtype=np.int64)
        c3 = x[..., :3]
        if yuv:
            c3 = c3 - np.array(cfg.input_bias, dtype=np.int64)
            out = np.einsum("kj,nhwj->nhwk", m, c3) >> 8
        else:
            out = (np.einsum("kj,nhwj->nhwk", m, c3) >> 8) + np.array(cfg.output_bias, dtype=np.int64)
        out = np.clip(out, 0, 255)
        x = np.concatenate([out, x[..., 3:]], axis=-1)
    x = x[..., :channels]
    # 4. normalization (no effect for uint8 output)
    if dtype == "uint8":
        y = x.astype(np.float64)
    else:
        mean = np.array(cfg.mean[:channels], np.float64)
        mn = np.array(cfg.min[:channels], np.float64)
        var = np.array(cfg.var_reci[:channels], np.float64)
        y = (x - mean - mn) * var
    # 5. padding
    if cfg.padding:
        t, b, left, r = cfg.padding
        y = np.pad(y, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=cfg.padding_value)
    if layout == "NCHW":
        y = y.transpose(0, 3, 1, 2)
    return y.astype(dtype)


def bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """[N, H, W, C] integers -> [N, out_h, out_w, C]: OpenCV's INTER_LINEAR geometry (sample centres
    at i + 0.5, source coordinate clamped to the image), rounded half to even (int64)."""

    def taps(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(src).astype(np.int64)
        return low, np.minimum(low + 1, size - 1), src - low

    y0, y1, fy = taps(out_h, x.shape[1])
    x0, x1, fx = taps(out_w, x.shape[2])
    v = x.astype(np.float64)
    fx = fx[None, None, :, None]
    top = v[:, y0][:, :, x0] * (1 - fx) + v[:, y0][:, :, x1] * fx
    bottom = v[:, y1][:, :, x0] * (1 - fx) + v[:, y1][:, :, x1] * fx
    fy = fy[None, :, None, None]
    return np.round(top * (1 - fy) + bottom * fy).astype(np.int64)
