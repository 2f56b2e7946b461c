"""Precision modes against ONNX Runtime on the original FP32 model: accuracy, sizes, overflow."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import openatc

from ._models import cosine

ort = pytest.importorskip("onnxruntime")

MODES = ("force_fp16", "allow_fp32_to_fp16", "allow_mix_precision", "must_keep_origin_dtype", "force_fp32")
#: Cosine vs ONNX Runtime on the FP32 original: FP32 modes are exact up to float reordering; FP16
#: modes lose ~3 decimal digits (measured on these models: >= 0.99999).
MIN_COSINE = {"fp32": 0.999999, "fp16": 0.9999}
FP16_MODES = ("force_fp16", "allow_fp32_to_fp16", "allow_mix_precision")


def _reference(model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _run(om: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with openatc.Session(om) as sess:
        return next(iter(sess.run(feeds).values()))


def _manifest_precision(om: Path) -> dict:
    with openatc.Session(om) as sess:
        return sess.manifest["gears"][0]["precision"]


@pytest.mark.parametrize("mode", MODES)
def test_conv_net_modes(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path, mode: str) -> None:
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    om = compile_om(conv_model, tmp_path / mode, precision_mode=mode)
    out = _run(om, {"x": x})
    assert out.dtype == np.float32  # outputs keep their dtype unless --output_type says otherwise
    floor = MIN_COSINE["fp16" if mode in FP16_MODES else "fp32"]
    assert cosine(_reference(conv_model, {"x": x}), out) >= floor
    report = _manifest_precision(om)
    assert report["mode"] == mode and report["source"] == "flag"
    assert (report["layers"]["fp16"] > 0) == (mode in FP16_MODES)


def test_default_is_backend_native_fp32(conv_model: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_model)
    report = _manifest_precision(om)
    assert report["mode"] == "must_keep_origin_dtype"
    assert report["source"] == "backend default" and report["native_precision"] == "fp32"
    assert report["layers"]["fp16"] == 0


def test_fp16_halves_encoder_and_stays_accurate(
    text_encoder: Path, compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    ids = np.random.default_rng(2).integers(0, 4096, (1, 16)).astype(np.int64)
    ref = _reference(text_encoder, {"input_ids": ids})
    sizes = {}
    for mode in ("must_keep_origin_dtype", "force_fp16", "allow_mix_precision"):
        om = compile_om(text_encoder, tmp_path / mode, precision_mode=mode, input_shape="input_ids:1,16")
        sizes[mode] = om.stat().st_size
        assert cosine(ref, _run(om, {"input_ids": ids})) >= MIN_COSINE["fp16"], mode
    assert sizes["force_fp16"] < 0.52 * sizes["must_keep_origin_dtype"]
    assert sizes["allow_mix_precision"] < 0.52 * sizes["must_keep_origin_dtype"]


def test_overflow_force_fp16_breaks_mix_precision_holds(
    overflow_model: Path, compile_om: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x = np.random.default_rng(3).standard_normal((2, 8, 64)).astype(np.float32)
    ref = _reference(overflow_model, {"x": x})
    with caplog.at_level(logging.WARNING, logger="openatc"):
        forced = compile_om(overflow_model, tmp_path / "forced", precision_mode="force_fp16")
    warning = " ".join(r.getMessage() for r in caplog.records if "exceed the FP16 range" in r.getMessage())
    assert "square (Pow" in warning
    out = _run(forced, {"x": x})
    assert not np.isfinite(out).all() or not cosine(ref, out) > 0.5  # inf in Pow: the norm collapses
    assert _manifest_precision(forced)["overflow_on_samples"][0]["layer"] == "square"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="openatc"):
        mixed = compile_om(overflow_model, tmp_path / "mixed", precision_mode="allow_mix_precision")
    assert not [r for r in caplog.records if "exceed the FP16 range" in r.getMessage()]
    assert cosine(ref, _run(mixed, {"x": x})) >= MIN_COSINE["fp16"]
    report = _manifest_precision(mixed)
    assert {"square", "mean_sq", "sqrt"} <= set(report["fp32_layers"])
    assert report["layers"]["fp16"] >= 1  # the projection


def test_v2_names_map(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    for v2, mode in (
        ("fp16", "force_fp16"),
        ("origin", "must_keep_origin_dtype"),
        ("mixed_float16", "allow_mix_precision"),
    ):
        om = compile_om(conv_model, tmp_path / v2, precision_mode_v2=v2)
        report = _manifest_precision(om)
        assert report["mode"] == mode and report["flag"] == f"--precision_mode_v2={v2}"


def test_mode1_json_shows_fp16_tensors(
    conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path, run_cli: Callable[..., object]
) -> None:
    om = compile_om(conv_model, tmp_path / "m", precision_mode="force_fp16")
    out = tmp_path / "m.json"
    result = run_cli("--mode=1", f"--om={om}", f"--json={out}")
    assert result.code == 0, result.output
    text = out.read_text()
    assert "DT_FLOAT16" in text or "float16" in text.lower()
    assert "force_fp16" in json.dumps(json.loads(text))


def test_gears_share_fp16_weights(text_encoder: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    om = compile_om(
        text_encoder,
        tmp_path / "dyn",
        input_shape="input_ids:1,-1",
        input_format="ND",
        dynamic_dims="8;16",
        precision_mode="allow_mix_precision",
    )
    single = compile_om(
        text_encoder, tmp_path / "one", input_shape="input_ids:1,16", precision_mode="allow_mix_precision"
    )
    assert om.stat().st_size < 1.01 * single.stat().st_size  # FP16 weights stored once for both gears
    with openatc.Session(om) as sess:
        assert [g["precision"]["mode"] for g in sess.manifest["gears"]] == ["allow_mix_precision"] * 2
        for length in (8, 16):
            ids = np.random.default_rng(length).integers(0, 4096, (1, length)).astype(np.int64)
            out = next(iter(sess.run({"input_ids": ids}).values()))
            assert cosine(_reference(text_encoder, {"input_ids": ids}), out) >= MIN_COSINE["fp16"]


def test_range_compile_samples_at_the_lower_bound(
    overflow_model: Path, compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    import onnx

    proto = onnx.load(str(overflow_model))
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[1].dim_param = "S"
    dynamic = tmp_path / "overflow_dyn.onnx"
    onnx.save(proto, str(dynamic))
    om = compile_om(dynamic, tmp_path / "r", input_shape="x:2,4~16,64", input_format="ND", precision_mode="force_fp16")
    assert _manifest_precision(om)["overflow_on_samples"][0]["layer"] == "square"  # the probe ran at S=4
