"""Identical initializers are stored once, found without hashing every weight."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import onnx_ir as ir

#: Elements of each candidate sampled (evenly strided) for the cheap first comparison.
_SAMPLE = 256


class DeduplicateInitializersPass(ir.passes.InPlacePass):
    """Replaces every initializer equal to an earlier one (dtype, shape and bytes) by that one.

    onnx_ir's ``DeduplicateHashedInitializersPass`` hashes all weights (SHA-512), which costs more
    than the rest of the memory stage on a large model. Here only initializers whose dtype and
    shape collide are looked at, first by a strided sample, and only equal samples are compared
    in full (``numpy.array_equal`` on the bytes). Graph inputs and outputs are left alone.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {"duplicates": 0}
        for graph in model.graphs():
            groups: dict[tuple[object, tuple[int, ...]], list[ir.Value]] = defaultdict(list)
            for value in graph.initializers.values():
                tensor = value.const_value
                if tensor is None or value.is_graph_input() or value.is_graph_output():
                    continue
                groups[(tensor.dtype, tuple(tensor.shape.numpy()))].append(value)
            for values in groups.values():
                if len(values) > 1:
                    self._dedup(graph, values)
        return ir.passes.PassResult(model, modified=self.hits["duplicates"] > 0)

    def _dedup(self, graph: ir.Graph, values: list[ir.Value]) -> None:
        kept: dict[bytes, list[ir.Value]] = defaultdict(list)  # sample digest -> distinct values
        for value in values:
            data = _bytes(value)
            if data is None:
                return  # string or packed tensors: not deduplicated
            step = max(1, data.size // _SAMPLE)
            key = hashlib.blake2b(data[::step].tobytes(), digest_size=16).digest()
            del data  # a lazily loaded tensor gives a fresh copy: hold none while scanning
            same = next((v for v in kept[key] if _equal(v, value)), None)
            if same is None:
                kept[key].append(value)
                continue
            value.replace_all_uses_with(same)
            assert value.name is not None
            graph.initializers.pop(value.name)
            self.hits["duplicates"] += 1


def _bytes(value: ir.Value) -> np.ndarray | None:
    assert value.const_value is not None
    try:
        return np.ascontiguousarray(value.const_value.numpy()).reshape(-1).view(np.uint8)
    except Exception:  # noqa: BLE001 - string or packed tensors
        return None


def _equal(a: ir.Value, b: ir.Value) -> bool:
    x, y = _bytes(a), _bytes(b)
    return x is not None and y is not None and x.size == y.size and bool(np.array_equal(x, y))
