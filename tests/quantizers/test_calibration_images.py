"""INT8 calibration from image files: the config's "image" section (decode, resize, normalize, layout)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import openatc
from openatc.errors import OpenATCError
from openatc.quantize._config import options_from_dict
from openatc.quantize._data import InputSpec, find_samples

from ._models import conv_net, cosine

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _samples(folder: Path, image: dict, shape: tuple[int, ...] = (1, 3, 32, 32), dtype: str = "float32"):
    options = options_from_dict({"data_dir": str(folder), "image": image}, "--calibration_config=c.json", folder)
    return find_samples(options, [InputSpec("x", np.dtype(dtype), shape)])


def _png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def test_decode_and_normalize_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    for i, pixels in enumerate(raw):
        _png(tmp_path / f"{i}.png", pixels)
    samples = _samples(tmp_path, {"mean": MEAN, "std": STD})
    assert len(samples) == 3
    for i, pixels in enumerate(raw):  # numpy formula: (pixel - mean) / std, HWC -> NCHW
        want = ((pixels.astype(np.float64) - MEAN) / STD).transpose(2, 0, 1)[None]
        got = samples[i]["x"]
        assert got.dtype == np.float32 and got.shape == (1, 3, 32, 32)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    bgr = _samples(tmp_path, {"color": "BGR", "layout": "NHWC"}, shape=(1, 32, 32, 3))[0]["x"]
    np.testing.assert_array_equal(bgr[0], raw[0][:, :, ::-1].astype(np.float32))


def test_gray_uint8_input_and_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    raw = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(4)]
    for i, pixels in enumerate(raw):
        _png(tmp_path / f"{i}.png", pixels)
    samples = _samples(tmp_path, {"color": "GRAY"}, shape=(2, 1, 16, 16), dtype="uint8")
    assert len(samples) == 2  # four images, two per batch-2 sample
    got = samples[1]["x"]
    assert got.dtype == np.uint8 and got.shape == (2, 1, 16, 16)
    luma = [np.asarray(Image.fromarray(p).convert("L")) for p in raw[2:]]  # ITU-R 601-2 luma
    np.testing.assert_array_equal(got[:, 0], np.stack(luma))


def test_center_crop_and_stretch(tmp_path: Path) -> None:
    wide = np.broadcast_to((np.arange(64) * 4).astype(np.uint8)[None, :, None], (32, 64, 3)).copy()
    _png(tmp_path / "wide.png", wide)
    crop = _samples(tmp_path, {"fit": "center_crop"})[0]["x"]
    np.testing.assert_array_equal(crop[0, 0, 0], np.arange(16, 48) * 4.0)  # the middle 32 columns
    ramp = tmp_path / "ramp"
    ramp.mkdir()
    _png(ramp / "0.png", np.broadcast_to((np.arange(64) * 2 + 10).astype(np.uint8)[None, :, None], (64, 64, 3)).copy())
    half = _samples(ramp, {})[0]["x"][0, 0]  # 64 -> 32: pixel j covers source 2j..2j+1, centre 2j + 0.5
    want = 2 * (2 * np.arange(32) + 0.5) + 10
    np.testing.assert_allclose(half[:, 2:-2], np.broadcast_to(want, (32, 32))[:, 2:-2], atol=0.6)


@pytest.mark.parametrize(
    ("image", "setup", "code", "words"),
    [
        (None, "png", "E10061", "no 'image' section"),
        ({"color": "CMYK"}, "png", "E10060", "color"),
        ({"std": [1, 0, 1]}, "png", "E10060", "std"),
        ({"shear": 1}, "png", "E10060", "shear"),
        ({}, "corrupt", "E10061", "cannot decode"),
        ({"mean": [1, 2]}, "png", "E10061", "mean"),
    ],
)
def test_bad_image_settings(tmp_path: Path, image: dict | None, setup: str, code: str, words: str) -> None:
    if setup == "png":
        _png(tmp_path / "0.png", np.zeros((32, 32, 3), np.uint8))
    else:
        (tmp_path / "0.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    data = {"data_dir": str(tmp_path)} | ({"image": image} if image is not None else {})
    with pytest.raises(OpenATCError) as info:
        options = options_from_dict(data, "--calibration_config=c.json", tmp_path)
        samples = find_samples(options, [InputSpec("x", np.dtype("float32"), (1, 3, 32, 32))])
        samples[0]
    assert info.value.code == code and words in str(info.value), str(info.value)


def test_int8_build_from_images(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model = conv_net(tmp_path / "conv.onnx")
    rng = np.random.default_rng(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(24):  # smooth colour fields with noise, 48x40 PNG and JPEG: stretched to 32x32
        base = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
        pixels = np.asarray(Image.fromarray(base).resize((40, 48), Image.Resampling.BILINEAR), np.int16)
        pixels = np.clip(pixels + rng.integers(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
        if i % 2:
            Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=95)
        else:
            _png(folder / f"{i}.png", pixels)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data_dir": "photos", "image": {"mean": MEAN, "std": STD}, "accuracy_target": 0.99}))
    om = compile_om(model, calibration_config=str(config))
    with openatc.Session(om) as session:
        quant = session.manifest["gears"][0]["quantization"]
        assert quant["samples"] == {"calibration": 19, "held_out": 5, "accuracy_check": 16} and quant["target_met"]
        x = _samples(folder, {"mean": MEAN, "std": STD})[3]["x"]
        got = next(iter(session.run({"x": x}).values()))
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert cosine(got, want) >= 0.99
