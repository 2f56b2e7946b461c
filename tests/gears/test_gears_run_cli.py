"""``openatc run`` on gear models: ais_bench overrides, --pad, --all-gears; and the encoder scenario."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

Cli = Callable[..., object]


@pytest.fixture
def batch_om(conv_onnx: Path, compile_om: Callable[..., Path]) -> Path:
    return compile_om(conv_onnx, input_shape="x:-1,3,32,32", dynamic_batch_size="1,2,4")


@pytest.fixture
def image_om(conv_onnx: Path, compile_om: Callable[..., Path]) -> Path:
    return compile_om(conv_onnx, input_shape="x:1,3,-1,-1", dynamic_image_size="32,32;64,64")


def _shapes(out: str) -> dict[str, str]:
    return dict(re.findall(r"\[INFO\] (?:input|output) +(\w+): (\w+\[[\d, ]*\])", out))


def test_user_scenario_text_encoder_dims(run_cli: Cli, encoder_onnx: Path, tmp_path: Path) -> None:
    result = run_cli(
        f"--model={encoder_onnx}",
        "--framework=5",
        f"--output={tmp_path / 'enc_dyn'}",
        "--soc_version=cpu",
        "--input_format=ND",
        "--input_shape=input_ids:1,-1",
        "--dynamic_dims=64;128;256",
        "--output_type=FP16",
    )
    assert result.code == 0, result.output
    om = tmp_path / "enc_dyn.om"
    result = run_cli("run", om, "--dymDims", "input_ids:1,128", "--loop", "2")
    assert result.code == 0, result.output
    assert _shapes(result.out) == {"input_ids": "int64[1, 128]", "last_hidden_state": "float16[1, 128, 512]"}
    assert "gear1" in result.out


def test_default_is_the_largest_gear(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om)
    assert result.code == 0, result.output
    assert _shapes(result.out)["x"] == "float32[4, 3, 32, 32]"
    assert "throughput 1000*batchsize.mean(4)" in result.out


def test_dym_batch(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om, "--dymBatch", "2")
    assert result.code == 0, result.output
    assert _shapes(result.out) == {
        "x": "float32[2, 3, 32, 32]",
        "logits": "float32[2, 10]",
        "features": "float32[2, 16, 16, 16]",
    }


def test_dym_batch_without_gear_lists_gears_then_pads(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om, "--dymBatch", "3")
    assert result.code == 1
    assert "E40010" in result.out and "gear2 x[4,3,32,32]" in result.out and "--pad" in result.out
    result = run_cli("run", batch_om, "--dymBatch", "3", "--pad")
    assert result.code == 0, result.output
    shapes = _shapes(result.out)
    assert shapes["x"] == "float32[3, 3, 32, 32]" and shapes["logits"] == "float32[3, 10]"
    assert "gear2" in result.out


def test_dym_hw(run_cli: Cli, image_om: Path) -> None:
    result = run_cli("run", image_om, "--dymHW", "64,64")
    assert result.code == 0, result.output
    assert _shapes(result.out)["features"] == "float32[1, 16, 32, 32]"
    result = run_cli("run", image_om, "--dymHW", "40,50", "--pad")
    assert result.code == 0, result.output
    assert _shapes(result.out)["features"] == "float32[1, 16, 20, 25]"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--dymHW", "64,64"), ("--dymHW", "--dynamic_image_size", "--dynamic_batch_size")),
        (("--dymBatch", "2", "--dymHW", "1,1"), ("mutually exclusive",)),
        (("--dymDims", "y:1,2"), ("--dymDims entry 'y:1,2'",)),
        (("--all-gears", "--dymBatch", "2"), ("--all-gears",)),
    ],
)
def test_bad_overrides(run_cli: Cli, batch_om: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    result = run_cli("run", batch_om, *args)
    assert result.code == 1
    assert "E10001" in result.out
    for word in words:
        assert word in result.out


def test_all_gears(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om, "--all-gears", "--loop", "2", "--warmup_count", "0")
    assert result.code == 0, result.output
    rows = [line for line in result.out.splitlines() if re.match(r"\[INFO\] gear\d", line)]
    assert len(rows) == 3
    for row, batch in zip(rows, (1, 2, 4), strict=True):
        assert f"x[{batch},3,32,32]" in row


def test_bin_input_needs_the_dims(run_cli: Cli, batch_om: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    path = tmp_path / "x.bin"
    data.tofile(path)
    result = run_cli("run", batch_om, "--input", path, "--dymBatch", "2", "--output", tmp_path / "o")
    assert result.code == 0, result.output
    assert np.load(tmp_path / "o" / "logits.npy").shape == (2, 10)


def test_range_model_with_dym_shape(run_cli: Cli, conv_onnx: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_onnx, input_shape="x:-1,3,-1,-1")
    result = run_cli("run", om)
    assert result.code == 1 and "--dymShape" in result.out
    result = run_cli("run", om, "--dymShape", "x:2,3,20,24")
    assert result.code == 0, result.output
    assert _shapes(result.out)["features"] == "float32[2, 16, 10, 12]"


def test_pad_value(run_cli: Cli, encoder_onnx: Path, tmp_path: Path) -> None:
    import openatc

    om = openatc.build(
        model=encoder_onnx,
        framework=5,
        output=tmp_path / "enc",
        soc_version="cpu",
        input_format="ND",
        input_shape="input_ids:1,-1",
        dynamic_dims="64;128",
    )
    ids = np.random.default_rng(0).integers(1, 4096, (1, 50), dtype=np.int64)
    np.save(tmp_path / "ids.npy", ids)
    outputs = {}
    for value in ("0", "7"):
        out = tmp_path / f"o{value}"
        result = run_cli(
            "run", om, "--input", tmp_path / "ids.npy", "--pad", "--pad_value", f"input_ids:{value}", "-o", out
        )
        assert result.code == 0, result.output
        outputs[value] = np.load(out / "last_hidden_state.npy")
    padded = np.full((1, 64), 7, np.int64)
    padded[:, :50] = ids
    with openatc.Session(om) as session:
        want = session.run({"input_ids": padded})["last_hidden_state"][:, :50]
    np.testing.assert_array_equal(outputs["7"], want)
    assert outputs["0"].shape == (1, 50, 512) and not np.array_equal(outputs["0"], outputs["7"])
    result = run_cli("run", om, "--pad", "--pad_value", "input_ids=7")
    assert result.code == 1 and "E10001" in result.out and "--pad_value" in result.out


def test_dym_shape_range_runs_every_shape(
    run_cli: Cli, conv_onnx: Path, compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    import json

    om = compile_om(conv_onnx, input_shape="x:1~2,3,16~32,-1")
    out = tmp_path / "range"
    result = run_cli("run", om, "--dymShape_range", "x:1-2,3,20~22,24", "--loop", "2", "-o", out)
    assert result.code == 0, result.output
    assert "6 shape(s)" in result.out
    rows = [line for line in result.out.splitlines() if re.search(r"gear\d", line)]
    shapes = [(n, h) for n in (1, 2) for h in (20, 21, 22)]  # the last dim given varies fastest
    assert len(rows) == len(shapes)
    summary = json.loads((out / "summary.json").read_text())
    assert [e["inputs"]["x"] for e in summary["shapes"]] == [[n, 3, h, 24] for n, h in shapes]
    for entry, (n, h) in zip(summary["shapes"], shapes, strict=True):
        assert entry["compute_time"]["count"] == 2
        features = np.load(entry["outputs"]["features"]["file"])
        assert features.shape == (n, 16, (h + 1) // 2, 12)
    # a shape outside the compiled range stops the run with the range named
    result = run_cli("run", om, "--dymShape_range", "x:3,3,20,24")
    assert result.code == 1 and "E40010" in result.out and "1~2" in result.out


def test_dym_shape_range_on_gears(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om, "--dymShape_range", "x:1-2-4,3,32,32", "--loop", "1")
    assert result.code == 0, result.output
    rows = [line for line in result.out.splitlines() if re.search(r"gear\d", line)]
    assert [re.search(r"gear(\d)", r).group(1) for r in rows] == ["0", "1", "2"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("x:1,3,32~a,32", ("'32~a'", "low~high")),
        ("x:1,3,40~32,32", ("'40~32'",)),
        ("x:1,3,0-4,32", ("'0-4'",)),
        ("y:1,3,32,32", ("does not name an input", "x")),
        ("x:1,3,32", ("3 dims", "rank 4")),
        ("x:1~40,3,1~40,32", ("1600 shapes", "1000")),
        ("x:1,3,32,32;x:2,3,32,32", ("twice",)),
    ],
)
def test_dym_shape_range_errors(run_cli: Cli, batch_om: Path, spec: str, words: tuple[str, ...]) -> None:
    result = run_cli("run", batch_om, "--dymShape_range", spec)
    assert result.code == 1
    assert "E10001" in result.out and "--dymShape_range" in result.out
    for word in words:
        assert word in result.out, (word, result.out)


def test_dym_shape_range_excludes_other_shape_flags(run_cli: Cli, batch_om: Path) -> None:
    result = run_cli("run", batch_om, "--dymShape_range", "x:1-2,3,32,32", "--dymBatch", "2")
    assert result.code == 1 and "E10001" in result.out and "--dymBatch" in result.out
