"""Caffe net (NetParameter) to ONNX, layer by layer, with Caffe's own shape rules.

One walk serves two purposes: converting a net with the blobs of a caffemodel
(:func:`convert_net`), and generating a caffemodel with random blobs of the right shapes for a
prototxt (:mod:`.writer`). Each layer handler in :mod:`._layers` asks the walk for its parameter
blobs through :meth:`Walk.param`, which either reads them (checking shapes) or makes them.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from openatc.errors import OpenATCError

from ._proto import inference_layers

__all__ = ["BATCH", "INPUT_TYPES", "SKIPPED_TYPES", "BlobSource", "Walk", "convert_net"]

logger = logging.getLogger(__name__)

OPSET = 21
#: Stand-in batch size while converting a net whose batch is dynamic (-1 in --input_shape): a prime
#: no layer produces by itself, so every dim divisible by it carries the batch.
BATCH = 7919
#: Layer types that become graph inputs.
INPUT_TYPES = frozenset({"Input", "Data", "MemoryData", "DummyData", "ImageData", "HDF5Data", "WindowData"})
#: Training-only layers: dropped from an inference graph (they consume labels).
SKIPPED_TYPES = frozenset(
    {
        "Accuracy",
        "Silence",
        "SoftmaxWithLoss",
        "EuclideanLoss",
        "SigmoidCrossEntropyLoss",
        "HingeLoss",
        "InfogainLoss",
        "MultinomialLogisticLoss",
        "ContrastiveLoss",
        "HDF5Output",
    }
)


class BlobSource:
    """Where parameter blobs come from: a caffemodel (checked) or a random generator (writer)."""

    def get(self, layer: Any, index: int, shape: tuple[int, ...], kind: str, optional: bool) -> np.ndarray | None:
        raise NotImplementedError


@dataclass
class CaffemodelBlobs(BlobSource):
    """Blobs of a caffemodel by layer name; mismatches are collected and reported together."""

    layers: Mapping[str, Any]
    problems: list[str] = field(default_factory=list)

    def get(self, layer: Any, index: int, shape: tuple[int, ...], kind: str, optional: bool) -> np.ndarray | None:
        stored = self.layers.get(layer.name)
        if stored is None:
            if not optional:
                self.problems.append(f"layer '{layer.name}' ({layer.type}) is missing from the caffemodel")
            return None
        if index >= len(stored.blobs):
            if not optional:
                self.problems.append(
                    f"layer '{layer.name}' ({layer.type}) has {len(stored.blobs)} blob(s) in the caffemodel; "
                    f"blob {index} ({kind}, shape {list(shape)}) is missing"
                )
            return None
        blob = stored.blobs[index]
        data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
        if data.size != math.prod(shape):
            have = (
                list(blob.shape.dim) if blob.HasField("shape") else [blob.num, blob.channels, blob.height, blob.width]
            )
            self.problems.append(
                f"layer '{layer.name}' ({layer.type}) blob {index} ({kind}) has shape {have} "
                f"({data.size} values) in the caffemodel, the prototxt needs {list(shape)}"
            )
            return None
        return data.reshape(shape)


@dataclass
class Blob:
    """An ONNX value standing for a Caffe blob, with its static shape."""

    name: str
    shape: tuple[int, ...]


class Walk:
    """The conversion state: ONNX nodes and initializers made so far, blob names to values."""

    def __init__(self, source: BlobSource) -> None:
        self.source = source
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[Blob] = []
        self.blobs: dict[str, Blob] = {}
        self.last_writer: dict[str, int] = {}
        self.index = 0
        self.layer: Any = None
        self.dynamic_batch = False
        self._names: Counter[str] = Counter()

    # -- names --------------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        self._names[base] += 1
        return base if self._names[base] == 1 else f"{base}_{self._names[base] - 1}"

    # -- blobs --------------------------------------------------------------------------------
    def bottom(self, i: int = 0) -> Blob:
        name = self.layer.bottom[i]
        blob = self.blobs.get(name)
        if blob is None:
            raise OpenATCError(
                "E21004",
                f"layer '{self.layer.name}' ({self.layer.type}) reads bottom blob '{name}', which no earlier "
                "layer produces",
                hint="Check the layer order and the bottom/top names in the prototxt.",
            )
        return blob

    def bottoms(self) -> list[Blob]:
        return [self.bottom(i) for i in range(len(self.layer.bottom))]

    def top_name(self, i: int = 0) -> str:
        """The value name of top ``i``: the top's own name when no later layer writes it again."""
        top = self.layer.top[i]
        if self.last_writer.get(top, self.index) == self.index:
            return top
        return self.unique(f"{top}@{self.layer.name}")

    def set_top(self, i: int, name: str, shape: Sequence[int]) -> Blob:
        blob = Blob(name, tuple(int(d) for d in shape))
        self.blobs[self.layer.top[i]] = blob
        return blob

    # -- emitting ------------------------------------------------------------------------------
    def const(self, suffix: str, array: np.ndarray) -> str:
        name = self.unique(f"{self.layer.name}/{suffix}")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, suffix: str, values: Sequence[int]) -> str:
        return self.const(suffix, np.asarray(list(values), dtype=np.int64))

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        """An intermediate node of the current layer; returns its output names."""
        outs = [self.unique(f"{self.layer.name}/{op_type.lower()}") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.unique(outs[0]), **attrs))
        return outs

    def final(self, op_type: str, inputs: Sequence[str], shapes: Sequence[Sequence[int]], **attrs: Any) -> None:
        """The layer's last node, named after the layer, writing all its tops."""
        outs = [self.top_name(i) for i in range(len(shapes))]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.unique(self.layer.name), **attrs))
        for i, shape in enumerate(shapes):
            self.set_top(i, outs[i], shape)

    def param(self, index: int, shape: Sequence[int], kind: str, optional: bool = False) -> np.ndarray | None:
        return self.source.get(self.layer, index, tuple(int(d) for d in shape), kind, optional)


Handler = Callable[[Walk, Any], None]


def _needed_layers(layers: list[Any], out_nodes: Sequence[str]) -> list[Any]:
    """The layers that --out_nodes depends on (all layers when it names none of their tops)."""
    names = {layer.name: layer for layer in layers}
    wanted: set[str] = set()
    for entry in out_nodes:
        node, _, index = entry.rpartition(":")
        if index.isdigit() and node in names and int(index) < len(names[node].top):
            wanted.add(names[node].top[int(index)])
        else:
            wanted.add(entry)
    if not out_nodes or not wanted <= {t for layer in layers for t in layer.top}:
        return layers
    kept: list[Any] = []
    for layer in reversed(layers):
        if wanted & set(layer.top):
            kept.append(layer)
            wanted |= set(layer.bottom)
    return kept[::-1]


def _check_supported(layers: list[Any], handlers: Mapping[str, Handler], path: str) -> None:
    """E20003 listing every unsupported layer type at once (name, type, count)."""
    unknown: Counter[str] = Counter()
    first: dict[str, str] = {}
    for layer in layers:
        if layer.type in handlers or layer.type in INPUT_TYPES or layer.type in SKIPPED_TYPES:
            continue
        unknown[layer.type] += 1
        first.setdefault(layer.type, layer.name)
    if unknown:
        listing = "; ".join(f"{t} x{n} (e.g. layer '{first[t]}')" for t, n in sorted(unknown.items()))
        raise OpenATCError(
            "E20003",
            f"'{path}' uses {sum(unknown.values())} layer(s) of {len(unknown)} unsupported Caffe layer type(s): "
            f"{listing}",
            hint="Replace those layers in the prototxt, or cut the net before them with --out_nodes.",
        )


def convert_net(
    net: Any,
    source: BlobSource,
    handlers: Mapping[str, Handler],
    input_handler: Callable[[Walk, Any, Mapping[str, tuple[int, ...]]], None],
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    out_nodes: Sequence[str] = (),
    path: str = "model",
) -> tuple[onnx.ModelProto, Walk]:
    """Walks the inference layers of ``net``; returns the ONNX model and the walk (for writers)."""
    layers = _needed_layers(inference_layers(net), out_nodes)
    _check_supported(layers, handlers, path)
    walk = Walk(source)
    for i, layer in enumerate(layers):
        for top in layer.top:
            walk.last_writer[top] = i
    input_handler(walk, net, input_shapes)  # the old-style net.input declarations
    consumed: set[str] = set()
    for i, layer in enumerate(layers):
        walk.index, walk.layer = i, layer
        if layer.type in SKIPPED_TYPES:
            logger.info("Caffe layer '%s' (%s) is training-only; dropped", layer.name, layer.type)
            continue
        if layer.type in INPUT_TYPES:
            input_handler(walk, layer, input_shapes)
            continue
        consumed.update(walk.blobs[b].name for b in layer.bottom if b in walk.blobs)
        try:
            handlers[layer.type](walk, layer)
        except OpenATCError:
            raise
        except (ValueError, IndexError, ZeroDivisionError) as exc:
            raise OpenATCError(
                "E21004",
                f"layer '{layer.name}' ({layer.type}) cannot be converted: {exc}",
                hint="Check the layer's parameters and its input shapes.",
            ) from None
    if isinstance(source, CaffemodelBlobs) and source.problems:
        shown = source.problems[:20]
        more = f"; and {len(source.problems) - 20} more" if len(source.problems) > 20 else ""
        raise OpenATCError(
            "E21003",
            f"the caffemodel does not match the prototxt '{path}': " + "; ".join(shown) + more,
            hint="Give the caffemodel trained with this prototxt (layers are matched by name).",
        )
    if walk.dynamic_batch:
        _generalize_batch(walk, path)
    input_names = {b.name for b in walk.inputs}
    outputs: list[Blob] = []
    for blob in walk.blobs.values():
        if blob.name not in consumed and blob.name not in input_names and blob not in outputs:
            outputs.append(blob)
    graph = helper.make_graph(
        walk.nodes,
        net.name or "caffe",
        [helper.make_tensor_value_info(b.name, onnx.TensorProto.FLOAT, _dims(b.shape)) for b in walk.inputs],
        [helper.make_tensor_value_info(b.name, onnx.TensorProto.FLOAT, _dims(b.shape)) for b in outputs],
        walk.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="openatc-caffe")
    return model, walk


def _dims(shape: tuple[int, ...]) -> list[int | str | None]:
    """Declared dims: the stand-in batch becomes the symbolic ``batch``, its multiples unknown."""
    return ["batch" if d == BATCH else (None if d % BATCH == 0 and d else d) for d in shape]


def _generalize_batch(walk: Walk, path: str) -> None:
    """Makes a net converted with the stand-in batch run at any batch.

    Reshape targets get -1 where they carry the batch; any other constant that carries it means a
    layer fixes the batch (E10055).
    """
    reshape_shapes = {n.input[1] for n in walk.nodes if n.op_type == "Reshape"}
    for i, tensor in enumerate(walk.initializers):
        if tensor.data_type != onnx.TensorProto.INT64:
            continue
        values = numpy_helper.to_array(tensor).copy()
        carries = (values % BATCH == 0) & (values != 0)
        if not carries.any():
            continue
        if tensor.name not in reshape_shapes or carries.sum() > 1 or (values == -1).any():
            raise OpenATCError(
                "E10055",
                f"'{path}': a dynamic batch is not supported for this net: '{tensor.name}' depends on the batch size",
                hint="Give a fixed batch in --input_shape.",
            )
        values[carries] = -1
        walk.initializers[i] = numpy_helper.from_array(values, tensor.name)
