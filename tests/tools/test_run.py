"""openatc run: output files in every format equal Session.run's; the summary JSON's documented keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _models import mlp

SUMMARY_KEYS = {
    "compute_time",
    "throughput",
    "batchsize",
    "compute_time_list",
    "pid",
    "model",
    "loop",
    "warmup_count",
    "inputs",
    "outputs",
    "gear",
}


@pytest.fixture
def om(tmp_path: Path) -> Path:
    return openatc.build(
        model=mlp(tmp_path / "m.onnx"), framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16"
    )


@pytest.mark.parametrize("fmt", ["NPY", "BIN", "TXT"])
def test_outputs_in_every_format_equal_session_run(om: Path, tmp_path: Path, fmt: str) -> None:
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    assert main(["run", str(om), "-i", str(tmp_path / "x.npy"), "-o", str(out), "--outfmt", fmt]) == 0
    with openatc.Session(om) as sess:
        want = sess.run({"x": x})["y"]
    if fmt == "NPY":
        got = np.load(out / "y.npy")
    elif fmt == "BIN":
        got = np.fromfile(out / "y.bin", dtype=np.float32).reshape(want.shape)
    else:
        got = np.loadtxt(out / "y.txt", dtype=np.float64).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_summary_json_has_the_documented_keys(om: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(om), "--loop", "7", "--warmup_count", "2", "--batchsize", "8", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert set(summary["compute_time"]) == {"min", "max", "mean", "median", "percentile(99%)", "count"}
    assert summary["compute_time"]["count"] == 7 and len(summary["compute_time_list"]) == 7
    assert summary["batchsize"] == 8
    assert summary["throughput"] == pytest.approx(1000 * 8 / summary["compute_time"]["mean"])
    assert summary["inputs"] == {"x": {"dtype": "float32", "shape": [4, 16]}}
    assert summary["outputs"]["y"]["shape"] == [4, 8]


def test_unwritable_output_folder(om: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", str(om), "-o", str(blocker / "out")]) != 0
    assert "E13002" in capsys.readouterr().out


def test_unknown_outfmt(om: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(om), "-o", str(tmp_path / "o"), "--outfmt", "PNG"]) != 0
    assert "E10001" in capsys.readouterr().out
