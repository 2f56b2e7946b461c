"""Fixtures for the frontend tests: TensorFlow graphs frozen once per session.

``tf_graphs`` (session): ``{name: TfGraph}`` for Keras MobileNetV2 (96x96), ResNet50 (64x64) and
EfficientNetB0 (96x96), all ``weights=None`` with logits out, and a small BERT-like encoder
(``input_ids``/``attention_mask`` int32 [1, 32]). Each is frozen to a GraphDef ``.pb`` with
``convert_variables_to_constants_v2``; the reference outputs come from TensorFlow running the same
frozen function on fixed random inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass(frozen=True)
class TfGraph:
    pb: Path
    feeds: dict[str, np.ndarray]  # by TensorFlow tensor name ("input:0")
    expected: dict[str, np.ndarray]  # by TensorFlow tensor name ("Identity:0")


def _tf():  # type: ignore[no-untyped-def]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("tensorflow")


def _freeze(tf, fn, specs, feeds: list[np.ndarray], path: Path) -> TfGraph:  # type: ignore[no-untyped-def]
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(*specs))
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    outs = frozen(*[tf.constant(f) for f in feeds])
    outs = outs if isinstance(outs, list | tuple) else [outs]
    return TfGraph(
        path,
        {t.name: f for t, f in zip(frozen.inputs, feeds, strict=True)},
        {t.name: o.numpy() for t, o in zip(frozen.outputs, outs, strict=True)},
    )


def _keras_app(tf, name: str, size: int, folder: Path) -> TfGraph:  # type: ignore[no-untyped-def]
    import keras

    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    spec = tf.TensorSpec((1, size, size, 3), tf.float32, name="input")
    return _freeze(tf, lambda t: model(t, training=False), [spec], [x], folder / f"{name}.pb")


def _bert_like(tf, folder: Path) -> TfGraph:  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(1)
    vocab, seq, width, heads = 1000, 32, 64, 4
    tok = keras.layers.Embedding(vocab, width)
    pos = keras.layers.Embedding(seq, width)
    blocks = [
        (
            keras.layers.MultiHeadAttention(heads, width // heads),
            keras.layers.LayerNormalization(epsilon=1e-12),
            keras.layers.Dense(4 * width, activation="gelu"),
            keras.layers.Dense(width),
            keras.layers.LayerNormalization(epsilon=1e-12),
        )
        for _ in range(2)
    ]
    pool = keras.layers.Dense(width, activation="tanh")

    def encoder(ids, mask):  # type: ignore[no-untyped-def]
        h = tok(ids) + pos(tf.range(seq))[None]
        attn_mask = tf.cast(mask[:, None, :], tf.bool)
        for att, ln1, ff1, ff2, ln2 in blocks:
            h = ln1(h + att(h, h, attention_mask=attn_mask))
            h = ln2(h + ff2(ff1(h)))
        return h, pool(h[:, 0])

    rng = np.random.default_rng(2)
    ids = rng.integers(0, vocab, (1, seq)).astype(np.int32)
    mask = np.ones((1, seq), np.int32)
    mask[:, 24:] = 0
    specs = [
        tf.TensorSpec((1, seq), tf.int32, name="input_ids"),
        tf.TensorSpec((1, seq), tf.int32, name="attention_mask"),
    ]
    return _freeze(tf, encoder, specs, [ids, mask], folder / "bert_like.pb")


@pytest.fixture(scope="session")
def tf_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TfGraph]:
    tf = _tf()
    pytest.importorskip("tf2onnx")
    folder = tmp_path_factory.mktemp("tf")
    graphs = {
        "MobileNetV2": _keras_app(tf, "MobileNetV2", 96, folder),
        "ResNet50": _keras_app(tf, "ResNet50", 64, folder),
        "EfficientNetB0": _keras_app(tf, "EfficientNetB0", 96, folder),
        "bert_like": _bert_like(tf, folder),
    }
    return graphs
