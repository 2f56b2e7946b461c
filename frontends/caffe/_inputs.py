"""Graph inputs of a Caffe net: Input/Data-like layers and the old ``input:``/``input_dim:`` declarations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openatc.errors import OpenATCError

from ._convert import BATCH, Blob, Walk

__all__ = ["declare_inputs"]


def declare_inputs(walk: Walk, source: Any, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Graph inputs from an input layer or from the old-style ``input:``/``input_shape:`` of the net."""
    if hasattr(source, "layer"):  # the NetParameter itself
        net = source
        dims = [list(s.dim) for s in net.input_shape]
        if not dims and net.input_dim:
            flat = list(net.input_dim)
            dims = [flat[i : i + 4] for i in range(0, len(flat), 4)]
        for i, name in enumerate(net.input):
            _add_input(walk, name, dims[i] if i < len(dims) else None, shapes, "net input")
        return
    layer = source
    walk.layer = layer
    found: list[list[int] | None]
    if layer.type == "Input":
        specs = [list(s.dim) for s in layer.input_param.shape]
        found = [specs[i] if i < len(specs) else (specs[0] if len(specs) == 1 else None) for i in range(len(layer.top))]
    elif layer.type == "MemoryData":
        p = layer.memory_data_param
        found = [[p.batch_size, p.channels, p.height, p.width]] if p.batch_size else [None]
    elif layer.type == "DummyData":
        p = layer.dummy_data_param
        found = [list(s.dim) for s in p.shape] or [
            [p.num[i], p.channels[i], p.height[i], p.width[i]] for i in range(len(p.num))
        ]
    elif layer.type == "ImageData" and layer.image_data_param.new_height:
        p = layer.image_data_param
        found = [[p.batch_size, 3 if p.is_color else 1, p.new_height, p.new_width]]
    else:
        found = [None]
    # Data layers' second top is the label: only used by training-only layers, never an input.
    for i, top in enumerate(layer.top[: 1 if layer.type != "Input" else None]):
        _add_input(walk, top, found[i] if i < len(found) else None, shapes, f"layer '{layer.name}' ({layer.type})")


def _add_input(walk: Walk, name: str, dims: list[int] | None, shapes: Mapping[str, tuple[int, ...]], what: str) -> None:
    given = shapes.get(name)
    if given is not None and any(d < 0 for d in given):
        if any(d < 0 for d in given[1:]) or any(d == 0 for d in given):
            raise OpenATCError(
                "E10055",
                f"--input_shape gives Caffe input '{name}' dynamic dims {list(given)}: the Caffe frontend "
                "converts a dynamic batch (dim 0) only",
                hint="Give the other dims fixed values, or export the net to ONNX for other dynamic dims.",
            )
        given = (BATCH, *given[1:])  # converted with a stand-in batch; made symbolic in convert_net
        walk.dynamic_batch = True
    if given is not None and (dims is None or len(given) == len(dims)):
        dims = list(given)
    if dims is None or any(d <= 0 for d in dims):
        raise OpenATCError(
            "E10054",
            f"the shape of Caffe input '{name}' ({what}) is not given in the prototxt; --input_shape must give it",
            hint=f'Add --input_shape="{name}:1,3,224,224" (with your sizes).',
        )
    blob = Blob(name, tuple(int(d) for d in dims))
    walk.blobs[name] = blob
    walk.inputs.append(blob)
