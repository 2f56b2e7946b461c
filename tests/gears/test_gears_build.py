"""Gear builds end to end: every gear matches ONNX Runtime on the original dynamic model.

Encoder: ``--input_shape="input_ids:1,-1" --dynamic_dims="64;128;256"``; conv model: batch gears
and image-size gears. Then gear selection, padding and trimming, weights stored once, --mode=1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import openatc
from openatc.errors import OpenATCError

from .conftest import cosine

COSINE_MIN = 0.99999
SEQS = (64, 128, 256)


def _ort(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def encoder_om(encoder_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "enc_dyn"
    return openatc.build(
        model=encoder_onnx,
        framework=5,
        output=out,
        soc_version="cpu",
        input_format="ND",
        input_shape="input_ids:1,-1",
        dynamic_dims="64;128;256",
    )


def test_encoder_every_gear_matches_onnxruntime(encoder_om: Path, encoder_onnx: Path) -> None:
    reference = _ort(encoder_onnx)
    rng = np.random.default_rng(0)
    with openatc.Session(encoder_om) as session:
        assert [g["name"] for g in session.manifest["gears"]] == ["gear0", "gear1", "gear2"]
        assert session.gears == [{"input_ids": (1, s)} for s in SEQS]
        for index, seq in enumerate(SEQS):
            ids = rng.integers(0, 4096, (1, seq), dtype=np.int64)
            assert session.gear_for({"input_ids": ids}) == index
            got = session.run({"input_ids": ids})["last_hidden_state"]
            (want,) = reference.run(None, {"input_ids": ids})
            assert got.shape == (1, seq, 512) and got.dtype == np.float32
            assert cosine(got, want) >= COSINE_MIN, seq


def test_encoder_manifest_records_gears(encoder_om: Path) -> None:
    with openatc.Session(encoder_om) as session:
        manifest = session.manifest
    assert manifest["dynamic"] == {
        "kind": "dynamic_dims",
        "input_shape": "input_ids:1,-1",
        "gears": [[64], [128], [256]],
    }
    assert [g["dims"] for g in manifest["gears"]] == [[64], [128], [256]]
    for gear in manifest["gears"]:  # specialized: the Shape -> Gather -> Concat subgraphs are folded away
        assert not {"Shape", "Concat", "Unsqueeze"} & set(gear["ops"]), gear["ops"]
    assert [g["inputs"][0]["shape"] for g in manifest["gears"]] == [[1, 64], [1, 128], [1, 256]]
    assert manifest["inputs"][0]["shape"] == [1, "-1"]
    assert manifest["outputs"][0]["shape"] == [1, "-1", 512]
    # every gear names the same weight ids: stored once
    ids = [sorted(g["weights"].values()) for g in manifest["gears"]]
    assert ids[0] == ids[1] == ids[2]
    assert manifest["weights"]["count"] == len(set(ids[0]))


def test_three_gears_cost_little_more_file_than_one(encoder_om: Path, encoder_onnx: Path, tmp_path: Path) -> None:
    single = openatc.build(
        model=encoder_onnx, framework=5, output=tmp_path / "single", soc_version="cpu", input_shape="input_ids:1,256"
    )
    ratio = encoder_om.stat().st_size / single.stat().st_size
    assert ratio <= 1.05, ratio


def test_no_gear_matches_lists_the_gears(encoder_om: Path) -> None:
    with openatc.Session(encoder_om) as session, pytest.raises(OpenATCError) as info:
        session.run({"input_ids": np.zeros((1, 100), np.int64)})
    assert info.value.code == "E40010"
    for text in ("input_ids[1, 100]", "gear0 input_ids[1,64]", "gear1 input_ids[1,128]", "gear2 input_ids[1,256]"):
        assert text in info.value.message
    assert "pad_to_gear" in info.value.hint


def test_wrong_rank_is_named(encoder_om: Path) -> None:
    with openatc.Session(encoder_om) as session, pytest.raises(OpenATCError) as info:
        session.run({"input_ids": np.zeros((1, 64, 1), np.int64)})
    assert info.value.code == "E40010"
    assert "rank 3" in info.value.message and "rank 2" in info.value.message


def test_padding_picks_the_smallest_fitting_gear_and_trims(encoder_om: Path) -> None:
    ids = np.random.default_rng(1).integers(1, 4096, (1, 100), dtype=np.int64)
    with openatc.Session(encoder_om, pad_to_gear=True) as session:
        assert session.gear_for({"input_ids": ids}) == 1  # 128, not 256
        out = session.run({"input_ids": ids})["last_hidden_state"]
        assert out.shape == (1, 100, 512)
        padded = np.zeros((1, 128), np.int64)
        padded[:, :100] = ids
        full = session.run({"input_ids": padded})["last_hidden_state"]
        np.testing.assert_array_equal(out, full[:, :100])  # the padded run, trimmed
        with pytest.raises(OpenATCError, match="larger than every gear"):
            session.run({"input_ids": np.zeros((1, 300), np.int64)})
    with openatc.Session(encoder_om, pad_to_gear=True, pad_values={"input_ids": 7}) as session:
        seven = np.full((1, 128), 7, np.int64)
        seven[:, :100] = ids
        want = session.run({"input_ids": seven})["last_hidden_state"][:, :100]
        np.testing.assert_array_equal(session.run({"input_ids": ids})["last_hidden_state"], want)


def test_comma_form_is_one_gear_per_number(
    encoder_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="openatc"):
        om = openatc.build(
            model=encoder_onnx,
            framework=5,
            output=tmp_path / "comma",
            soc_version="cpu",
            input_format="ND",
            input_shape="input_ids:1,-1",
            dynamic_dims="64,128,256",
            output_type="FP16",
        )
    with openatc.Session(om) as session:
        assert session.gears == [{"input_ids": (1, s)} for s in SEQS]
    assert any("each number is one gear" in r.getMessage() for r in caplog.records)


# -- conv model: batch and image-size gears ---------------------------------------------------------
def _check_all_gears(om: Path, model: Path, shapes: list[tuple[int, ...]]) -> None:
    reference = _ort(model)
    rng = np.random.default_rng(0)
    with openatc.Session(om) as session:
        assert [s["x"] for s in session.gears] == shapes
        for index, shape in enumerate(shapes):
            x = rng.standard_normal(shape).astype(np.float32)
            assert session.gear_for({"x": x}) == index
            got = session.run({"x": x})
            want = dict(zip(["logits", "features"], reference.run(["logits", "features"], {"x": x}), strict=True))
            for name in ("logits", "features"):
                assert got[name].shape == want[name].shape
                assert cosine(got[name], want[name]) >= COSINE_MIN, (shape, name)


def test_conv_batch_gears(conv_onnx: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_onnx, input_shape="x:-1,3,32,32", dynamic_batch_size="1,2,4,8")
    _check_all_gears(om, conv_onnx, [(b, 3, 32, 32) for b in (1, 2, 4, 8)])
    x = np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with openatc.Session(om, pad_to_gear=True) as session:
        assert session.gear_for({"x": x}) == 2
        got = session.run({"x": x})
    want = _ort(conv_onnx).run(["logits", "features"], {"x": x})
    assert got["logits"].shape == (3, 10) and got["features"].shape == (3, 16, 16, 16)
    np.testing.assert_allclose(got["logits"], want[0], rtol=1e-4, atol=1e-4)  # batch padding is exact
    np.testing.assert_allclose(got["features"], want[1], rtol=1e-4, atol=1e-4)


def test_conv_image_size_gears(conv_onnx: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_onnx, input_shape="x:1,3,-1,-1", dynamic_image_size="32,32;64,48;96,96")
    _check_all_gears(om, conv_onnx, [(1, 3, 32, 32), (1, 3, 64, 48), (1, 3, 96, 96)])
    x = np.ones((1, 3, 40, 30), np.float32)
    with openatc.Session(om, pad_to_gear=True) as session:
        assert session.gear_for({"x": x}) == 1  # 64x48 is the smallest gear that holds 40x30
        got = session.run({"x": x})
    # features follow H and W at half size (stride 2): trimmed to ceil(40/2) x ceil(30/2); logits keep [1, 10]
    assert got["features"].shape == (1, 16, 20, 15)
    assert got["logits"].shape == (1, 10)


def test_mode1_json_shows_the_gears(conv_onnx: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    om = compile_om(conv_onnx, input_shape="x:-1,3,32,32", dynamic_batch_size="1,4")
    json_path = tmp_path / "m.json"
    from openatc.cli import main

    assert main(["--mode=1", f"--om={om}", f"--json={json_path}"]) == 0
    data = json.loads(json_path.read_text())
    assert [g["name"] for g in data["graph"]] == ["gear0", "gear1"]
    assert data["manifest"]["dynamic"]["kind"] == "dynamic_batch_size"
    assert data["manifest"]["dynamic"]["gears"] == [[1], [4]]
    assert [g["inputs"][0]["shape"] for g in data["manifest"]["gears"]] == [[1, 3, 32, 32], [4, 3, 32, 32]]
    assert data["graph"][1]["op"]  # each gear's own optimized graph
    attrs = {a["key"]: a["value"]["s"] for a in data["attr"]}
    assert attrs["dynamic_type"] == "dynamic_batch_size"
    assert attrs["dynamic_gears"] == "x:1,3,32,32|x:4,3,32,32"


def test_build_is_byte_identical(conv_onnx: Path, tmp_path: Path) -> None:
    flags = {"framework": 5, "soc_version": "cpu", "input_shape": "x:1,3,-1,-1", "dynamic_image_size": "32,32;64,64"}
    first = openatc.build(model=conv_onnx, output=tmp_path / "m", **flags).read_bytes()
    (tmp_path / "m.om").unlink()
    assert openatc.build(model=conv_onnx, output=tmp_path / "m", **flags).read_bytes() == first


# -- dynamic-shape (range) compile ------------------------------------------------------------------
def test_minus_one_without_gears_is_a_dynamic_graph(conv_onnx: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_onnx, input_shape="x:-1,3,-1,-1")
    reference = _ort(conv_onnx)
    with openatc.Session(om) as session:
        assert len(session.manifest["gears"]) == 1
        assert session.manifest["dynamic"]["kind"] == "shape_range"
        assert session.manifest["dynamic"]["ranges"]["x"] == [[0, -1], [3, 3], [0, -1], [0, -1]]
        for shape in ((1, 3, 20, 20), (3, 3, 37, 51)):
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            got = session.run({"x": x})["features"]
            assert cosine(got, reference.run(["features"], {"x": x})[0]) >= COSINE_MIN


def test_range_is_recorded_and_enforced(encoder_onnx: Path, tmp_path: Path) -> None:
    om = openatc.build(
        model=encoder_onnx, framework=5, output=tmp_path / "rng", soc_version="cpu", input_shape="input_ids:1,8~128"
    )
    reference = _ort(encoder_onnx)
    with openatc.Session(om) as session:
        assert session.manifest["dynamic"]["ranges"] == {"input_ids": [[1, 1], [8, 128]]}
        ids = np.random.default_rng(0).integers(0, 4096, (1, 77), dtype=np.int64)
        got = session.run({"input_ids": ids})["last_hidden_state"]
        assert cosine(got, reference.run(None, {"input_ids": ids})[0]) >= COSINE_MIN
        with pytest.raises(OpenATCError, match=r"dim 1 of input 'input_ids' is 200, outside the range 8~128"):
            session.run({"input_ids": np.zeros((1, 200), np.int64)})
        with pytest.raises(OpenATCError, match=r"outside the range 8~128"):
            session.run({"input_ids": np.zeros((1, 4), np.int64)})


def test_input_shape_range_flag(conv_onnx: Path, compile_om: Callable[..., Path]) -> None:
    om = compile_om(conv_onnx, input_shape_range="x:[1~4,3,16~64,16~64]")
    with openatc.Session(om) as session:
        assert session.manifest["dynamic"]["ranges"]["x"] == [[1, 4], [3, 3], [16, 64], [16, 64]]
        assert session.run({"x": np.zeros((2, 3, 20, 30), np.float32)})["logits"].shape == (2, 10)
        with pytest.raises(OpenATCError, match="outside the range 1~4"):
            session.run({"x": np.zeros((5, 3, 20, 30), np.float32)})


def test_progress_on_a_terminal_only(conv_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    flags = {"framework": 5, "soc_version": "cpu", "input_shape": "x:-1,3,32,32", "dynamic_batch_size": "1,2,4"}
    terminal = Tty()
    monkeypatch.setattr(sys, "stderr", terminal)
    openatc.build(model=conv_onnx, output=tmp_path / "tty", **flags)
    assert "gear 3/3 [x:4,3,32,32]" in terminal.getvalue()
    assert "3 gears built in" in terminal.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    openatc.build(model=conv_onnx, output=tmp_path / "piped", **flags)
    assert piped.getvalue() == ""
