"""--keep_dtype, --modify_mixlist, --input_fp16_nodes, --output_type with precision modes, and bad input."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.errors import OpenATCError
from openatc.options import BuildOptions

from ._models import cosine

ort = pytest.importorskip("onnxruntime")


def _precision(om: Path) -> dict:
    with openatc.Session(om) as sess:
        return sess.manifest["gears"][0]["precision"]


def test_keep_dtype_names_and_types(
    conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keep = tmp_path / "keep.cfg"
    keep.write_text("# kept in FP32\nfc\nOpType::Conv2D\nno_such_layer\n")
    with caplog.at_level(logging.WARNING, logger="openatc"):
        om = compile_om(conv_model, tmp_path / "kept", precision_mode="force_fp16", keep_dtype=str(keep))
    report = _precision(om)
    assert "fc" in report["fp32_layers"]
    conv_layers = [n for n in report["fp32_layers"] if "conv" in n.lower()]
    assert conv_layers, report  # OpType::Conv2D (Ascend name) keeps every convolution FP32
    assert any("no_such_layer" in r.getMessage() for r in caplog.records)


def test_keep_dtype_missing_file(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(OpenATCError) as info:
        compile_om(conv_model, tmp_path / "k", precision_mode="force_fp16", keep_dtype=str(tmp_path / "nope.cfg"))
    assert info.value.code == "E10001" and "--keep_dtype" in info.value.message


def test_modify_mixlist_black_lists_cube_ops(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"black-list": {"to-add": ["Gemm"]}, "white-list": {"to-remove": ["Conv2D"]}}))
    om = compile_om(conv_model, tmp_path / "mixed", precision_mode="allow_mix_precision", modify_mixlist=str(mix))
    report = _precision(om)
    assert "fc" in report["fp32_layers"]
    assert any("conv" in n.lower() for n in report["fp32_layers"])  # gray now, and its input is FP32


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"modify_mixlist": "mix.json"}, "needs a mixed-precision mode"),
        ({"precision_mode": "allow_mix_precision", "modify_mixlist": "bad.json"}, "not valid JSON"),
        ({"precision_mode": "allow_mix_precision", "modify_mixlist": "wrong.json"}, "unknown entry"),
        ({"precision_mode": "force_fp16", "precision_mode_v2": "fp16"}, "cannot be given together"),
        ({"precision_mode": "allow_mix_precision_bf16"}, "BF16"),
        ({"precision_mode": "fast"}, "not a precision mode"),
        ({"precision_mode_v2": "force_fp16"}, "not a precision mode"),
    ],
)
def test_bad_flags(tiny_static_model: Path, tmp_path: Path, flags: dict[str, str], needle: str) -> None:
    (tmp_path / "mix.json").write_text("{}")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text('{"grey-list": {}}')
    flags = {k: str(tmp_path / v) if v.endswith(".json") else v for k, v in flags.items()}
    base = {"model": str(tiny_static_model), "framework": "5", "output": str(tmp_path / "o"), "soc_version": "cpu"}
    with pytest.raises(OpenATCError) as info:
        BuildOptions.from_flags({**base, **flags})
    assert info.value.code == "E10001" and needle in info.value.message


def test_input_fp16_nodes(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    om = compile_om(conv_model, tmp_path / "in16", input_fp16_nodes="x")
    x = np.random.default_rng(4).standard_normal((1, 3, 32, 32)).astype(np.float16)
    with openatc.Session(om) as sess:
        assert sess.inputs[0].dtype == "float16"
        out = sess.run({"x": x})["y"]
    ref = ort.InferenceSession(str(conv_model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.astype(np.float32)}
    )
    assert cosine(ref[0], out) >= 0.99999


def test_input_fp16_nodes_unknown_input(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(OpenATCError) as info:
        compile_om(conv_model, tmp_path / "bad", input_fp16_nodes="nope")
    assert info.value.code == "E10016" and "nope" in info.value.message


@pytest.mark.parametrize("mode", ["force_fp16", "must_keep_origin_dtype"])
def test_output_type_fp16(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path, mode: str) -> None:
    om = compile_om(conv_model, tmp_path / mode, precision_mode=mode, output_type="FP16")
    with openatc.Session(om) as sess:
        assert sess.outputs[0].dtype == "float16" and sess.outputs[0].name == "y"
        out = sess.run({"x": np.zeros((1, 3, 32, 32), np.float32)})["y"]
    assert out.dtype == np.float16


def test_reference_backend_runs_real_fp16(conv_model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    om = compile_om(conv_model, tmp_path / "ref16", soc_version="reference", precision_mode="force_fp16")
    report = _precision(om)
    assert report["fp16_emulated"] == 0 and report["layers"]["fp16"] > 0
    with openatc.Session(om) as sess:
        out = sess.run({"x": x})["y"]
    ref = ort.InferenceSession(str(conv_model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert cosine(ref, out) >= 0.999


def test_values_read_by_subgraphs_stay_fp32(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    from ._models import if_model

    model = if_model(tmp_path / "if.onnx")
    om = compile_om(model, tmp_path / "if16", precision_mode="force_fp16")
    x = np.random.default_rng(6).standard_normal((4, 16)).astype(np.float32)
    feeds = {"x": x, "cond": np.array(True)}
    with openatc.Session(om) as sess:
        out = sess.run(feeds)["y"]
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.allclose(out, ref, atol=1e-5)  # the MatMul feeding the branches is kept FP32
    assert "mm" in _precision(om)["fp32_layers"]


def test_backend_without_fp16_refuses_fp16_modes(conv_model: Path, tmp_path: Path) -> None:
    import dataclasses

    from openatc.plugins.backends import cpu

    class Fp32Only:
        @openatc.hookimpl
        def openatc_backends(self):  # type: ignore[no-untyped-def]
            base = next(iter(cpu.openatc_backends()))
            caps = dataclasses.replace(base.capabilities, dtypes=frozenset({"float32", "int64"}))
            yield dataclasses.replace(base, name="fp32only", soc_versions=("Fp32Chip",), capabilities=caps)

    pm = openatc.get_plugin_manager(load_entrypoints=False)
    pm.register(Fp32Only(), "fp32only_vendor")
    flags = {"model": str(conv_model), "framework": 5, "output": str(tmp_path / "o"), "soc_version": "Fp32Chip"}
    with pytest.raises(OpenATCError) as info:
        openatc.build(plugin_manager=pm, precision_mode="allow_mix_precision", **flags)
    assert info.value.code == "E10001" and "float16" in info.value.message and "Fp32Chip" in info.value.message
    assert not (tmp_path / "o.om").exists()
    assert openatc.build(plugin_manager=pm, **flags).is_file()  # its default (origin) builds
