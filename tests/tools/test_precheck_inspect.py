"""--mode=3 pre-check, --mode=6 model info, --mode=1 for original models, openatc inspect."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import openatc
from openatc.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _models import mlp


def _decoder_model(path: Path) -> Path:
    """Relu, then ImageDecoder (opset 20), which ONNX Runtime's CPU provider does not implement."""
    nodes = [
        helper.make_node("Identity", ["data"], ["bytes"], name="copy"),
        helper.make_node("ImageDecoder", ["bytes"], ["image"], name="decode", pixel_format="RGB"),
    ]
    graph = helper.make_graph(
        nodes,
        "dec",
        [helper.make_tensor_value_info("data", TensorProto.UINT8, [100])],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["H", "W", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), path)
    return path


def test_precheck_passes_and_writes_atc_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp(tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    assert main(["--mode=3", f"--model={model}", "--framework=5", "--soc_version=cpu"]) == 0
    report = json.loads((tmp_path / "check_result.json").read_text())  # ATC's default name, in the cwd
    assert report["result"] == "success" and report["total"] == 7 and report["pass"] == 7 and report["fail"] == 0
    assert {op["name"] for op in report["op"]} >= {"fc1", "relu1", "fc2"}
    assert all(op["cause"] == [{"code": 0, "message": ""}] for op in report["op"])
    assert not list(tmp_path.glob("*.om"))  # a pre-check builds nothing


def test_precheck_flags_an_op_the_backend_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _decoder_model(tmp_path / "dec.onnx")
    report_path = tmp_path / "report.json"
    argv = ["--mode=3", f"--model={model}", "--framework=5", "--soc_version=cpu", f"--check_report={report_path}"]
    assert main(argv) != 0
    assert "E40005" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    by_name = {op["name"]: op for op in report["op"]}
    assert report["result"] == "failed" and report["fail"] == 1
    assert by_name["decode"]["result"] == "failed" and by_name["decode"]["cause"][0]["code"] == 1
    assert "ImageDecoder" in by_name["decode"]["cause"][0]["message"]
    assert by_name["copy"]["result"] == "success"


def test_precheck_lists_operators_the_frontend_cannot_convert(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("FindMax", ["x"], ["y"], name="custom1", domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, tmp_path / "c.onnx")
    report_path = tmp_path / "r.json"
    argv = ["--mode=3", f"--model={tmp_path / 'c.onnx'}", "--framework=5", "--soc_version=reference"]
    assert main([*argv, f"--check_report={report_path}"]) != 0
    report = json.loads(report_path.read_text())
    assert report["op"][0]["type"] == "com.example::FindMax" and report["op"][0]["result"] == "failed"


def test_mode6_prints_model_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    om = openatc.build(
        model=mlp(tmp_path / "m.onnx"), framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16"
    )
    assert main(["--mode=6", f"--om={om}"]) == 0
    out = capsys.readouterr().out
    assert "============ Display Model Info start ============" in out
    assert "soc_version[cpu], framework_type[5]" in out and "weight_size[6144 B]" in out


def test_mode1_dumps_an_original_onnx_model_without_tensor_data(tmp_path: Path) -> None:
    model = mlp(tmp_path / "m.onnx")
    assert main(["--mode=1", "--framework=5", f"--om={model}", f"--json={tmp_path / 'm.json'}"]) == 0
    data = json.loads((tmp_path / "m.json").read_text())
    assert [n["name"] for n in data["graph"]["node"]][:2] == ["fc1", "bias1"]
    assert data["graph"]["initializer"][0]["name"] == "w1" and "raw_data" not in data["graph"]["initializer"][0]


def test_inspect_summary_and_onnx_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    om = openatc.build(
        model=mlp(tmp_path / "m.onnx"), framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16"
    )
    exported = tmp_path / "gear0.onnx"
    assert main(["inspect", str(om), "--export-onnx", str(exported)]) == 0
    out = capsys.readouterr().out
    assert "x: float32[4,16]" in out and "gear0" in out and "pass constant_folding" in out
    x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    (want,) = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    with openatc.Session(om) as sess:
        np.testing.assert_allclose(sess.run({"x": x})["y"], want, rtol=1e-6, atol=1e-6)
