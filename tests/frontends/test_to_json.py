"""``--mode=1 --framework=0|3 --om=<original model>``: Caffe and TensorFlow models as JSON, without weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from openatc.cli import main
from openatc.frontends.caffe import write_caffemodel

DATA = Path(__file__).parent.parent / "data" / "caffe"

SMALL = """name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc1" type: "InnerProduct" bottom: "conv1" top: "fc1" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
"""

#: Fields that would hold weights: Caffe blob values, TensorFlow tensor values.
DATA_KEYS = frozenset(
    {"data", "diff", "double_data", "double_diff", "tensor_content", "float_val", "int_val", "half_val", "double_val"}
)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def _dump(*flags: str, json_path: Path) -> dict[str, Any]:
    assert main(["--mode=1", *flags, f"--json={json_path}"]) == 0
    return json.loads(json_path.read_text())


def _fails(code: str, capsys: pytest.CaptureFixture[str], *flags: str, json_path: Path) -> None:
    assert main(["--mode=1", *flags, f"--json={json_path}"]) != 0
    assert code in capsys.readouterr().out
    assert not json_path.exists()


@pytest.fixture
def small_net(tmp_path: Path) -> tuple[Path, Path]:
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    caffemodel = tmp_path / "small.caffemodel"
    write_caffemodel(prototxt, caffemodel, seed=1)
    return prototxt, caffemodel


def test_caffe_prototxt_to_json(small_net: tuple[Path, Path], tmp_path: Path) -> None:
    prototxt, _ = small_net
    data = _dump("--framework=0", f"--om={prototxt}", json_path=tmp_path / "net.json")
    assert set(data) == {"name", "layer"} and data["name"] == "small"
    assert [(la["name"], la["type"]) for la in data["layer"]] == [
        ("data", "Input"),
        ("conv1", "Convolution"),
        ("relu1", "ReLU"),
        ("fc1", "InnerProduct"),
        ("prob", "Softmax"),
    ]
    assert data["layer"][0]["input_param"] == {"shape": [{"dim": [1, 3, 8, 8]}]}
    assert data["layer"][1]["convolution_param"] == {"num_output": 4, "kernel_size": [3], "pad": [1]}


def test_caffe_v1_prototxt_is_dumped_as_written(tmp_path: Path) -> None:
    data = _dump("--framework=0", f"--om={DATA / 'alexnet_v1.prototxt'}", json_path=tmp_path / "alexnet.json")
    assert "layer" not in data and data["input"] == ["data"] and data["input_shape"] == [{"dim": [1, 3, 67, 67]}]
    assert data["layers"][0]["name"] == "conv1" and data["layers"][0]["type"] == "CONVOLUTION"
    assert data["layers"][-1]["type"] == "SOFTMAX"


def test_caffe_weight_dumps_caffemodel_blob_shapes_without_data(small_net: tuple[Path, Path], tmp_path: Path) -> None:
    prototxt, caffemodel = small_net
    data = _dump("--framework=0", f"--om={prototxt}", f"--weight={caffemodel}", json_path=tmp_path / "w.json")
    layers = {la["name"]: la for la in data["layer"]}
    assert list(layers) == ["data", "conv1", "relu1", "fc1", "prob"]
    assert [b["shape"]["dim"] for b in layers["conv1"]["blobs"]] == [[4, 3, 3, 3], [4]]
    assert [b["shape"]["dim"] for b in layers["fc1"]["blobs"]] == [[5, 256], [5]]
    assert not _keys(data) & DATA_KEYS


def test_caffe_bad_prototxt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer { name: "a" type: "ReLU" bogus_field: 1 }\n')
    _fails("E21001", capsys, "--framework=0", f"--om={bad}", json_path=tmp_path / "bad.json")


def test_caffe_bad_caffemodel(small_net: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prototxt, _ = small_net
    flags = ("--framework=0", f"--om={prototxt}", f"--weight={prototxt}")  # text where the caffemodel goes
    _fails("E21002", capsys, *flags, json_path=tmp_path / "bad.json")


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """relu(input @ w + 1.0), frozen: a Placeholder, two Consts, MatMul, AddV2, Relu."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(tf.ones([4, 3]), name="w")

    @tf.function(autograph=False)
    def fn(x):  # type: ignore[no-untyped-def]
        return tf.nn.relu(tf.matmul(x, w) + 1.0, name="out")

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, 4], tf.float32, "input")))
    path = tmp_path_factory.mktemp("tf") / "tiny.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


def _check_graph(data: dict[str, Any]) -> None:
    nodes = {n["name"]: n for n in data["node"]}
    ops = {n["op"] for n in data["node"]}
    assert {"Placeholder", "Const", "MatMul", "Relu"} <= ops and "out" in nodes
    attrs = {a["key"]: a["value"] for a in nodes["input"]["attr"]}  # maps are key/value lists, as in ATC
    assert attrs["dtype"] == {"type": "DT_FLOAT"}
    assert attrs["shape"] == {"shape": {"dim": [{"size": 1}, {"size": 4}]}}
    weights = next(n for n in data["node"] if n["op"] == "Const" and n["name"].startswith("MatMul"))
    tensor = next(a["value"]["tensor"] for a in weights["attr"] if a["key"] == "value")
    assert tensor == {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": 4}, {"size": 3}]}}
    assert not _keys(data) & DATA_KEYS


def test_tensorflow_graph_to_json(tiny_graph: Path, tmp_path: Path) -> None:
    data = _dump("--framework=3", f"--om={tiny_graph}", json_path=tmp_path / "g.json")
    assert "node" in data and "versions" in data
    _check_graph(data)


def test_tensorflow_text_graph_to_json(tiny_graph: Path, tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow.compat.v1 import GraphDef

    text = tmp_path / "tiny.pbtxt"
    text.write_text(text_format.MessageToString(GraphDef.FromString(tiny_graph.read_bytes())))
    _check_graph(_dump("--framework=3", f"--om={text}", json_path=tmp_path / "t.json"))


def test_tensorflow_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorflow")
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00\xffnot a graph\x13" * 8)
    _fails("E22001", capsys, "--framework=3", f"--om={bad}", json_path=tmp_path / "bad.json")
