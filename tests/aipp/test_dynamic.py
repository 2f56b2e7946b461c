"""Dynamic AIPP: one .om, parameters per run through openatc.AippParams, checked as ATC's runtime does."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _aipp_reference import Aipp, raw_shape, reference
from test_formats import identity_model

import openatc
from openatc import AippImageParams, AippParams, OpenATCError

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


def test_openatc_run_takes_per_image_geometry(dynamic_om: Path, tmp_path: Path, run_cli) -> None:
    raw = _image("RGB888_U8", 12, 14)
    np.save(tmp_path / "x.npy", raw)
    params = tmp_path / "p.json"
    params.write_text(
        '{"input_format": "RGB888_U8", "src_image_size_w": 14, "src_image_size_h": 12, "images": ['
        '{"crop": true, "crop_size_w": 10, "crop_size_h": 8},'
        ' {"crop": true, "load_start_pos_w": 4, "load_start_pos_h": 4, "crop_size_w": 10, "crop_size_h": 8}]}'
    )
    result = run_cli("run", dynamic_om, "--aipp", f"x:{params}", "--input", tmp_path / "x.npy", "--output", tmp_path)
    assert result.code == 0, result.output
    (out,) = list(tmp_path.rglob("*y*.npy"))
    got = np.load(out)
    np.testing.assert_array_equal(got[0], raw[0, :8, :10].transpose(2, 0, 1))
    np.testing.assert_array_equal(got[1], raw[1, 4:12, 4:14].transpose(2, 0, 1))
    params.write_text('{"input_format": "RGB888_U8", "src_image_size_w": 14, "images": [{"crop": 1, "zoom": 2}]}')
    result = run_cli("run", dynamic_om, "--aipp", f"x:{params}")
    assert result.code != 0 and "E10001" in result.output and "zoom" in result.output


def _atc_buffer(
    batch_means: list[tuple[int, int, int, int]],
    crops: list[tuple[int, int, int, int]] | None = None,
    scf: tuple[int, int, int, int] | None = None,
) -> bytes:
    """ATC's packed parameters (spec 2.11), written field by field with struct."""
    import struct

    matrix = (256, 0, 359, 256, -88, -183, 256, 454, 0)
    head = struct.pack("<Bbbbb3x", 1, 1, 0, 0, len(batch_means))  # YUV420SP_U8, csc on
    head += struct.pack("<ii", 12, 10) + struct.pack("<9h", *matrix) + b"\0" * 6
    head += bytes((16, 128, 128)) + bytes((0, 128, 128)) + b"\0" * 2 + b"\0" * 16
    assert len(head) == 64
    body = b""
    for i, mean in enumerate(batch_means):
        crop = crops[i] if crops else (2, 2, 8, 6)
        batch = struct.pack("<bbbb4x", 1, scf is not None, 1, 0)  # crop on, resize if scf, constant padding
        batch += struct.pack("<4i", *crop) + struct.pack("<4i", *(scf or (0, 0, 0, 0)))
        batch += struct.pack("<4i", 1, 1, 1, 1)
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


def test_each_batch_image_has_its_own_crop_and_padding(dynamic_om: Path) -> None:
    """ATC's batchIdx: image 0 cropped at one place and padded, image 1 cropped elsewhere, no padding."""
    raw = _image("YUV420SP_U8", 12, 14)
    matrix = ((256, 0, 359), (256, -88, -183), (256, 454, 0))
    geometry = [
        AippImageParams(
            crop=True, load_start_pos_w=2, load_start_pos_h=4, crop_size_w=7, crop_size_h=5, padding=True,
            top_padding_size=2, bottom_padding_size=1, left_padding_size=3, right_padding_size=0,
        ),
        AippImageParams(crop=True, load_start_pos_w=4, load_start_pos_h=2, crop_size_w=W, crop_size_h=H),
    ]  # fmt: skip
    params = AippParams(
        "YUV420SP_U8", 14, 12, csc_switch=True, matrix=matrix, input_bias=(0, 128, 128), padding_value=-3.0,
        images=geometry, min_chn=(1.5, 2.5, 3.5, 0),
    )  # fmt: skip
    with openatc.Session(dynamic_om) as sess:
        got = sess.run({"x": raw}, aipp={"x": params})["y"]
    base = {"matrix": [list(r) for r in matrix], "input_bias": (0, 128, 128), "min": (1.5, 2.5, 3.5, 0.0)}
    cfgs = [
        Aipp("YUV420SP_U8", 14, 12, crop=(2, 4, 7, 5), padding=(2, 1, 3, 0), padding_value=-3.0, **base),
        Aipp("YUV420SP_U8", 14, 12, crop=(4, 2, W, H), **base),
    ]
    for i, cfg in enumerate(cfgs):
        want = reference(cfg, raw[i : i + 1], channels=3, dtype="float32", layout="NCHW")
        np.testing.assert_array_equal(got[i : i + 1], want)


@pytest.fixture(scope="module")
def resize_om(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("resize")
    model = identity_model(tmp / "m.onnx", [2, 3, 16, 20], "uint8")
    conf = tmp / "aipp.cfg"
    conf.write_text("aipp_op { aipp_mode: dynamic max_src_image_size: 200000 }")
    return openatc.build(
        model=str(model), framework=5, output=str(tmp / "m"), soc_version="cpu", insert_op_conf=str(conf)
    )


def test_resize_per_image_within_one_lsb(resize_om: Path) -> None:
    """Image 0: a 90 x 60 crop shrunk to 20 x 16; image 1: a 16 x 16 crop widened to 18 x 16 and padded."""
    raw = _image("RGB888_U8", 80, 100, seed=11)
    geometry = [
        AippImageParams(
            crop=True, load_start_pos_w=6, load_start_pos_h=10, crop_size_w=90, crop_size_h=60,
            resize=True, resize_output_w=20, resize_output_h=16,
        ),
        AippImageParams(
            crop=True, load_start_pos_w=50, load_start_pos_h=33, crop_size_w=16, crop_size_h=16,
            resize=True, resize_output_w=18, resize_output_h=16, padding=True, left_padding_size=2,
        ),
    ]  # fmt: skip
    matrix = ((66, 129, 25), (-38, -74, 112), (112, -94, -18))
    params = AippParams("RGB888_U8", 100, 80, csc_switch=True, matrix=matrix, images=geometry, padding_value=9)
    with openatc.Session(resize_om) as sess:
        got = sess.run({"x": raw}, aipp={"x": params})["y"]
    cfgs = [
        Aipp("RGB888_U8", 100, 80, crop=(6, 10, 90, 60), resize=(20, 16), matrix=[list(r) for r in matrix]),
        Aipp(
            "RGB888_U8", 100, 80, crop=(50, 33, 16, 16), resize=(18, 16), matrix=[list(r) for r in matrix],
            padding=(0, 0, 2, 0), padding_value=9.0,
        ),
    ]  # fmt: skip
    for i, cfg in enumerate(cfgs):
        want = reference(cfg, raw[i : i + 1], channels=3, dtype="uint8", layout="NCHW")
        diff = np.abs(got[i : i + 1].astype(np.int64) - want)
        # ONNX Runtime computes the source coordinates in float32 (scale 20/90 is inexact), so
        # values the reference finds exactly on a .5 tie may round the other way: 1 LSB, rarely
        assert diff.max() <= 1 and (diff == 0).mean() > 0.95, (diff.max(), (diff == 0).mean())


def test_resize_off_identity_and_halving_are_exact(resize_om: Path) -> None:
    """Same size: the pixels; exactly half size: the mean of 2 x 2 pixels, ties to even (exact weights)."""
    raw = _image("RGB888_U8", 16, 20, seed=12)
    same = AippImageParams(resize=True, resize_output_w=20, resize_output_h=16)
    big = _image("RGB888_U8", 32, 40, seed=13)
    half = AippParams("RGB888_U8", 40, 32, resize=True, resize_output_w=20, resize_output_h=16)
    with openatc.Session(resize_om) as sess:
        plain = sess.run({"x": raw}, aipp={"x": AippParams("RGB888_U8", 20, 16)})["y"]
        resized = sess.run({"x": raw}, aipp={"x": AippParams("RGB888_U8", 20, 16, images=[same, same])})["y"]
        halved = sess.run({"x": big}, aipp={"x": half})["y"]
    np.testing.assert_array_equal(plain, raw.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(resized, plain)
    want = reference(Aipp("RGB888_U8", 40, 32, resize=(20, 16)), big, channels=3, dtype="uint8", layout="NCHW")
    np.testing.assert_array_equal(halved, want)


@pytest.mark.parametrize(
    ("params", "image", "words"),
    [
        (
            AippParams("RGB888_U8", 20, 16, images=[AippImageParams()]),
            ("RGB888_U8", 16, 20),
            ["images gives 1", "batch of 2"],
        ),
        (
            AippParams("RGB888_U8", 20, 16, resize=True, resize_output_w=2000, resize_output_h=16),
            ("RGB888_U8", 16, 20),
            ["resize_output 2000x16", "[16, 1920]"],
        ),
        (
            AippParams("RGB888_U8", 400, 16, resize=True, resize_output_w=20, resize_output_h=16),
            ("RGB888_U8", 16, 400),
            ["ratio 20/400", "[1/16, 16]"],
        ),
        (
            AippParams("RGB888_U8", 20, 8, resize=True, resize_output_w=20, resize_output_h=16),
            ("RGB888_U8", 8, 20),
            ["resize input 20x8", "[16, 4096]"],
        ),
        (
            AippParams(
                "RGB888_U8", 40, 40, images=[AippImageParams(resize=True, resize_output_w=20, resize_output_h=16),
                                             AippImageParams(resize=True, resize_output_w=20, resize_output_h=17)],
            ),
            ("RGB888_U8", 40, 40),
            ["batch image 1", "give 17x20", "model input is 16x20"],
        ),
    ],
)  # fmt: skip
def test_resize_checks(resize_om: Path, params: AippParams, image: tuple[str, int, int], words: list[str]) -> None:
    with openatc.Session(resize_om) as sess, pytest.raises(OpenATCError) as info:
        sess.run({"x": _image(*image)}, aipp={"x": params})
    assert info.value.code == "E40012"
    for word in [*words, "'x'"]:
        assert word in info.value.message, info.value.message


def test_atc_packed_buffer_with_per_image_crops(dynamic_om: Path) -> None:
    means = [(0, 0, 0, 0), (0, 0, 0, 0)]
    buffer = _atc_buffer(means, crops=[(2, 2, 8, 6), (4, 0, 8, 6)])
    params = openatc.aipp.dynamic.params_from_bytes(buffer)
    assert [(g.load_start_pos_w, g.load_start_pos_h) for g in params.images] == [(2, 2), (4, 0)]
    raw = _image("YUV420SP_U8", 10, 12)
    cfg = {"matrix": [[256, 0, 359], [256, -88, -183], [256, 454, 0]], "input_bias": (0, 128, 128)}
    cfg |= {"min": (0.5, 0.25, 0.0, 0.0), "var_reci": (1.0, 2.0, 0.5, 1.0), "padding": (1, 1, 1, 1)}
    with openatc.Session(dynamic_om) as sess:
        got = sess.run({"x": raw}, aipp={"x": buffer})["y"]
        for i, crop in enumerate([(2, 2, 8, 6), (4, 0, 8, 6)]):
            want = reference(Aipp("YUV420SP_U8", 12, 10, crop=crop, **cfg), raw[i : i + 1], channels=3,
                             dtype="float32", layout="NCHW")  # fmt: skip
            np.testing.assert_allclose(got[i : i + 1], want, rtol=1e-6, atol=1e-6)
        with pytest.raises(OpenATCError) as info:
            sess.run({"x": raw}, aipp={"x": _atc_buffer(means, scf=(10, 6, 16, 16))})
    assert info.value.code == "E40012" and "scfInputSize 10x6" in info.value.message
    assert "crop size 8x6" in info.value.message


@pytest.mark.parametrize("fmt", ["YUV420SP_U8", "RGB888_U8", "XRGB8888_U8"])
@pytest.mark.parametrize("wild", [False, True])
def test_csc_float_and_int32_paths_are_exact(resize_om: Path, fmt: str, wild: bool) -> None:
    """The packed flag picks the float32 Conv (standard matrices) or the int32 ops (beyond the bound)."""
    matrix = (
        [[-32677, 20000, 1], [300, -700, 32676], [-5, 7, -9]]
        if wild
        else [[298, 0, 409], [298, -100, -208], [298, 516, 0]]
    )
    raw = _image(fmt, 16, 20, seed=21)
    params = AippParams(
        fmt, 20, 16, csc_switch=True, matrix=tuple(tuple(r) for r in matrix), input_bias=(16, 128, 128),
        output_bias=(16, 128, 128), rbuv_swap_switch=True, ax_swap_switch=fmt == "XRGB8888_U8",
    )  # fmt: skip
    from openatc.aipp.dynamic import pack_params

    with openatc.Session(resize_om) as sess:
        vector = pack_params("x", params, sess.inputs[0].aipp, raw.shape)
        assert vector[23] == (0.0 if wild else 1.0)
        got = sess.run({"x": raw}, aipp={"x": params})["y"]
    cfg = Aipp(fmt, 20, 16, rbuv_swap=True, ax_swap=fmt == "XRGB8888_U8", matrix=matrix)
    np.testing.assert_array_equal(got, reference(cfg, raw, channels=3, dtype="uint8", layout="NCHW"))
