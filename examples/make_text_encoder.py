#!/usr/bin/env python3
"""Build the bundled example model ``examples/text_encoder.onnx``.

The model is a token embedding followed by ONE transformer encoder layer, equivalent to
PyTorch (in eval mode)::

    embed = nn.Embedding(VOCAB_SIZE, D_MODEL)
    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, dim_feedforward=2048, dropout=0.1,
                                       activation="relu", batch_first=True, norm_first=False)
    last_hidden_state = layer(embed(input_ids))

The graph is laid out the way torch's ONNX exporter lays it out: ``Gather`` for the embedding,
Q/K/V projections as ``MatMul`` + ``Add`` with pre-transposed weights, a
``Shape -> Gather -> Unsqueeze -> Concat`` subgraph feeding the head ``Reshape``s (so the model
stays valid with symbolic ``batch``/``seq`` dims), ``Transpose`` into heads, scaled dot-product
attention (``MatMul``, ``Div`` by sqrt(head_dim), ``Softmax``, ``MatMul``), ``Transpose`` /
``Reshape`` back, the output projection, residual ``Add`` + ``LayerNormalization`` (post-norm),
the ReLU feed-forward block, and a second residual ``Add`` + ``LayerNormalization``.

Input ``input_ids``: int64 ``[batch, seq]``; output ``last_hidden_state``: float32
``[batch, seq, 512]``. Opset 17 (ai.onnx). Weights are float32 drawn from
``numpy.random.default_rng(seed)``; the output file is byte-identical on every run.

Only onnx and numpy are needed; torch is not. ``build_weights`` returns the weights under the
names torch's ``state_dict`` would use (``embed.weight``, ``layer.self_attn.in_proj_weight``,
...), so the same numbers can be loaded into the PyTorch modules above for cross-checking.

Usage::

    python examples/make_text_encoder.py [OUTPUT_PATH]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB_SIZE = 4096
D_MODEL = 512
NHEAD = 8
HEAD_DIM = D_MODEL // NHEAD
DIM_FEEDFORWARD = 2048
LAYER_NORM_EPS = 1e-5
OPSET = 17
IR_VERSION = 8  # IR version that introduced opset 17; keeps the file loadable by older runtimes.
SEED = 0

INPUT_NAME = "input_ids"
OUTPUT_NAME = "last_hidden_state"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "text_encoder.onnx"

# name -> shape, in the order the random numbers are drawn (changing the order changes the weights).
WEIGHT_SHAPES: dict[str, tuple[int, ...]] = {
    "embed.weight": (VOCAB_SIZE, D_MODEL),
    "layer.self_attn.in_proj_weight": (3 * D_MODEL, D_MODEL),
    "layer.self_attn.in_proj_bias": (3 * D_MODEL,),
    "layer.self_attn.out_proj.weight": (D_MODEL, D_MODEL),
    "layer.self_attn.out_proj.bias": (D_MODEL,),
    "layer.linear1.weight": (DIM_FEEDFORWARD, D_MODEL),
    "layer.linear1.bias": (DIM_FEEDFORWARD,),
    "layer.linear2.weight": (D_MODEL, DIM_FEEDFORWARD),
    "layer.linear2.bias": (D_MODEL,),
    "layer.norm1.weight": (D_MODEL,),
    "layer.norm1.bias": (D_MODEL,),
    "layer.norm2.weight": (D_MODEL,),
    "layer.norm2.bias": (D_MODEL,),
}


def build_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic float32 weights keyed like torch's ``state_dict``.

    Scaling: embedding rows ~ N(0, 1) (torch's ``nn.Embedding`` init); linear weights
    ~ N(0, 1/fan_in) so activations stay O(1) and the attention softmax is far from uniform;
    biases ~ N(0, 0.02^2); LayerNorm gamma = 1 + N(0, 0.02^2), beta ~ N(0, 0.02^2).
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in WEIGHT_SHAPES.items():
        noise = rng.standard_normal(shape, dtype=np.float32)
        if name == "embed.weight":
            value = noise
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight"):
            value = np.float32(1.0) + np.float32(0.02) * noise
        elif len(shape) == 2:  # linear / projection weight, [out_features, in_features]
            value = noise * np.float32(1.0 / math.sqrt(shape[1]))
        else:  # biases and LayerNorm beta
            value = np.float32(0.02) * noise
        weights[name] = np.asarray(value, dtype=np.float32)
    return weights


class _GraphBuilder:
    """Tiny helper collecting nodes and initializers with exporter-like unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counts: dict[str, int] = {}

    def _name(self, op_type: str) -> str:
        index = self._counts.get(op_type, 0)
        self._counts[op_type] = index + 1
        return f"/{op_type}_{index}"

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def constant(self, array: np.ndarray) -> str:
        node_name = self._name("Constant")
        output = f"{node_name}_output_0"
        value = numpy_helper.from_array(array, output)  # (ascontiguousarray would make 0-d 1-d)
        self.nodes.append(helper.make_node("Constant", [], [output], name=node_name, value=value))
        return output

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: object) -> str:
        node_name = self._name(op_type)
        out = output or f"{node_name}_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=node_name, **attrs))
        return out

    def linear(self, x: str, weight_t: str, bias: str) -> str:
        """``x @ weight_t + bias`` as the exporter emits ``nn.Linear`` (MatMul + Add)."""
        return self.op("Add", [bias, self.op("MatMul", [x, weight_t])])

    def layer_norm(self, x: str, scale: str, bias: str, output: str | None = None) -> str:
        return self.op("LayerNormalization", [x, scale, bias], output, axis=-1, epsilon=LAYER_NORM_EPS)


def build_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Build the ONNX model from weights as returned by :func:`build_weights`."""
    g = _GraphBuilder()
    prefix = "layer."
    e = D_MODEL

    embed = g.initializer("embed.weight", weights["embed.weight"])
    in_w = weights[prefix + "self_attn.in_proj_weight"]
    in_b = weights[prefix + "self_attn.in_proj_bias"]
    # torch splits the packed in-projection into q/k/v chunks; ONNX MatMul wants [in, out].
    proj: dict[str, tuple[str, str]] = {}
    for i, part in enumerate(("q", "k", "v")):
        proj[part] = (
            g.initializer(f"{prefix}self_attn.{part}_proj.weight_T", in_w[i * e : (i + 1) * e].T),
            g.initializer(f"{prefix}self_attn.{part}_proj.bias", in_b[i * e : (i + 1) * e]),
        )
    linears: dict[str, tuple[str, str]] = {}
    for mod in ("self_attn.out_proj", "linear1", "linear2"):
        linears[mod] = (
            g.initializer(f"{prefix}{mod}.weight_T", weights[f"{prefix}{mod}.weight"].T),
            g.initializer(f"{prefix}{mod}.bias", weights[f"{prefix}{mod}.bias"]),
        )
    norms: dict[str, tuple[str, str]] = {}
    for mod in ("norm1", "norm2"):
        norms[mod] = (
            g.initializer(f"{prefix}{mod}.weight", weights[f"{prefix}{mod}.weight"]),
            g.initializer(f"{prefix}{mod}.bias", weights[f"{prefix}{mod}.bias"]),
        )

    # Embedding lookup: [batch, seq] -> [batch, seq, d_model].
    x = g.op("Gather", [embed, INPUT_NAME], axis=0)

    # Dynamic shape subgraph (as the exporter emits it): [batch, seq, nhead, head_dim] and
    # [batch, seq, d_model], computed from Shape(x) so symbolic batch/seq stay symbolic.
    shape_x = g.op("Shape", [x])
    axes0 = g.constant(np.array([0], dtype=np.int64))
    batch = g.op("Unsqueeze", [g.op("Gather", [shape_x, g.constant(np.array(0, np.int64))], axis=0), axes0])
    seq = g.op("Unsqueeze", [g.op("Gather", [shape_x, g.constant(np.array(1, np.int64))], axis=0), axes0])
    heads_shape = g.op("Concat", [batch, seq, g.constant(np.array([NHEAD, HEAD_DIM], np.int64))], axis=0)
    merged_shape = g.op("Concat", [batch, seq, g.constant(np.array([D_MODEL], np.int64))], axis=0)

    # Self-attention.
    def heads(part: str, perm: list[int]) -> str:
        y = g.linear(x, *proj[part])
        return g.op("Transpose", [g.op("Reshape", [y, heads_shape])], perm=perm)

    q = heads("q", [0, 2, 1, 3])  # [batch, nhead, seq, head_dim]
    k_t = heads("k", [0, 2, 3, 1])  # [batch, nhead, head_dim, seq]
    v = heads("v", [0, 2, 1, 3])  # [batch, nhead, seq, head_dim]
    scores = g.op("MatMul", [q, k_t])
    scale = g.constant(np.array(math.sqrt(HEAD_DIM), dtype=np.float32))
    probs = g.op("Softmax", [g.op("Div", [scores, scale])], axis=-1)
    context = g.op("MatMul", [probs, v])  # [batch, nhead, seq, head_dim]
    context = g.op("Transpose", [context], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, merged_shape])  # [batch, seq, d_model]
    attn_out = g.linear(context, *linears["self_attn.out_proj"])

    # Post-norm residual blocks.
    h = g.layer_norm(g.op("Add", [x, attn_out]), *norms["norm1"])
    ff = g.op("Relu", [g.linear(h, *linears["linear1"])])
    ff = g.linear(ff, *linears["linear2"])
    g.layer_norm(g.op("Add", [h, ff]), *norms["norm2"], output=OUTPUT_NAME)

    graph = helper.make_graph(
        g.nodes,
        "text_encoder",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "seq", D_MODEL])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="openatc-examples",
        producer_version="1.0",
        doc_string=(
            f"Embedding({VOCAB_SIZE}, {D_MODEL}) + nn.TransformerEncoderLayer(d_model={D_MODEL}, "
            f"nhead={NHEAD}, dim_feedforward={DIM_FEEDFORWARD}, activation='relu', "
            "batch_first=True, norm_first=False), eval mode."
        ),
    )
    model.ir_version = IR_VERSION
    return model


def write_model(path: Path | str = DEFAULT_OUTPUT, seed: int = SEED) -> Path:
    """Build, check and write the model to ``path``; returns the path."""
    path = Path(path)
    model = build_model(build_weights(seed))
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString(deterministic=True))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the model (default: {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    path = write_model(args.output)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
