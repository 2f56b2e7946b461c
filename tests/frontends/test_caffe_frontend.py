"""The Caffe frontend's contract: flags (--weight, --input_shape, --out_nodes), V1 files, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.frontends.caffe import write_caffemodel

from ._caffe_util import build_caffe, run_om

SMALL = """name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
"""


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, dict[str, list[np.ndarray]]]:
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    caffemodel = tmp_path / "small.caffemodel"
    blobs = write_caffemodel(prototxt, caffemodel, seed=5)
    return prototxt, caffemodel, blobs


def _conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], w.shape[0], x.shape[2], x.shape[3]), np.float32)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", pad[:, :, i : i + 3, j : j + 3], w)
    return np.maximum(out + b[None, :, None, None], 0)


def test_out_nodes_by_top_name_takes_the_last_writer(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, blobs = small
    om = build_caffe(prototxt, caffemodel, tmp_path / "m", out_nodes="conv1;fc1")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = run_om(om, {"data": x})
    assert list(got) == ["conv1", "fc1"]
    # "conv1" is the top after the in-place ReLU, as in Caffe (and ATC: the last layer writing a top wins)
    np.testing.assert_allclose(got["conv1"], _conv_relu(x, *blobs["conv1"]), rtol=1e-4, atol=1e-5)


def test_out_nodes_by_layer_and_index(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    om = build_caffe(prototxt, caffemodel, tmp_path / "m", out_nodes="pool1:0")
    with openatc.Session(om) as sess:
        assert [(o.name, o.shape) for o in sess.outputs] == [("pool1", (1, 4, 4, 4))]


def test_input_shape_overrides_the_prototxt(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    text = prototxt.read_text().replace("num_output: 5", "num_output: 5 axis: 1")
    conv_only = tmp_path / "conv_only.prototxt"
    conv_only.write_text(text)
    om = build_caffe(conv_only, caffemodel, tmp_path / "m", input_shape="data:2,3,16,12", out_nodes="pool1")
    with openatc.Session(om) as sess:
        assert sess.inputs[0].shape == (2, 3, 16, 12)
        assert sess.outputs[0].shape == (2, 4, 8, 6)


def test_v1_files_convert_like_current_ones(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    v1_model = tmp_path / "v1.caffemodel"
    write_caffemodel(prototxt, v1_model, seed=5, v1=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    a = run_om(build_caffe(prototxt, caffemodel, tmp_path / "a"), {"data": x})
    b = run_om(build_caffe(prototxt, v1_model, tmp_path / "b"), {"data": x})
    np.testing.assert_array_equal(a["prob"], b["prob"])


def test_training_layers_are_dropped(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    train = prototxt.read_text() + (
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc1" bottom: "label" top: "loss" }\n'
        'layer { name: "drop" type: "Dropout" bottom: "fc1" top: "d" include { phase: TRAIN } }\n'
    )
    path = tmp_path / "train_val.prototxt"
    path.write_text(train)
    with openatc.Session(build_caffe(path, caffemodel, tmp_path / "m")) as sess:
        assert [o.name for o in sess.outputs] == ["prob"]


# -- bad input -------------------------------------------------------------------------------------
def _fails(code: str, *parts: str, **kwargs: object) -> str:
    with pytest.raises(openatc.OpenATCError) as info:
        openatc.build(framework=0, soc_version="cpu", **kwargs)
    assert info.value.code == code, info.value
    for part in parts:
        assert part in info.value.message, info.value.message
    return info.value.message


def test_prototxt_syntax_error_names_line_and_column(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, caffemodel, _ = small
    bad = tmp_path / "bad.prototxt"
    bad.write_text(SMALL.replace('layer { name: "relu1"', 'layer { name: "relu1" kernel: 3'))
    _fails("E21001", "bad.prototxt", "line 5, column 23", "kernel", model=bad, weight=caffemodel, output=tmp_path / "m")
    bad.write_text(SMALL.replace("pool: MAX kernel_size", "pool: MAX { kernel_size"))
    _fails("E21001", "line 7, column 29", model=bad, weight=caffemodel, output=tmp_path / "m")
    assert not (tmp_path / "m.om").exists()


def test_caffemodel_that_does_not_match(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, _, _ = small
    other = tmp_path / "other.prototxt"
    other.write_text(SMALL.replace("num_output: 4", "num_output: 6").replace('name: "fc1"', 'name: "fc_renamed"'))
    caffemodel = tmp_path / "other.caffemodel"
    write_caffemodel(other, caffemodel)
    message = _fails("E21003", model=prototxt, weight=caffemodel, output=tmp_path / "m")
    assert "layer 'conv1' (Convolution) blob 0 (weights) has shape [6, 3, 3, 3]" in message
    assert "needs [4, 3, 3, 3]" in message and "blob 1 (bias)" in message
    assert "layer 'fc1' (InnerProduct) is missing from the caffemodel" in message


def test_weight_that_is_not_a_caffemodel(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, _, _ = small
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff\xff\xff\xff garbage")
    _fails("E21002", "junk.caffemodel", model=prototxt, weight=junk, output=tmp_path / "m")
    text = tmp_path / "text.caffemodel"
    text.write_bytes(prototxt.read_bytes())
    _fails("E21002", "text.caffemodel", "text", model=prototxt, weight=text, output=tmp_path / "m")


def test_files_swapped(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    _fails("E20002", "swapped", model=caffemodel, weight=prototxt, output=tmp_path / "m")


def test_weight_missing_is_e10008(small, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    prototxt, _, _ = small
    result = run_cli(f"--model={prototxt}", "--framework=0", f"--output={tmp_path / 'm'}", "--soc_version=cpu")
    assert result.code != 0
    assert "E10008" in result.out and "--weight" in result.out


def test_unsupported_layers_listed_at_once(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, caffemodel, _ = small
    extra = "".join(
        f'layer {{ name: "{n}" type: "{t}" bottom: "fc1" top: "{n}" }}\n'
        for n, t in [("a", "Python"), ("b", "SPP"), ("c", "Python"), ("d", "Embed")]
    )
    path = tmp_path / "custom.prototxt"
    path.write_text(SMALL + extra)
    message = _fails("E20003", model=path, weight=caffemodel, output=tmp_path / "m")
    assert "4 layer(s) of 3 unsupported Caffe layer type(s)" in message
    for part in ("Python x2 (e.g. layer 'a')", "SPP x1 (e.g. layer 'b')", "Embed x1 (e.g. layer 'd')"):
        assert part in message
    # cut before them with --out_nodes and the net converts
    om = build_caffe(path, caffemodel, tmp_path / "cut", out_nodes="prob")
    assert om.is_file()


def test_unknown_bottom_blob(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, caffemodel, _ = small
    path = tmp_path / "typo.prototxt"
    path.write_text(SMALL.replace('bottom: "pool1" top: "fc1"', 'bottom: "pool_1" top: "fc1"'))
    _fails("E21004", "'fc1'", "'pool_1'", model=path, weight=caffemodel, output=tmp_path / "m")


def test_data_layer_needs_input_shape(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, caffemodel, _ = small
    path = tmp_path / "data_layer.prototxt"
    path.write_text(
        SMALL.replace(
            'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }',
            'layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 4 } }',
        )
    )
    _fails("E10054", "'data'", model=path, weight=caffemodel, output=tmp_path / "m")
    om = build_caffe(path, caffemodel, tmp_path / "m", input_shape="data:4,3,8,8")
    with openatc.Session(om) as sess:
        assert [i.name for i in sess.inputs] == ["data"]


def test_dynamic_dims_other_than_batch_are_refused(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prototxt, caffemodel, _ = small
    _fails(
        "E10055",
        "'data'",
        "dynamic batch",
        model=prototxt,
        weight=caffemodel,
        output=tmp_path / "m",
        input_shape="data:1,3,-1,-1",
        dynamic_image_size="8,8;16,16",
    )


def test_cli_builds_a_caffe_net(small, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from openatc.cli import SUCCESS

    prototxt, caffemodel, _ = small
    result = run_cli(
        f"--model={prototxt}",
        f"--weight={caffemodel}",
        "--framework=0",
        f"--output={tmp_path / 'net'}",
        "--soc_version=cpu",
        "--out_nodes=prob",
    )
    assert result.code == 0, result.output
    assert SUCCESS in result.out
    with openatc.Session(tmp_path / "net.om") as sess:
        assert [i.format for i in sess.inputs] == ["NCHW"]  # ATC's default --input_format for Caffe


def test_weight_with_another_framework_warns(small, tiny_static_model: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    _, caffemodel, _ = small
    result = run_cli(
        f"--model={tiny_static_model}",
        f"--weight={caffemodel}",
        "--framework=5",
        f"--output={tmp_path / 'onnx'}",
        "--soc_version=cpu",
        "--log=warning",
    )
    assert result.code == 0, result.output
    assert any(line.startswith("[WARNING]") and "--weight" in line for line in result.err.splitlines()), result.err
