"""A caffemodel writer: random blobs of the right shapes for a prototxt (tests and examples).

``write_caffemodel(prototxt, path)`` walks the net exactly as the converter does and stores, per
layer with parameters, the blobs Caffe would hold (weights, bias, BatchNorm mean/variance/factor,
...) in the current layer format, or in the V1 format with ``v1=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._convert import BlobSource, convert_net
from ._layers import HANDLERS, declare_inputs
from ._proto import caffe_pb, parse_prototxt

__all__ = ["write_caffemodel"]


@dataclass
class RandomBlobs(BlobSource):
    """Makes blobs: He-scaled weights, small biases, positive variances and scales."""

    rng: np.random.Generator
    made: dict[str, list[tuple[np.ndarray, tuple[int, ...]]]] = field(default_factory=dict)

    def get(self, layer: Any, index: int, shape: tuple[int, ...], kind: str, optional: bool) -> np.ndarray:
        size = math.prod(shape)
        if kind == "weights":
            fan_in = size // shape[0] if layer.type != "Deconvolution" else size // shape[1]
            if layer.type == "InnerProduct" and layer.inner_product_param.transpose:
                fan_in = shape[0]
            data = self.rng.standard_normal(size, dtype=np.float32) * np.float32(math.sqrt(2.0 / max(fan_in, 1)))
        elif kind == "variance":
            data = self.rng.uniform(0.5, 1.5, size) * 3.0
        elif kind == "moving_average_factor":
            data = np.array([3.0])
        elif kind in ("scale", "slope"):
            data = self.rng.uniform(0.5, 1.5, size) if kind == "scale" else self.rng.uniform(0.05, 0.3, size)
        elif kind == "mean":
            data = self.rng.standard_normal(size) * 0.1 * 3.0
        else:
            data = self.rng.standard_normal(size) * 0.1
        array = data.astype(np.float32).reshape(shape)
        blobs = self.made.setdefault(layer.name, [])
        while len(blobs) <= index:
            blobs.append((np.zeros(0, np.float32), ()))
        blobs[index] = (array, shape)
        return array


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _packed_floats(field_number: int, array: np.ndarray) -> bytes:
    """A packed ``repeated float`` field, encoded directly: extending a repeated field value by value is slow."""
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def write_caffemodel(
    prototxt: Path | str,
    path: Path | str,
    *,
    seed: int = 0,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    v1: bool = False,
    out_nodes: tuple[str, ...] = (),
) -> dict[str, list[np.ndarray]]:
    """Writes ``path`` with random blobs for every parameterized layer of ``prototxt``; returns them.

    ``out_nodes`` limits the walk to the layers those tops need (as ``--out_nodes`` does), e.g. to
    leave out a layer openatc does not convert.
    """
    net = parse_prototxt(Path(prototxt))
    source = RandomBlobs(np.random.default_rng(seed))
    convert_net(
        net, source, HANDLERS, declare_inputs, input_shapes=input_shapes or {}, out_nodes=out_nodes, path=str(prototxt)
    )
    pb = caffe_pb()
    out = pb.NetParameter(name=net.name)
    types = {layer.name: layer.type for layer in net.layer}
    v1_numbers = pb.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"].values_by_name
    from ._proto import _V1_TYPES

    v1_by_type = {t: n for n, t in _V1_TYPES.items()}
    # Like Caffe, every layer is saved (with its blobs, if any); V1 files skip types V1 cannot name.
    for name, type_ in types.items():
        if v1 and type_ not in v1_by_type:
            continue
        layer = out.layers.add() if v1 else out.layer.add()
        layer.name = name
        if v1:
            layer.type = v1_numbers[v1_by_type[type_]].number
        else:
            layer.type = type_
        for array, shape in source.made.get(name, []):
            blob = layer.blobs.add()
            if v1:  # V1 blobs carry num/channels/height/width
                dims = (1,) * (4 - len(shape)) + shape if len(shape) <= 4 else shape
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(shape)
            blob.MergeFromString(_packed_floats(5, array))
    Path(path).write_bytes(out.SerializeToString())
    return {name: [a for a, _ in blobs] for name, blobs in source.made.items()}
