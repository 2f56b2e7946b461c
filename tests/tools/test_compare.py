"""openatc compare: per-tensor comparison of an .om with its source model."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import openatc
from openatc.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _models import mlp


def _perturbed(model: Path, out: Path, weight: str) -> Path:
    proto = onnx.load(model)
    for init in proto.graph.initializer:
        if init.name == weight:
            array = onnx.numpy_helper.to_array(init) + np.random.default_rng(5).standard_normal(init.dims).astype(
                np.float32
            )
            init.CopyFrom(onnx.numpy_helper.from_array(array.astype(np.float32), weight))
    onnx.save(proto, out)
    return out


@pytest.mark.parametrize("soc", ["cpu", "reference"])
def test_compare_names_the_broken_layer(tmp_path: Path, soc: str, capsys: pytest.CaptureFixture[str]) -> None:
    model = mlp(tmp_path / "m.onnx")
    broken = _perturbed(model, tmp_path / "broken.onnx", "w2")  # fc2's weights
    om = openatc.build(model=broken, framework=5, output=tmp_path / "b", soc_version=soc, input_shape="x:4,16")
    assert main(["compare", "--golden", str(model), "--om", str(om), "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "first divergence: node 'fc2' (MatMul)" in out
    rows = list(csv.DictReader((tmp_path / "r" / "compare.csv").open()))
    by_tensor = {r["tensor"]: r for r in rows}
    assert float(by_tensor["h2"]["cosine_similarity"]) > 0.999999  # layers before fc2 agree
    assert float(by_tensor["y"]["cosine_similarity"]) < 0.99
    report = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert report["summary"]["first_divergence"]["node"] == "fc2"
    assert set(report["tensors"][0]) >= {"cosine_similarity", "max_abs_error", "mean_abs_error", "rmse"}


def test_compare_fp16_om_stays_close(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = mlp(tmp_path / "m.onnx")
    om = openatc.build(
        model=model, framework=5, output=tmp_path / "h", soc_version="cpu", input_shape="x:4,16", output_type="FP16"
    )
    assert main(["compare", "--golden", str(model), "--om", str(om), "-o", str(tmp_path / "r")]) == 0
    assert "every compared tensor has cosine similarity >= 0.99" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "r" / "compare.csv").open()))
    y = next(r for r in rows if r["tensor"] == "y")
    assert float(y["cosine_similarity"]) > 0.9999 and 0 < float(y["max_abs_error"]) < 0.05  # one fp16 rounding


def test_compare_with_given_inputs(tmp_path: Path) -> None:
    model = mlp(tmp_path / "m.onnx")
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16")
    np.save(tmp_path / "x.npy", np.ones((4, 16), np.float32))
    argv = ["compare", "--golden", str(model), "--om", str(om), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "compare.csv").is_file()


def test_golden_that_does_not_match_the_om(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = mlp(tmp_path / "m.onnx")
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16")
    other = onnx.load(model)
    other.graph.input[0].name = "z"
    for node in other.graph.node:
        node.input[:] = ["z" if i == "x" else i for i in node.input]
    onnx.save(other, tmp_path / "other.onnx")
    code = main(["compare", "--golden", str(tmp_path / "other.onnx"), "--om", str(om), "-o", str(tmp_path / "r")])
    assert code != 0
    out = capsys.readouterr().out
    assert "E10016" in out and "'z'" in out
