"""Parsing --insert_op_conf: the real configurations of spec 2.12, ATC's defaults, every error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from openatc import OpenATCError
from openatc.aipp import parse_aipp_config, parse_aipp_text
from openatc.aipp._proto import proto_text
from openatc.aipp.insert import check_conflicts

DATA = Path(__file__).resolve().parents[1] / "data" / "aipp"
ROOT = Path(__file__).resolve().parents[2]


def test_the_proto_file_is_generated_from_the_table() -> None:
    assert (ROOT / "core" / "aipp" / "insert_op.proto").read_text() == proto_text(), (
        f"regenerate: {sys.executable} -m openatc.aipp._proto > core/aipp/insert_op.proto"
    )


@pytest.mark.parametrize("path", sorted(p.name for p in DATA.iterdir() if p.suffix != ".md"))
def test_every_real_configuration_parses(path: str) -> None:
    (config,) = parse_aipp_config(DATA / path)
    assert config.mode in ("static", "dynamic")


def test_defaults_of_a_real_yuv_config() -> None:
    (c,) = parse_aipp_config(DATA / "samples_vdec_resnet50_aipp.cfg")
    assert (c.input_format, c.src_image_size_w, c.src_image_size_h, c.csc_switch) == ("YUV420SP_U8", 224, 224, True)
    assert c.matrix == ((298, 516, 0), (298, -100, -208), (298, 0, 409))  # ATC's YUV420SP default: BGR
    assert c.input_bias == (16, 128, 128) and c.output_bias == (16, 128, 128)
    assert c.min_chn[:3] == (123.0, 117.0, 104.0) and c.var_reci_chn == (1.0, 1.0, 1.0, 1.0)
    assert c.lines["min_chn_0"] == 10 and c.line == 1


def test_rgb_default_matrix_and_reset_switches() -> None:
    (c,) = parse_aipp_text(
        "aipp_op { aipp_mode: static input_format: RGB888_U8 csc_switch: true crop: false load_start_pos_w: 4 "
        "padding: false left_padding_size: 3 }"
    )
    assert c.matrix == ((66, 129, 25), (-38, -74, 112), (112, -94, -18))
    assert (c.load_start_pos_w, c.left_padding_size) == (0, 0)  # forced to 0 when the switch is off


def test_several_blocks_by_rank_and_comments() -> None:
    configs = parse_aipp_text(
        "# two inputs\naipp_op{\n aipp_mode: static\n input_format: RGB888_U8  # rgb\n}\n"
        "aipp_op {\n aipp_mode : static\n related_input_rank : 1\n input_format : YUV400_U8\n}\n"
    )
    assert [(c.related_input_rank, c.input_format, c.line) for c in configs] == [
        (0, "RGB888_U8", 2),
        (1, "YUV400_U8", 6),
    ]


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("aipp_op {\n aipp_mode: static\n input_formt: RGB888_U8\n}", "E13018", ["3:", "input_formt"]),
        ("aipp_op { aipp_mode: static input_format: BGR }", "E13018", ["BGR"]),
        ("aipp_op {\n input_format: RGB888_U8\n}", "E10052", ["aipp_mode", "line 1"]),
        ("", "E10052", ["no aipp_op"]),
        ("aipp_op {\n aipp_mode: static\n}", "E10052", ["input_format is required"]),
        ("aipp_op {\n aipp_mode: dynamic\n}", "E10052", ["max_src_image_size"]),
        (
            "aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n var_reci_chn_0: 1\n var_reci_chn_0: 2\n}",
            "E10052",
            ["var_reci_chn_0 (line 4)", "repeatedly"],
        ),
        (
            "aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n src_image_size_w: 5000\n}",
            "E10052",
            ["src_image_size_w (line 4)", "out of range"],
        ),
        (
            "aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n src_image_size_w: 8\n src_image_size_h: 8\n"
            " padding: true\n left_padding_size: 33\n}",
            "E10052",
            ["left_padding_size (line 7)", "[0, 32]"],
        ),
        (
            "aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n csc_switch: true\n matrix_r0c0: 40000\n}",
            "E10052",
            ["matrix_r0c0 (line 5)"],
        ),
        ("aipp_op { aipp_mode: static input_format: RGB888_U8 mean_chn_1: 300 }", "E10052", ["mean_chn_1"]),
        ("aipp_op { aipp_mode: static input_format: RGB888_U8 input_bias_2: 256 }", "E10052", ["input_bias_2"]),
        ("aipp_op { aipp_mode: static input_format: RGB888_U8 var_reci_chn_3: 70000 }", "E10052", ["var_reci_chn_3"]),
        ("aipp_op { aipp_mode: static input_format: RGB888_U8 resize: true }", "E10052", ["resize"]),
        ("aipp_op { aipp_mode: static input_format: RGB888_U8 crop: true }", "E10052", ["src_image_size_w"]),
        (
            "aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n src_image_size_w: 8\n src_image_size_h: 8\n"
            " crop: true\n load_start_pos_w: 4\n crop_size_w: 6\n}",
            "E10052",
            ["crop_size_w (line 8)", "4 + 6", "src_image_size_w=8"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 8 src_image_size_h: 8 "
            "crop: true load_start_pos_h: 8 }",
            "E10052",
            ["load_start_pos_h"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 }\naipp_op { aipp_mode: dynamic "
            "related_input_rank: 1 max_src_image_size: 10 }",
            "E10052",
            ["mixed"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 }\naipp_op { aipp_mode: static "
            "input_format: RGB888_U8 }",
            "E10052",
            ["related_input_rank=0", "aipp_op #1"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 related_input_name: 'a' }\n"
            "aipp_op { aipp_mode: static related_input_rank: 1 input_format: RGB888_U8 }",
            "E10052",
            ["related_input_name or related_input_rank"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 0 input_edge_idx: 1 }",
            "E10052",
            ["input_edge_idx cannot be configured repeatedly"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 0 }\n"
            "aipp_op { aipp_mode: static input_format: RGB888_U8 }",
            "E10052",
            ["aipp_op #2", "related_input_rank=0", "input_edge_idx in every one"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 1 }\n"
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 1 }",
            "E10052",
            ["aipp_op #2", "input_edge_idx=1", "already used by aipp_op #1"],
        ),
        (
            "aipp_op { aipp_mode: static input_format: RGB888_U8 input_edge_idx: 0 }\n"
            "aipp_op {\n aipp_mode: static\n input_format: YUV400_U8\n input_edge_idx: 1 }",
            "E10052",
            ["aipp_op #2", "input_format (line 4)", "share one image"],
        ),
    ],
)
def test_configuration_errors_name_the_field_and_line(text: str, code: str, words: list[str]) -> None:
    with pytest.raises(OpenATCError) as info:
        parse_aipp_text(text, "my.cfg")
    assert info.value.code == code
    for word in [*words, "my.cfg"]:
        assert word in info.value.message, info.value.message


def test_conflicts_with_other_flags() -> None:
    (static,) = parse_aipp_text(
        "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 8 src_image_size_h: 8 }"
    )
    with pytest.raises(OpenATCError) as info:
        check_conflicts([static], ["x"], dynamic_dims=True)
    assert info.value.code == "E10001" and "--dynamic_dims" in info.value.message
    with pytest.raises(OpenATCError) as info:
        check_conflicts([static], ["x"], fp16_nodes=["x"])
    assert info.value.code == "E10034" and "'x'" in info.value.message
    with pytest.raises(OpenATCError) as info:
        check_conflicts([static], ["x"], dynamic_image_size=True)
    assert info.value.code == "E10052" and "--dynamic_image_size" in info.value.message
    (plain,) = parse_aipp_text("aipp_op { aipp_mode: static input_format: RGB888_U8 }")
    check_conflicts([plain], ["x"], dynamic_image_size=True, dynamic_batch=True)
