"""TensorFlow frozen graphs (--framework=3) against TensorFlow itself: cosine >= 0.9999."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import openatc

from ._caffe_util import MIN_COSINE, cosine
from .conftest import TfGraph


def _build(pb: Path, out: Path, **flags: object) -> Path:
    return openatc.build(model=str(pb), framework=3, output=str(out), soc_version="cpu", **flags)


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50", "EfficientNetB0", "bert_like"])
def test_graph_matches_tensorflow(name: str, tf_graphs: dict[str, TfGraph], tmp_path: Path) -> None:
    graph = tf_graphs[name]
    om = _build(graph.pb, tmp_path / name)
    with openatc.Session(om) as sess:
        assert [i.name for i in sess.inputs] == list(graph.feeds)  # TensorFlow tensor names, "input:0"
        assert [o.name for o in sess.outputs] == list(graph.expected)
        if name != "bert_like":
            assert sess.inputs[0].format == "NHWC"  # ATC's default --input_format for TensorFlow
        got = sess.run(graph.feeds)
    for tensor, want in graph.expected.items():
        assert got[tensor].shape == want.shape, tensor
        cos = cosine(got[tensor], want)
        print(f"{name} {tensor} cosine={cos:.7f}")
        assert cos >= MIN_COSINE, (tensor, cos)


def test_input_shape_and_out_nodes_use_tensor_names(tf_graphs: dict[str, TfGraph], tmp_path: Path) -> None:
    """--input_shape and --out_nodes take TensorFlow tensor names (``op:index``)."""
    graph = tf_graphs["bert_like"]
    first = next(iter(graph.expected))
    om = _build(
        graph.pb,
        tmp_path / "cut",
        input_shape="input_ids:0:1,32;attention_mask:0:1,32",
        out_nodes=first,
    )
    with openatc.Session(om) as sess:
        assert [o.name for o in sess.outputs] == [first]
        got = sess.run(graph.feeds)[first]
    assert cosine(got, graph.expected[first]) >= MIN_COSINE


def test_dynamic_batch_needs_input_shape(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    fn = tf.function(lambda x: tf.nn.relu(tf.matmul(x, w))).get_concrete_function(
        tf.TensorSpec((None, 4), tf.float32, name="x")
    )
    pb = tmp_path / "dyn.pb"
    pb.write_bytes(convert_variables_to_constants_v2(fn).graph.as_graph_def().SerializeToString())
    with pytest.raises(openatc.OpenATCError) as info:
        _build(pb, tmp_path / "dyn")
    assert info.value.code == "E10054" and "x:0" in info.value.message
    om = _build(pb, tmp_path / "dyn", input_shape="x:0:5,4")
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    with openatc.Session(om) as sess:
        [out] = sess.run({"x:0": x}).values()
    np.testing.assert_allclose(out, np.maximum(x @ w.numpy(), 0), rtol=1e-5, atol=1e-5)


# -- bad input -------------------------------------------------------------------------------------
def _frozen(tmp_path: Path, fn, *specs) -> Path:  # type: ignore[no-untyped-def]
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    graph = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(*specs)).graph
    pb = tmp_path / "graph.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    return pb


def test_unsupported_ops_listed_at_once(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    pb = _frozen(
        tmp_path,
        lambda x: tf.math.igamma(x, x) + tf.math.lgamma(x) + tf.math.lgamma(x + 1) + tf.math.zeta(x, x),
        tf.TensorSpec((2, 3), tf.float32, name="x"),
    )
    with pytest.raises(openatc.OpenATCError) as info:
        _build(pb, tmp_path / "m")
    message = info.value.message
    assert info.value.code == "E20003"
    for text in ("Igamma x1", "Lgamma x2", "Zeta x1", "graph.pb"):
        assert text in message, message
    assert not (tmp_path / "m.om").exists()


def test_not_a_graphdef(tmp_path: Path, tiny_model: Path) -> None:
    for name, data in [("random.pb", bytes(range(256)) * 4), ("model.pb", tiny_model.read_bytes()), ("t.pb", b"x")]:
        pb = tmp_path / name
        pb.write_bytes(data)
        with pytest.raises(openatc.OpenATCError) as info:
            _build(pb, tmp_path / "m")
        assert info.value.code == "E22001", (name, info.value)
        assert name in info.value.message


def test_graph_with_variables_left(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 4), name="x")
        w = tf.compat.v1.get_variable("w", (4, 2), use_resource=False)
        tf.identity(tf.matmul(x, w), name="y")
    pb = tmp_path / "unfrozen.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(openatc.OpenATCError) as info:
        _build(pb, tmp_path / "m")
    assert info.value.code == "E22002"
    assert "'w' (VariableV2)" in info.value.message


def test_weight_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tf = pytest.importorskip("tensorflow")
    pb = _frozen(tmp_path, lambda x: tf.nn.relu(x), tf.TensorSpec((2, 3), tf.float32, name="x"))
    weight = tmp_path / "unused.caffemodel"
    weight.write_bytes(b"unused")
    with caplog.at_level("WARNING", logger="openatc"):
        om = _build(pb, tmp_path / "w", weight=str(weight))
    assert om.is_file()
    assert any("--weight" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


def test_saved_model(tmp_path: Path) -> None:
    """A SavedModel, given by its saved_model.pb: the serving signature is frozen and converted."""
    tf = pytest.importorskip("tensorflow")

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec((2, 4), tf.float32, name="x")])
        def __call__(self, x):  # type: ignore[no-untyped-def]
            return {"y": tf.nn.sigmoid(tf.matmul(x, self.w))}

    module = Affine()
    folder = tmp_path / "saved"
    tf.saved_model.save(module, str(folder), signatures=module.__call__)
    om = _build(folder / "saved_model.pb", tmp_path / "sm")
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    with openatc.Session(om) as sess:
        [name] = [i.name for i in sess.inputs]
        [out] = sess.run({name: x}).values()
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(x @ module.w.numpy()))), rtol=1e-5, atol=1e-6)


def test_cli_builds_a_frozen_graph(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from openatc.cli import SUCCESS

    tf = pytest.importorskip("tensorflow")
    pb = _frozen(tmp_path, lambda x: tf.nn.relu(x) * 2.0, tf.TensorSpec((1, 8, 8, 3), tf.float32, name="image"))
    out = tmp_path / "net"
    result = run_cli(f"--model={pb}", "--framework=3", f"--output={out}", "--soc_version=cpu")
    assert result.code == 0, result.output
    assert SUCCESS in result.out
    with openatc.Session(tmp_path / "net.om") as sess:
        assert [(i.name, i.format) for i in sess.inputs] == [("image:0", "NHWC")]


def test_dynamic_batch_gears(tmp_path: Path) -> None:
    """A Placeholder with a free batch: --input_shape="x:0:-1,4" with --dynamic_batch_size builds one gear per batch."""
    tf = pytest.importorskip("tensorflow")
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    pb = _frozen(tmp_path, lambda x: tf.nn.relu(tf.matmul(x, w)), tf.TensorSpec((None, 4), tf.float32, name="x"))
    om = _build(pb, tmp_path / "gears", input_shape="x:0:-1,4", dynamic_batch_size="1,2,8", input_format="ND")
    with openatc.Session(om) as sess:
        for batch in (1, 2, 8):
            x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
            [out] = sess.run({"x:0": x}).values()
            np.testing.assert_allclose(out, np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
