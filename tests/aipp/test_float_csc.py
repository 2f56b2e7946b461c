"""The float32 CSC (Conv / ConvTranspose + QuantizeLinear) is exact where openatc uses it.

``openatc.aipp.insert.float_exact`` proves exactness from the matrix and biases; matrices beyond
the bound keep the int32 fixed-point ops. Both are compared with the numpy reference (int64).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from _aipp_reference import Aipp, reference
from test_formats import identity_model

import openatc
from openatc.aipp import parse_aipp_text
from openatc.aipp.insert import FLOAT_EXACT_LIMIT, csc_affine, float_exact, insert_aipp
from openatc.manager import get_plugin_manager

MATRICES = {
    "jpeg_rgb": ([[256, 0, 359], [256, -88, -183], [256, 454, 0]], (0, 128, 128)),
    "bt601_narrow_bgr": ([[298, 516, 0], [298, -100, -208], [298, 0, 409]], (16, 128, 128)),
    "bt709_narrow_rgb": ([[298, 0, 459], [298, -55, -136], [298, 541, 0]], (16, 128, 128)),
    # |row| * 255 + |bias| just below the bound: the largest sums the float path takes
    "near_limit": ([[5000, -5000, 5000], [-5000, 5000, -5000], [1, -2, 3]], (16, 128, 128)),
}


def _ops(tmp_path: Path, fmt: str, matrix: list[list[int]], bias: tuple[int, int, int]) -> list[str]:
    text = Aipp(fmt, 12, 8, matrix=matrix, input_bias=bias).config_text()
    model = ir.load(identity_model(tmp_path / "m.onnx", [1, 3, 8, 12], "float32"))
    insert_aipp(model, parse_aipp_text(text), get_plugin_manager().aipp_formats(), [], "NCHW")
    return [n.op_type for n in model.graph]


def test_the_bound() -> None:
    weight = np.array([[6000, -6000, 4000]], dtype=np.int64)
    bias = np.array([0], dtype=np.int64)
    assert float_exact(weight, bias)
    edge = (FLOAT_EXACT_LIMIT - 128) // 255
    assert float_exact(np.array([[edge - 1, 0, 0]]), bias)
    assert not float_exact(np.array([[edge + 1, 0, 0]]), bias)
    assert not float_exact(np.array([[-32677, 20000, 1]]), bias)


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_every_chroma_pair_is_exact(tmp_path: Path, name: str) -> None:
    """A 512 x 512 NV12 frame whose 256 x 256 chroma samples are every (U, V) pair; Y random."""
    matrix, bias = MATRICES[name]
    weight = np.array(matrix)
    assert float_exact(weight, -weight @ np.array(bias)), "the float32 path must be the one tested"
    cfg = Aipp("YUV420SP_U8", 512, 512, matrix=matrix, input_bias=bias)
    conf = tmp_path / "aipp.cfg"
    conf.write_text(cfg.config_text())
    model = identity_model(tmp_path / "m.onnx", [1, 3, 512, 512], "uint8")
    om = openatc.build(
        model=str(model), framework=5, output=str(tmp_path / "m"), soc_version="cpu", insert_op_conf=str(conf)
    )
    y = np.random.default_rng(3).integers(0, 256, (512, 512), np.uint8)
    u, v = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    uv = np.stack([u, v], axis=-1).reshape(256, 512)
    raw = np.concatenate([y, uv])[None, :, :, None]
    with openatc.Session(om) as sess:
        got = sess.run({"x": raw})["y"]
    want = reference(cfg, raw, channels=3, dtype="uint8", layout="NCHW")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", ["YUV420SP_U8", "YUV422SP_U8", "RGB888_U8"])
def test_float_path_within_the_bound_int32_beyond(tmp_path: Path, fmt: str) -> None:
    small, big = MATRICES["near_limit"][0], [[-32677, 20000, 1], [300, -700, 32676], [-5, 7, -9]]
    float_ops, int_ops = _ops(tmp_path, fmt, small, (16, 128, 128)), _ops(tmp_path, fmt, big, (16, 128, 128))
    conv = "ConvTranspose" if fmt.startswith("YUV") else "Conv"
    assert conv in float_ops and "QuantizeLinear" in float_ops and "MatMul" not in float_ops
    assert "MatMul" in int_ops and conv not in int_ops


def test_affine_folds_swaps_and_biases() -> None:
    """rbuv_swap exchanges matrix columns; YUV input_bias becomes -m @ bias; RGB output_bias x 256."""
    from openatc.aipp.config import parse_aipp_text as parse

    formats = get_plugin_manager().aipp_formats()
    yuv = parse(
        Aipp(
            "YUV420SP_U8", 12, 8, rbuv_swap=True, matrix=MATRICES["jpeg_rgb"][0], input_bias=(0, 128, 128)
        ).config_text()
    )[0]
    weight, bias = csc_affine(yuv, formats["YUV420SP_U8"], 3)
    m = np.array(MATRICES["jpeg_rgb"][0])
    np.testing.assert_array_equal(weight, m[:, [0, 2, 1]])
    np.testing.assert_array_equal(bias, -m @ np.array([0, 128, 128]))
    rgb = parse(Aipp("XRGB8888_U8", 12, 8, ax_swap=True, matrix=m.tolist(), output_bias=(16, 128, 128)).config_text())[
        0
    ]
    weight, bias = csc_affine(rgb, formats["XRGB8888_U8"], 4)
    np.testing.assert_array_equal(weight[:3, 1:], m)
    np.testing.assert_array_equal(weight[3], [256, 0, 0, 0])
    np.testing.assert_array_equal(bias, [16 * 256, 128 * 256, 128 * 256, 0])
