"""Helpers over onnx_ir models shared by the pipeline, the backends and the tools."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir

from openatc.types import TensorSpec

__all__ = [
    "WEIGHT_LOCATION",
    "WEIGHT_MIN_BYTES",
    "count_nodes",
    "op_histogram",
    "point_stubs_at",
    "split_weights",
    "stub_names",
    "value_spec",
    "walk_nodes",
]

#: The external-data location that marks an initializer stub whose data lives in the weights section.
WEIGHT_LOCATION = "openatc:weights"
#: Initializers at least this large go to the shared weights section; smaller ones stay in the graph.
WEIGHT_MIN_BYTES = 1024


#: Standard ops with graph attributes; nodes of other domains are looked at too.
_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def walk_nodes(graph: ir.Graph | ir.Function) -> Iterator[ir.Node]:
    """Every node of ``graph`` and of its subgraphs, each node before its subgraphs' nodes: the
    order of ``ir.traversal.RecursiveGraphIterator``, which looks at every node's attributes (only
    If/Loop/Scan/SequenceMap and ops of other domains are looked at here)."""
    for node in graph:
        yield node
        if node.op_type not in _SUBGRAPH_OPS and node.domain in ("", "ai.onnx"):
            continue
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                yield from walk_nodes(attr.value)
            elif attr.type == ir.AttributeType.GRAPHS:
                for subgraph in attr.value:
                    yield from walk_nodes(subgraph)


def count_nodes(graph: ir.Graph | ir.Function) -> int:
    """Number of nodes, counting those of subgraphs (If/Loop/Scan bodies) too."""
    return sum(1 for _ in walk_nodes(graph))


def op_histogram(graph: ir.Graph) -> dict[str, int]:
    counts = Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in graph)
    return dict(sorted(counts.items()))


def value_spec(value: ir.Value, fmt: str = "ND") -> TensorSpec:
    """The TensorSpec of a graph input/output; unknown dtypes are reported as ``"unknown"``."""
    dtype = "unknown"
    if isinstance(value.type, ir.TensorType):
        try:
            dtype = np.dtype(value.dtype.numpy()).name if value.dtype is not None else "unknown"
        except (TypeError, ValueError, NotImplementedError):
            dtype = value.dtype.name.lower() if value.dtype is not None else "unknown"
    elif value.type is not None:
        dtype = str(value.type)
    dims: tuple[int | str, ...] = ()
    if value.shape is not None:
        dims = tuple(d if isinstance(d, int) else (str(d.value) if d.value else "?") for d in value.shape)
    if "openatc.aipp" in value.metadata_props:  # a raw-image input made by openatc.aipp: uint8 NHWC
        return TensorSpec(value.name or "", dtype, dims, "NHWC", json.loads(value.metadata_props["openatc.aipp"]))
    return TensorSpec(value.name or "", dtype, dims, fmt)


def split_weights(model: ir.Model, min_bytes: int = WEIGHT_MIN_BYTES) -> tuple[bytes, dict[str, np.ndarray]]:
    """Serializes ``model`` with its large main-graph initializers replaced by stubs.

    A stub keeps name, dtype and dims, with ``data_location=EXTERNAL`` and location
    :data:`WEIGHT_LOCATION`; the returned dict maps the stubbed names to their arrays. Serialization
    is deterministic, so identical models give identical bytes.
    """
    weights: dict[str, np.ndarray] = {}
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is None or tensor.dtype == ir.DataType.STRING or tensor.nbytes < min_bytes:
            continue
        try:
            array = tensor.numpy()
        except Exception:  # noqa: BLE001 - packed sub-byte types etc. stay inline
            continue
        if array.dtype.itemsize * array.size != tensor.nbytes:
            continue  # packed 4-bit/2-bit data: keep inline
        weights[name] = np.ascontiguousarray(array)
    # serialized without the weights (no copy of them), then stubs put in their place in the same order
    initializers = dict(model.graph.initializers)
    dtypes = {name: initializers[name].const_value.dtype for name in weights}  # type: ignore[union-attr]
    for name in weights:
        model.graph.initializers.pop(name)
    try:
        proto = ir.to_proto(model)
    finally:
        model.graph.initializers.clear()
        for value in initializers.values():
            model.graph.register_initializer(value)
    inline = {init.name: init for init in proto.graph.initializer}
    ordered = []
    for name in initializers:
        if name in weights:
            stub = onnx.TensorProto(name=name, dims=weights[name].shape, data_type=int(dtypes[name]))
            _make_stub(stub, weights[name].nbytes)
            ordered.append(stub)
        elif name in inline:
            ordered.append(inline[name])
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(ordered)
    return proto.SerializeToString(deterministic=True), weights


def _make_stub(init: onnx.TensorProto, nbytes: int) -> None:
    name, dims, data_type = init.name, list(init.dims), init.data_type
    init.Clear()
    init.name = name
    init.dims.extend(dims)
    init.data_type = data_type
    init.data_location = onnx.TensorProto.EXTERNAL
    for key, val in (("location", WEIGHT_LOCATION), ("offset", "0"), ("length", str(nbytes))):
        entry = init.external_data.add()
        entry.key, entry.value = key, val


def point_stubs_at(model: onnx.ModelProto, location: str, offsets: dict[str, int]) -> list[str]:
    """Rewrites weight stubs to reference ``location`` at the given absolute byte offsets.

    Returns the names rewritten. Used by backends whose engine reads external data itself
    (ONNX Runtime's optimizers read initializer bytes from the file the stub names).
    """
    names = []
    for init in model.graph.initializer:
        if init.name not in offsets or not _is_stub(init):
            continue
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
            elif entry.key == "offset":
                entry.value = str(offsets[init.name])
        names.append(init.name)
    return names


def _is_stub(init: onnx.TensorProto) -> bool:
    return init.data_location == onnx.TensorProto.EXTERNAL and any(
        e.key == "location" and e.value == WEIGHT_LOCATION for e in init.external_data
    )


def stub_names(model: onnx.ModelProto) -> list[str]:
    """Names of the main-graph initializers that are weight stubs."""
    return [init.name for init in model.graph.initializer if _is_stub(init)]


def intermediate_bytes(graph: ir.Graph) -> int:
    """Sum of the sizes of all node outputs with static shapes (activations, no memory reuse)."""
    total = 0
    for node in graph:
        for value in node.outputs:
            if value.dtype is None or value.shape is None or not value.shape.is_static():
                continue
            try:
                itemsize = value.dtype.itemsize
            except (AttributeError, TypeError, ValueError):
                continue
            count = 1
            for d in value.shape:
                count *= int(d)
            total += int(count * itemsize)
    return total


def expose_intermediates(graph: bytes) -> onnx.ModelProto:
    """The serialized gear graph with every main-graph node output added as a graph output."""
    model = onnx.ModelProto.FromString(graph)
    existing = {o.name for o in model.graph.output}
    infos = {v.name: v for v in model.graph.value_info}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in existing:
                existing.add(name)
                model.graph.output.append(infos.get(name) or onnx.ValueInfoProto(name=name))
    return model
