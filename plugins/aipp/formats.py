"""Decoders of the raw AIPP input formats (see :class:`openatc.types.AippFormat`).

Raw image layouts (one image; the model input adds N in front, NHWC):

| format | dims | bytes |
|---|---|---|
| YUV420SP_U8 | (H*3/2, W, 1) | Y plane, then H/2 rows of interleaved U,V (NV12; NV21 = V,U with rbuv_swap) |
| YUV422SP_U8 | (H*2, W, 1) | Y plane, then H rows of interleaved U,V at half width |
| YUYV_U8 | (H, W, 2) | Y0 U0 Y1 V0 per pixel pair |
| YUV400_U8 | (H, W, 1) | Y only |
| RGB888_U8 | (H, W, 3) | R G B (B G R with rbuv_swap) |
| XRGB8888_U8, ARGB8888_U8 | (H, W, 4) | R G B X; X R G B with ax_swap (B/R order by rbuv_swap) |
| AYUV444_U8 | (H, W, 4) | Y U V A; A Y U V with ax_swap |
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openatc.types import AippFormat

__all__ = ["FORMATS"]


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _upsample(b: Any, chroma: Any, rows: int, cols: int) -> Any:
    """[N, h', w', 2] -> [N, h'*rows, w'*cols, 2] by replicating each sample (rows, cols in {1, 2})."""
    n, h, w = b.batch, b.height, b.width
    hs, ws = b.div(h, rows), b.div(w, cols)
    grid = b.op("Reshape", chroma, b.dims(n, hs, 1, ws, 1, 2))
    grid = b.op("Expand", grid, b.dims(n, hs, rows, ws, cols, 2))
    return b.op("Reshape", grid, b.dims(n, h, w, 2))


def _rows(b: Any, image: Any, start: Any, end: Any) -> Any:
    return b.op("Slice", image, b.dims(start), b.dims(end), b.const(_i64(1)))


def _semi_planar(b: Any, image: Any, row_step: int) -> Any:
    """Y plane, then interleaved UV at half width and 1/row_step height."""
    h, w = b.height, b.width
    chroma_rows = b.div(h, row_step)
    y = _rows(b, image, 0, h)
    uv = _rows(b, image, h, b.add(h, chroma_rows))
    uv = b.op("Reshape", uv, b.dims(b.batch, chroma_rows, b.div(w, 2), 2))
    return b.op("Concat", y, _upsample(b, uv, row_step, 2), axis=-1)


def _yuv420sp(b: Any, image: Any) -> Any:
    return _semi_planar(b, image, 2)


def _yuv422sp(b: Any, image: Any) -> Any:
    return _semi_planar(b, image, 1)


def _yuyv(b: Any, image: Any) -> Any:
    y = b.op("Slice", image, b.const(_i64(0)), b.const(_i64(1)), b.const(_i64(3)))
    c = b.op("Slice", image, b.const(_i64(1)), b.const(_i64(2)), b.const(_i64(3)))
    uv = b.op("Reshape", c, b.dims(b.batch, b.height, b.div(b.width, 2), 2))
    return b.op("Concat", y, _upsample(b, uv, 1, 2), axis=-1)


def _packed(b: Any, image: Any) -> Any:
    return image


def _four(h: int, w: int) -> tuple[int, int, int]:
    return (h, w, 4)


FORMATS: tuple[AippFormat, ...] = (
    AippFormat(
        "YUV420SP_U8",
        _yuv420sp,
        3,
        "NV12 (NV21 with rbuv_swap_switch): Y plane + interleaved UV at half size",
        code=1,
        color="yuv",
        raw_shape=lambda h, w: (h * 3 // 2, w, 1),
        align_w=2,
        align_h=2,
        plane_rows=(1, 2),
        semi_planar=(2, 2),
    ),
    AippFormat(
        "XRGB8888_U8",
        _packed,
        4,
        "4 bytes per pixel, RGBX; XRGB with ax_swap_switch",
        code=2,
        raw_shape=_four,
        plane_rows=(1,),
    ),
    AippFormat("RGB888_U8", _packed, 3, "3 bytes per pixel, RGB (BGR with rbuv_swap_switch)", code=3, plane_rows=(1,)),
    AippFormat(
        "YUV400_U8",
        _packed,
        1,
        "8-bit gray (Y only)",
        code=4,
        color="yuv",
        raw_shape=lambda h, w: (h, w, 1),
        plane_rows=(1,),
    ),
    AippFormat(
        "ARGB8888_U8",
        _packed,
        4,
        "4 bytes per pixel with alpha, RGBA; ARGB with ax_swap_switch",
        code=7,
        raw_shape=_four,
        plane_rows=(1,),
    ),
    AippFormat(
        "YUYV_U8",
        _yuyv,
        3,
        "packed 4:2:2, Y0 U0 Y1 V0",
        code=8,
        color="yuv",
        raw_shape=lambda h, w: (h, w, 2),
        align_w=2,
        plane_rows=(1,),
    ),
    AippFormat(
        "YUV422SP_U8",
        _yuv422sp,
        3,
        "Y plane + interleaved UV at half width, full height",
        code=9,
        color="yuv",
        raw_shape=lambda h, w: (h * 2, w, 1),
        align_w=2,
        plane_rows=(1, 1),
        semi_planar=(1, 2),
    ),
    AippFormat(
        "AYUV444_U8",
        _packed,
        4,
        "4 bytes per pixel, YUVA; AYUV with ax_swap_switch",
        code=10,
        color="yuv",
        raw_shape=_four,
        plane_rows=(1,),
    ),
)
