"""openatc compare on INT8 .om files: quantized tensors map back to their original names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import openatc
from openatc.cli import main

from ._models import hostile_mlp, write_samples


def _build(model: Path, data: Path, out: Path, **settings: object) -> Path:
    cfg = out.with_suffix(".json")
    cfg.write_text(json.dumps({"data_dir": str(data), **settings}))
    return openatc.build(model=model, framework=5, output=out, soc_version="cpu", calibration_config=str(cfg))


def test_compare_locates_the_hostile_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = hostile_mlp(tmp_path / "hostile.onnx")
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 30)
    om = _build(model, data, tmp_path / "plain")
    assert main(["compare", "--golden", str(model), "--om", str(om), "-o", str(tmp_path / "r")]) == 0
    assert "first divergence: node 'fc3' (MatMul)" in capsys.readouterr().out  # it reads the crushed h
    rows = {r["tensor"]: r for r in csv.DictReader((tmp_path / "r" / "compare.csv").open())}
    assert float(rows["r"]["cosine_similarity"]) > 0.999  # INT8 before the outlier is fine
    assert float(rows["y"]["cosine_similarity"]) < 0.5
    # h is compared as the consumers see it (the DequantizeLinear output): its small channels are lost
    assert float(rows["h"]["max_relative_error"]) > 0.9


def test_compare_int8_with_fallback_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = hostile_mlp(tmp_path / "hostile.onnx")
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 30)
    om = _build(model, data, tmp_path / "guarded", accuracy_target=0.99)
    assert main(["compare", "--golden", str(model), "--om", str(om), "-o", str(tmp_path / "r")]) == 0
    assert "every compared tensor has cosine similarity >= 0.99" in capsys.readouterr().out


def test_command_line_build_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = hostile_mlp(tmp_path / "hostile.onnx")
    write_samples(tmp_path / "calib", {"x": (1, 64)}, 10)
    (tmp_path / "c.json").write_text(json.dumps({"data_dir": "calib", "algorithm": "mse"}))  # relative to the file
    args = ["--model", str(model), "--framework=5", "--soc_version=cpu", f"--output={tmp_path / 'q'}"]
    assert main([*args, f"--calibration_config={tmp_path / 'c.json'}"]) == 0
    assert main(["inspect", str(tmp_path / "q.om")]) == 0
    assert "precision: INT8 (mse; weights int8 symmetric per-channel, activations uint8 asymmetric)" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "q_quant_report.csv").is_file()
