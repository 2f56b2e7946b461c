"""Dynamic AIPP: one .om, parameters per run through openatc.AippParams, checked as ATC's runtime does."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _aipp_reference import Aipp, raw_shape, reference
from test_formats import identity_model

import openatc
from openatc import AippParams, OpenATCError

DATA = Path(__file__).resolve().parents[1] / "data" / "aipp"
N, H, W = 2, 8, 10


@pytest.fixture(scope="module")
def dynamic_om(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dyn")
    model = identity_model(tmp / "m.onnx", [N, 3, H, W], "float32")
    conf = tmp / "aipp.cfg"
    shutil.copy(DATA / "samples_yolov3_dynamic_aipp.cfg", conf)  # the real config: max_src_image_size 260000
    return openatc.build(
        model=str(model), framework=5, output=str(tmp / "m"), soc_version="cpu", insert_op_conf=str(conf)
    )


def _image(fmt: str, h: int, w: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (N, *raw_shape(fmt, h, w)), np.uint8)


def test_inputs_of_a_dynamic_model(dynamic_om: Path) -> None:
    with openatc.Session(dynamic_om) as sess:
        image, params = sess.inputs
        assert (image.name, image.dtype, image.format, image.shape[0]) == ("x", "uint8", "NHWC", N)
        assert image.aipp["mode"] == "dynamic" and image.aipp["config"]["max_src_image_size"] == 260000
        assert params.name == image.aipp["params_input"] == "x__aipp_params"


@pytest.mark.parametrize("fmt", ["YUV420SP_U8", "XRGB8888_U8", "RGB888_U8"])
def test_each_runtime_format_with_every_step(dynamic_om: Path, fmt: str) -> None:
    src_h, src_w = 10, 12
    matrix = (
        [[256, 0, 359], [256, -88, -183], [256, 454, 0]]
        if fmt == "YUV420SP_U8"
        else [[66, 129, 25], [-38, -74, 112], [112, -94, -18]]
    )
    mean = [(10, 20, 30, 0), (1, 2, 3, 0)]
    cfg = Aipp(
        fmt,
        src_w,
        src_h,
        rbuv_swap=True,
        ax_swap=fmt == "XRGB8888_U8",
        crop=(2, 2, 8, 6),
        matrix=matrix,
        input_bias=(0, 128, 128),
        padding=(1, 1, 1, 1),
        padding_value=-2.0,
    )
    params = AippParams(
        fmt,
        src_w,
        src_h,
        csc_switch=True,
        matrix=tuple(tuple(r) for r in matrix),
        input_bias=(0, 128, 128),
        rbuv_swap_switch=True,
        ax_swap_switch=fmt == "XRGB8888_U8",
        crop=True,
        load_start_pos_w=2,
        load_start_pos_h=2,
        crop_size_w=8,
        crop_size_h=6,
        padding=True,
        top_padding_size=1,
        bottom_padding_size=1,
        left_padding_size=1,
        right_padding_size=1,
        padding_value=-2.0,
        mean_chn=mean,
        var_reci_chn=(0.5, 0.25, 2.0, 1.0),
    )
    raw = _image(fmt, src_h, src_w)
    with openatc.Session(dynamic_om) as sess:
        got = sess.run({"x": raw}, aipp={"x": params})["y"]
    want = np.concatenate(
        [
            reference(
                Aipp(**{**cfg.__dict__, "mean": mean[i], "var_reci": (0.5, 0.25, 2.0, 1.0)}),
                raw[i : i + 1],
                channels=3,
                dtype="float32",
                layout="NCHW",
            )
            for i in range(N)
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


def test_one_model_serves_several_sizes_and_formats(dynamic_om: Path) -> None:
    with openatc.Session(dynamic_om) as sess:
        rgb = _image("RGB888_U8", H, W)
        out = sess.run({"x": rgb}, aipp={"x": AippParams("RGB888_U8", W, H)})["y"]
        np.testing.assert_array_equal(out, rgb.transpose(0, 3, 1, 2).astype(np.float32))
        big = _image("RGB888_U8", 20, 30)
        params = AippParams(
            "RGB888_U8", 30, 20, crop=True, load_start_pos_w=5, load_start_pos_h=7, crop_size_w=W, crop_size_h=H
        )
        out = sess.run({"x": big}, aipp={"x": params})["y"]
        np.testing.assert_array_equal(out, big[:, 7 : 7 + H, 5 : 5 + W].transpose(0, 3, 1, 2).astype(np.float32))


@pytest.mark.parametrize(
    ("params", "image", "words"),
    [
        (None, ("RGB888_U8", H, W), ["needs its parameters"]),
        (AippParams("YUV422SP_U8", W, H), ("RGB888_U8", H, W), ["not supported yet"]),
        (AippParams("RGB888_U8", W, H, resize=True), ("RGB888_U8", H, W), ["resize"]),
        (AippParams("YUV400_U8", W, H), ("YUV400_U8", H, W), ["1 channel", "has 3"]),
        (AippParams("RGB888_U8", W + 2, H), ("RGB888_U8", H, W + 2), ["8x12", "model input is 8x10"]),
        (AippParams("RGB888_U8", W, H), ("RGB888_U8", H, W + 2), ["shape", "needs"]),
        (AippParams("YUV420SP_U8", 9, H), ("RGB888_U8", H, 9), ["even"]),
        (AippParams("RGB888_U8", 5000, H), ("RGB888_U8", H, W), ["out of range"]),
        (
            AippParams("RGB888_U8", 300, 200, crop=True, crop_size_w=W, crop_size_h=H),
            ("RGB888_U8", 200, 300),
            ["max_src_image_size"],
        ),
        (
            AippParams("RGB888_U8", W, H, crop=True, load_start_pos_w=4, crop_size_w=W, crop_size_h=H),
            ("RGB888_U8", H, W),
            ["does not fit"],
        ),
        (AippParams("RGB888_U8", W, H, csc_switch=True, input_bias=(0, 0, 300)), ("RGB888_U8", H, W), ["input_bias"]),
        (
            AippParams("RGB888_U8", W, H, var_reci_chn=[(1, 1, 1, 1)] * 3),
            ("RGB888_U8", H, W),
            ["var_reci_chn", "2 x 4"],
        ),
        (
            AippParams(
                "RGB888_U8", W - 2, H, padding=True, left_padding_size=1, right_padding_size=1, padding_value=1e6
            ),
            ("RGB888_U8", H, W - 2),
            ["padding_value"],
        ),
    ],
)
def test_runtime_checks(
    dynamic_om: Path, params: AippParams | None, image: tuple[str, int, int], words: list[str]
) -> None:
    with openatc.Session(dynamic_om) as sess, pytest.raises(OpenATCError) as info:
        sess.run({"x": _image(*image)}, aipp={"x": params} if params else None)
    assert info.value.code == "E40012"
    for word in [*words, "'x'"]:
        assert word in info.value.message, info.value.message


def test_aipp_params_for_a_model_without_dynamic_aipp(tiny_om: Path) -> None:
    with openatc.Session(tiny_om) as sess, pytest.raises(OpenATCError) as info:
        sess.run({"x": np.zeros((2, 4), np.float32)}, aipp={"x": AippParams("RGB888_U8", 4, 4)})
    assert info.value.code == "E40012" and "not dynamic-AIPP inputs" in info.value.message


def test_gray_images_into_a_one_channel_model(tmp_path: Path) -> None:
    model = identity_model(tmp_path / "g.onnx", [1, 1, H, W], "float32")
    conf = tmp_path / "aipp.cfg"
    conf.write_text("aipp_op { aipp_mode: dynamic max_src_image_size: 1000 }")
    om = openatc.build(
        model=str(model), framework=5, output=str(tmp_path / "g"), soc_version="cpu", insert_op_conf=str(conf)
    )
    gray = np.random.default_rng(5).integers(0, 256, (1, H, W, 1), np.uint8)
    with openatc.Session(om) as sess:
        out = sess.run({"x": gray}, aipp={"x": AippParams("YUV400_U8", W, H, min_chn=(0.5, 0, 0, 0))})["y"]
    np.testing.assert_array_equal(out, gray.transpose(0, 3, 1, 2).astype(np.float32) - 0.5)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_with_dynamic_batch_gears(tmp_path: Path, mode: str) -> None:
    model = identity_model(tmp_path / "b.onnx", ["N", 3, H, W], "float32")
    conf = tmp_path / "aipp.cfg"
    conf.write_text(
        "aipp_op { aipp_mode: static input_format: RGB888_U8 }"
        if mode == "static"
        else "aipp_op { aipp_mode: dynamic max_src_image_size: 100000 }"
    )
    om = openatc.build(
        model=str(model),
        framework=5,
        output=str(tmp_path / "b"),
        soc_version="cpu",
        insert_op_conf=str(conf),
        input_shape=f"x:-1,3,{H},{W}",
        dynamic_batch_size="1,4",
    )
    with openatc.Session(om) as sess:
        for n in (1, 4):
            rgb = np.random.default_rng(n).integers(0, 256, (n, H, W, 3), np.uint8)
            aipp = {"x": AippParams("RGB888_U8", W, H)} if mode == "dynamic" else None
            np.testing.assert_array_equal(sess.run({"x": rgb}, aipp=aipp)["y"], rgb.transpose(0, 3, 1, 2))


def test_openatc_run_takes_aipp_parameters(dynamic_om: Path, tmp_path: Path, run_cli) -> None:
    params = tmp_path / "p.json"
    params.write_text(
        '{"input_format": "YUV420SP_U8", "src_image_size_w": 12, "src_image_size_h": 10, "csc_switch": true,'
        ' "crop": true, "load_start_pos_w": 2, "crop_size_w": 10, "crop_size_h": 8}'
    )
    result = run_cli("run", dynamic_om, "--aipp", f"x:{params}")
    assert result.code == 0, result.output
    assert "input  x: uint8[2, 15, 12, 1]" in result.out and "output y: float32[2, 3, 8, 10]" in result.out
    params.write_text('{"input_format": "RGB888_U8", "src_image_size_w": 12, "colour": 1}')
    result = run_cli("run", dynamic_om, "--aipp", f"x:{params}")
    assert result.code != 0 and "E10001" in result.output and "colour" in result.output


def _atc_buffer(batch_means: list[tuple[int, int, int, int]]) -> bytes:
    """ATC's packed parameters (spec 2.11), written field by field with struct."""
    import struct

    matrix = (256, 0, 359, 256, -88, -183, 256, 454, 0)
    head = struct.pack("<Bbbbb3x", 1, 1, 0, 0, len(batch_means))  # YUV420SP_U8, csc on
    head += struct.pack("<ii", 12, 10) + struct.pack("<9h", *matrix) + b"\0" * 6
    head += bytes((16, 128, 128)) + bytes((0, 128, 128)) + b"\0" * 2 + b"\0" * 16
    assert len(head) == 64
    body = b""
    for mean in batch_means:
        batch = struct.pack("<bbbb4x", 1, 0, 1, 0)  # crop on, no resize, constant padding
        batch += struct.pack("<4i", 2, 2, 8, 6) + struct.pack("<4i", 0, 0, 0, 0) + struct.pack("<4i", 1, 1, 1, 1)
        batch += struct.pack("<4h", *mean)
        batch += np.array([0.5, 0.25, 0, 0], "<f2").tobytes() + np.array([1, 2, 0.5, 1], "<f2").tobytes()
        batch += b"\0" * 16
        assert len(batch) == 96
        body += batch
    return head + body


def test_atc_packed_buffer_equals_aipp_params(dynamic_om: Path) -> None:
    means = [(10, 20, 30, 0), (1, 2, 3, 0)]
    params = AippParams(
        "YUV420SP_U8",
        12,
        10,
        csc_switch=True,
        matrix=((256, 0, 359), (256, -88, -183), (256, 454, 0)),
        input_bias=(0, 128, 128),
        crop=True,
        load_start_pos_w=2,
        load_start_pos_h=2,
        crop_size_w=8,
        crop_size_h=6,
        padding=True,
        top_padding_size=1,
        bottom_padding_size=1,
        left_padding_size=1,
        right_padding_size=1,
        mean_chn=means,
        min_chn=(0.5, 0.25, 0, 0),
        var_reci_chn=(1, 2, 0.5, 1),
    )
    raw = _image("YUV420SP_U8", 10, 12)
    with openatc.Session(dynamic_om) as sess:
        from_bytes = sess.run({"x": raw}, aipp={"x": _atc_buffer(means)})["y"]
        typed = sess.run({"x": raw}, aipp={"x": params})["y"]
        np.testing.assert_array_equal(from_bytes, typed)
        with pytest.raises(OpenATCError) as info:
            sess.run({"x": raw}, aipp={"x": _atc_buffer(means)[:100]})
        assert info.value.code == "E40012" and "100 bytes" in info.value.message
