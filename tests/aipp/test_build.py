"""AIPP through the build: manifest, --mode=1, plugins listing, model-dependent errors, several inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from _aipp_reference import Aipp, reference
from onnx import TensorProto, helper

import openatc
from openatc import OpenATCError


def _model(path: Path, inputs: dict[str, list[int]]) -> Path:
    names = list(inputs)
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in names]
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, s) for n, s in inputs.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _build(tmp_path: Path, model: Path, text: str, **flags: str) -> Path:
    conf = tmp_path / "aipp.cfg"
    conf.write_text(text)
    return openatc.build(
        model=str(model), framework=5, output=str(tmp_path / "m"), soc_version="cpu", insert_op_conf=str(conf), **flags
    )


def test_manifest_and_mode1_record_the_uint8_nhwc_input(tmp_path: Path, run_cli) -> None:
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, 16, 16]})
    om = _build(
        tmp_path,
        model,
        "aipp_op { aipp_mode: static input_format: YUV420SP_U8 src_image_size_w: 20 src_image_size_h: 18 "
        "crop: true load_start_pos_w: 2 load_start_pos_h: 2 crop_size_w: 16 crop_size_h: 16 csc_switch: true }",
    )
    with openatc.Session(om) as sess:
        (spec,) = sess.inputs
        assert (spec.name, spec.dtype, spec.shape, spec.format) == ("x", "uint8", (1, 27, 20, 1), "NHWC")
        assert spec.aipp["mode"] == "static" and spec.aipp["input_format_code"] == 1
        assert spec.aipp["model_input"] == {"dtype": "float32", "shape": [1, 3, 16, 16], "format": "NCHW"}
        assert spec.aipp["config"]["matrix"] == [[298, 516, 0], [298, -100, -208], [298, 0, 409]]
    result = run_cli("--mode=1", f"--om={om}", f"--json={tmp_path / 'm.json'}")
    assert result.code == 0, result.output
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["manifest"]["inputs"][0]["format"] == "NHWC"
    assert data["manifest"]["inputs"][0]["shape"] == [1, 27, 20, 1]
    assert data["graph"][0]["input"] == ["x"]


def test_plugins_lists_every_format(run_cli) -> None:
    result = run_cli("plugins")
    assert result.code == 0
    for name in ("YUV420SP_U8", "YUV422SP_U8", "YUYV_U8", "YUV400_U8", "RGB888_U8", "XRGB8888_U8", "AYUV444_U8"):
        assert name in result.out
    assert "openatc.plugins.aipp" in result.out


def test_two_inputs_two_blocks_by_rank_and_name(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", {"a": [1, 3, 4, 6], "b": [1, 1, 4, 6]})
    om = _build(
        tmp_path,
        model,
        "aipp_op { aipp_mode: static related_input_name: 'b' input_format: YUV400_U8 }\n"
        "aipp_op { aipp_mode: static related_input_name: 'a' input_format: RGB888_U8 rbuv_swap_switch: true "
        "min_chn_0: 1 min_chn_1: 2 min_chn_2: 3 }",
    )
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, 4, 6, 3), np.uint8)
    b = rng.integers(0, 256, (1, 4, 6, 1), np.uint8)
    with openatc.Session(om) as sess:
        out = sess.run({"a": a, "b": b})
    want_a = reference(
        Aipp("RGB888_U8", 6, 4, rbuv_swap=True, min=(1, 2, 3, 0)), a, channels=3, dtype="float32", layout="NCHW"
    )
    np.testing.assert_array_equal(out["a_out"], want_a)
    np.testing.assert_array_equal(out["b_out"], b.transpose(0, 3, 1, 2).astype(np.float32))


def _two_consumer_model(path: Path) -> Path:
    """x [1, 3, 4, 6] feeds Identity (edge 0, output p) and Neg (edge 1, output q)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["p"], name="first"),
            helper.make_node("Neg", ["x"], ["q"], name="second"),
        ],
        "two_edges",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 6]) for n in ("p", "q")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_input_edge_idx_gives_each_consumer_its_own_aipp(tmp_path: Path) -> None:
    """Two blocks on one input (spec 2.2 input_edge_idx): one NV12 image, two conversions."""
    edge1 = Aipp(
        "YUV420SP_U8", 8, 6, crop=(2, 2, 6, 4), matrix=[[256, 0, 359], [256, -88, -183], [256, 454, 0]],
        input_bias=(0, 128, 128), min=(123.675, 116.28, 103.53, 0), var_reci=(0.0171, 0.0175, 0.0174, 1),
    )  # fmt: skip
    edge0 = Aipp(
        "YUV420SP_U8", 8, 6, crop=(2, 0, 4, 2), padding=(0, 2, 1, 1), padding_value=-1.0, mean=(16, 128, 128, 0)
    )
    text = edge1.config_text().replace("aipp_mode : static", "aipp_mode : static\n  input_edge_idx : 1")
    text += edge0.config_text().replace("aipp_mode : static", "aipp_mode : static\n  input_edge_idx : 0")
    om = _build(tmp_path, _two_consumer_model(tmp_path / "m.onnx"), text)
    raw = np.random.default_rng(5).integers(0, 256, (1, 9, 8, 1), np.uint8)
    with openatc.Session(om) as sess:
        (spec,) = sess.inputs
        assert spec.shape == (1, 9, 8, 1)
        assert [(e["input_edge_idx"], e["consumer"]) for e in spec.aipp["edges"]] == [(0, "first"), (1, "second")]
        out = sess.run({"x": raw})
    want_p = reference(edge0, raw, channels=3, dtype="float32", layout="NCHW")
    want_q = -reference(edge1, raw, channels=3, dtype="float32", layout="NCHW")
    np.testing.assert_allclose(out["p"], want_p, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["q"], want_q, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 0 }",
            "E10052",
            ["feeds 2 edges", "0: first input 0", "1: second input 0", "edges without AIPP: [1]"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 0 }\n"
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 2 }",
            "E10052",
            ["aipp_op #2", "input_edge_idx=2", "2 consumer edge(s)"],
        ),
        (
            "aipp_op { aipp_mode: dynamic max_src_image_size: 100 input_edge_idx: 0 }\n"
            "aipp_op { aipp_mode: dynamic max_src_image_size: 100 input_edge_idx: 1 }",
            "E10055",
            ["input_edge_idx with dynamic AIPP"],
        ),
    ],
)
def test_input_edge_idx_errors(tmp_path: Path, text: str, code: str, words: list[str]) -> None:
    with pytest.raises(OpenATCError) as info:
        _build(tmp_path, _two_consumer_model(tmp_path / "m.onnx"), text)
    assert info.value.code == code
    for word in words:
        assert word in info.value.message, info.value.message


@pytest.mark.parametrize(
    ("inputs", "text", "code", "words"),
    [
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op {\n aipp_mode: static\n input_format: RAW10\n}",
            "E10052",
            ["RAW10", "not supported", "line 3", "YUV420SP_U8"],
        ),
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 20 src_image_size_h: 16 }",
            "E10052",
            ["16x20", "model input is 16x16"],
        ),
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 16 src_image_size_h: 12 "
            "padding: true top_padding_size: 2 bottom_padding_size: 1 }",
            "E10052",
            ["padding", "top 2", "bottom 1"],
        ),
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op {\n aipp_mode: static\n input_format: YUV420SP_U8\n src_image_size_w: 20\n src_image_size_h: 17\n"
            " crop: true\n crop_size_w: 16\n crop_size_h: 16\n}",
            "E10052",
            ["src_image_size_h (line 5)", "multiple of 2"],
        ),
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op { aipp_mode: static input_format: YUV420SP_U8 src_image_size_w: 20 src_image_size_h: 20 "
            "crop: true load_start_pos_w: 3 crop_size_w: 16 crop_size_h: 16 }",
            "E10052",
            ["load_start_pos_w", "multiple of 2"],
        ),
        (
            {"x": [1, 3, 16, 16]},
            "aipp_op { aipp_mode: static input_format: RGB888_U8 related_input_rank: 1 }",
            "E10052",
            ["related_input_rank=1", "1 input"],
        ),
        ({"x": [2, 16]}, "aipp_op { aipp_mode: static input_format: RGB888_U8 }", "E10052", ["4-D", "'x'"]),
        ({"x": [1, 2, 16, 16]}, "aipp_op { aipp_mode: static input_format: RGB888_U8 }", "E10052", ["2 channels"]),
        (
            {"x": [1, 4, 16, 16]},
            "aipp_op { aipp_mode: static input_format: RGB888_U8 }",
            "E10052",
            ["RGB888_U8 gives 3"],
        ),
        (
            {"x": [1, 1, 16, 16]},
            "aipp_op { aipp_mode: static input_format: YUV400_U8 csc_switch: true }",
            "E10052",
            ["csc_switch"],
        ),
    ],
)
def test_model_dependent_errors(
    tmp_path: Path, inputs: dict[str, list[int]], text: str, code: str, words: list[str]
) -> None:
    model = _model(tmp_path / "m.onnx", inputs)
    with pytest.raises(OpenATCError) as info:
        _build(tmp_path, model, text)
    assert info.value.code == code
    for word in words:
        assert word in info.value.message, info.value.message
    assert not (tmp_path / "m.om").exists()


def test_cli_reports_a_config_error_with_its_line(tmp_path: Path, run_cli) -> None:
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, 16, 16]})
    conf = tmp_path / "bad.cfg"
    conf.write_text("aipp_op {\n  aipp_mode : static\n  input_format : YUV420SP_U8\n  crop_sise_w : 4\n}\n")
    result = run_cli(
        f"--model={model}",
        "--framework=5",
        f"--output={tmp_path / 'm'}",
        "--soc_version=cpu",
        f"--insert_op_conf={conf}",
    )
    assert result.code != 0
    assert "E13018" in result.output and "4:" in result.output and "crop_sise_w" in result.output


def test_wrong_image_size_at_run_time(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, 8, 8]})
    om = _build(tmp_path, model, "aipp_op { aipp_mode: static input_format: RGB888_U8 }")
    with openatc.Session(om) as sess, pytest.raises(OpenATCError) as info:
        sess.run({"x": np.zeros((1, 9, 8, 3), np.uint8)})
    assert info.value.code == "E40010" and "[1,8,8,3]" in info.value.message


def test_aipp_input_cannot_be_an_fp16_input(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, 8, 8]})
    with pytest.raises(OpenATCError) as info:
        _build(tmp_path, model, "aipp_op { aipp_mode: static input_format: RGB888_U8 }", input_fp16_nodes="x")
    assert info.value.code == "E10034" and "'x'" in info.value.message


@pytest.mark.parametrize("mode", ["force_fp16", "allow_mix_precision"])
def test_precision_modes_keep_the_pixels(tmp_path: Path, mode: str) -> None:
    """The CSC is integer arithmetic: FP16 precision modes cannot change the converted pixels."""
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, 8, 8]})
    text = "aipp_op { aipp_mode: static input_format: YUV420SP_U8 csc_switch: true }"
    om = _build(tmp_path, model, text, precision_mode=mode)
    raw = np.random.default_rng(2).integers(0, 256, (1, 12, 8, 1), np.uint8)
    with openatc.Session(om) as sess:
        got = sess.run({"x": raw})["x_out"]
    want = reference(
        Aipp("YUV420SP_U8", 8, 8, matrix=[[298, 516, 0], [298, -100, -208], [298, 0, 409]]),
        raw,
        channels=3,
        dtype="float32",
        layout="NCHW",
    )
    np.testing.assert_array_equal(got, want)


def test_static_aipp_with_image_size_gears(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", {"x": [1, 3, "H", "W"]})
    gears = {"input_shape": "x:1,3,-1,-1", "dynamic_image_size": "8,8;16,12"}
    om = _build(tmp_path, model, "aipp_op { aipp_mode: static input_format: YUV420SP_U8 csc_switch: true }", **gears)
    with openatc.Session(om) as sess:
        assert [g["x"] for g in sess.gears] == [(1, 12, 8, 1), (1, 24, 12, 1)]
        for h, w in ((8, 8), (16, 12)):
            raw = np.random.default_rng(h).integers(0, 256, (1, h * 3 // 2, w, 1), np.uint8)
            want = reference(
                Aipp("YUV420SP_U8", w, h, matrix=[[298, 516, 0], [298, -100, -208], [298, 0, 409]]),
                raw,
                channels=3,
                dtype="float32",
                layout="NCHW",
            )
            np.testing.assert_array_equal(sess.run({"x": raw})["x_out"], want)
    with pytest.raises(OpenATCError) as info:
        _build(tmp_path, model, "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 8 }", **gears)
    assert info.value.code == "E10052" and "--dynamic_image_size" in info.value.message
