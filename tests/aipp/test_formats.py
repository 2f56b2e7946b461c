"""Every AIPP input_format and every step: the compiled model equals the numpy reference.

Before normalization (uint8 model inputs) the match is exact; with normalization (float32) it is
within float32 rounding. The reference (``_aipp_reference``) is written from the spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _aipp_reference import FOUR_CHANNELS, Aipp, raw_shape, reference
from onnx import TensorProto, helper

import openatc

FORMATS = [
    "YUV420SP_U8",
    "YUV422SP_U8",
    "YUYV_U8",
    "YUV400_U8",
    "RGB888_U8",
    "XRGB8888_U8",
    "ARGB8888_U8",
    "AYUV444_U8",
]
SRC_H, SRC_W = 8, 12
JPEG_YUV_TO_RGB = [[256, 0, 359], [256, -88, -183], [256, 454, 0]]
BT601_RGB_TO_YUV = [[66, 129, 25], [-38, -74, 112], [112, -94, -18]]
#: A matrix with large coefficients of both signs: exercises the floor of negative sums and clamping.
WILD = [[-32677, 20000, 1], [300, -700, 32676], [-5, 7, -9]]


def identity_model(path: Path, shape: list[int], dtype: str) -> Path:
    elem = TensorProto.UINT8 if dtype == "uint8" else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def run_case(
    tmp_path: Path, cfg: Aipp, *, out_hw: tuple[int, int], channels: int, dtype: str, layout: str = "NCHW", n: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    h, w = out_hw
    shape = [n, channels, h, w] if layout == "NCHW" else [n, h, w, channels]
    model = identity_model(tmp_path / "m.onnx", shape, dtype)
    conf = tmp_path / "aipp.cfg"
    conf.write_text(cfg.config_text())
    raw = np.random.default_rng(7).integers(0, 256, (n, *raw_shape(cfg.input_format, cfg.src_h, cfg.src_w)), np.uint8)
    if layout == "NHWC":  # the ONNX frontend takes NCHW only: insert into the graph directly, run on ONNX Runtime
        got = _insert_and_run(model, conf, raw)
    else:
        om = openatc.build(
            model=str(model), framework=5, output=str(tmp_path / "m"), soc_version="cpu", insert_op_conf=str(conf)
        )
        with openatc.Session(om) as sess:
            spec = sess.inputs[0]
            assert (spec.dtype, spec.format, spec.shape) == ("uint8", "NHWC", raw.shape)
            got = sess.run({"x": raw})["y"]
    want = reference(cfg, raw, channels=channels, dtype=dtype, layout=layout)
    return got, want


def _insert_and_run(model: Path, conf: Path, raw: np.ndarray) -> np.ndarray:
    import onnx_ir as ir
    import onnxruntime as ort

    from openatc.aipp import parse_aipp_config
    from openatc.aipp.insert import insert_aipp
    from openatc.manager import get_plugin_manager

    graph = ir.load(model)
    insert_aipp(graph, parse_aipp_config(conf), get_plugin_manager().aipp_formats(), [], "NHWC")
    proto = ir.to_proto(graph)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": raw})[0]


def _channels(fmt: str) -> int:
    return 1 if fmt == "YUV400_U8" else 3


def _csc_matrix(fmt: str) -> list[list[int]]:
    return JPEG_YUV_TO_RGB if fmt.startswith(("YUV", "YUYV", "AYUV")) else BT601_RGB_TO_YUV


@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_only_is_exact(tmp_path: Path, fmt: str) -> None:
    got, want = run_case(
        tmp_path, Aipp(fmt, SRC_W, SRC_H), out_hw=(SRC_H, SRC_W), channels=_channels(fmt), dtype="uint8"
    )
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", sorted(FOUR_CHANNELS))
def test_four_channel_formats_keep_the_fourth_channel(tmp_path: Path, fmt: str) -> None:
    cfg = Aipp(fmt, SRC_W, SRC_H, ax_swap=True, matrix=_csc_matrix(fmt))
    got, want = run_case(tmp_path, cfg, out_hw=(SRC_H, SRC_W), channels=4, dtype="uint8")
    np.testing.assert_array_equal(got, want)


SWAPS = [(f, True, False) for f in FORMATS if f != "YUV400_U8"]
SWAPS += [(f, rbuv, True) for f in sorted(FOUR_CHANNELS) for rbuv in (False, True)]  # ax_swap: 4-byte formats


@pytest.mark.parametrize(("fmt", "rbuv", "ax"), SWAPS)
def test_channel_swaps_are_exact(tmp_path: Path, fmt: str, rbuv: bool, ax: bool) -> None:
    cfg = Aipp(fmt, SRC_W, SRC_H, rbuv_swap=rbuv, ax_swap=ax)
    got, want = run_case(tmp_path, cfg, out_hw=(SRC_H, SRC_W), channels=3, dtype="uint8")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_crop_is_exact(tmp_path: Path, fmt: str) -> None:
    cfg = Aipp(fmt, SRC_W, SRC_H, crop=(2, 2, 8, 6))
    got, want = run_case(tmp_path, cfg, out_hw=(6, 8), channels=_channels(fmt), dtype="uint8")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "YUV400_U8"])
@pytest.mark.parametrize("which", ["standard", "wild"])
def test_csc_is_exact(tmp_path: Path, fmt: str, which: str) -> None:
    matrix = _csc_matrix(fmt) if which == "standard" else WILD
    cfg = Aipp(fmt, SRC_W, SRC_H, matrix=matrix, input_bias=(16, 128, 128), output_bias=(16, 128, 128))
    got, want = run_case(tmp_path, cfg, out_hw=(SRC_H, SRC_W), channels=3, dtype="uint8")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_normalization_matches(tmp_path: Path, fmt: str) -> None:
    cfg = Aipp(
        fmt,
        SRC_W,
        SRC_H,
        mean=(10, 20, 30, 0),
        min=(113.675, 96.28, 73.53, 0.0),
        var_reci=(0.0171247538316637, 0.0175070028011204, 0.0174291938997821, 1.0),
    )
    got, want = run_case(tmp_path, cfg, out_hw=(SRC_H, SRC_W), channels=_channels(fmt), dtype="float32")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_padding_is_exact(tmp_path: Path, fmt: str, dtype: str) -> None:
    cfg = Aipp(fmt, SRC_W, SRC_H, padding=(1, 3, 2, 4), padding_value=7.0)
    got, want = run_case(tmp_path, cfg, out_hw=(SRC_H + 4, SRC_W + 6), channels=_channels(fmt), dtype=dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_every_step_together(tmp_path: Path, fmt: str, layout: str) -> None:
    cfg = Aipp(
        fmt,
        SRC_W,
        SRC_H,
        rbuv_swap=fmt != "YUV400_U8",
        ax_swap=fmt in FOUR_CHANNELS,
        crop=(2, 2, 8, 6),
        matrix=None if fmt == "YUV400_U8" else _csc_matrix(fmt),
        input_bias=(0, 128, 128),
        mean=(100, 110, 120, 0),
        min=(0.5, 0.25, 0.125, 0.0),
        var_reci=(0.5, -2.0, 0.00392157, 1.0),
        padding=(2, 0, 1, 3),
        padding_value=-1.5,
    )
    got, want = run_case(tmp_path, cfg, out_hw=(8, 12), channels=_channels(fmt), dtype="float32", layout=layout, n=2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_crop_sizes_are_exact(tmp_path: Path, fmt: str) -> None:
    """Crop sizes need no alignment: the raw crop takes whole chroma samples, the rest is cut after decoding."""
    cfg = Aipp(fmt, SRC_W, SRC_H, crop=(4, 2, 7, 5), matrix=None if fmt == "YUV400_U8" else _csc_matrix(fmt))
    got, want = run_case(tmp_path, cfg, out_hw=(5, 7), channels=_channels(fmt), dtype="uint8")
    np.testing.assert_array_equal(got, want)
