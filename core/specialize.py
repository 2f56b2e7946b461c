"""Graph edits driven by flags: --input_shape, --out_nodes, --output_type."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.options import InputShape, OutputTypeRule

__all__ = ["apply_input_shapes", "apply_output_types", "check_static_inputs", "cut_outputs"]

logger = logging.getLogger(__name__)


def _names(values: Sequence[ir.Value], limit: int = 12) -> str:
    names = [v.name or "?" for v in values]
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def apply_input_shapes(model: ir.Model, shapes: Sequence[InputShape]) -> None:
    """Fixes the shapes of the named graph inputs (E10016 unknown name, E10049 rank, E10002 clash)."""
    inputs = {v.name: v for v in model.graph.inputs}
    for entry in shapes:
        value = inputs.get(entry.name)
        if value is None:
            raise OpenATCError(
                "E10016",
                f"--input_shape names '{entry.name}', which is not an input of the model; "
                f"inputs: {_names(model.graph.inputs)}",
            )
        old = value.shape
        if old is not None and len(old) != len(entry.dims):
            raise OpenATCError(
                "E10049",
                f"--input_shape gives input '{entry.name}' {len(entry.dims)} dims {list(entry.dims)}, "
                f"but it has rank {len(old)} {_shape_text(old)}",
            )
        if old is not None:
            for axis, (have, want) in enumerate(zip(old, entry.dims, strict=True)):
                if isinstance(have, int) and have >= 0 and have != want:  # -1: old exporters' "dynamic"
                    raise OpenATCError(
                        "E10002",
                        f"--input_shape sets dim {axis} of input '{entry.name}' to {want}, but the model "
                        f"fixes it to {have} {_shape_text(old)}",
                        hint="Only dynamic dimensions can be set.",
                    )
        value.shape = ir.Shape(entry.dims)


def _shape_text(shape: ir.Shape) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else (d.value or "?") for d in shape) + "]"


def check_static_inputs(model: ir.Model) -> None:
    """Every tensor input must have fixed dims after --input_shape (no gears yet)."""
    for value in model.graph.inputs:
        if not isinstance(value.type, ir.TensorType) or value.shape is None:
            continue
        dynamic = [i for i, d in enumerate(value.shape) if not isinstance(d, int) or d < 0]
        if dynamic:
            example = ",".join("1" if not isinstance(d, int) or d < 0 else str(d) for d in value.shape)
            raise OpenATCError(
                "E10054",
                f"input '{value.name}' has dynamic dimensions {_shape_text(value.shape)}; --input_shape must fix them",
                hint=f'Add --input_shape="{value.name}:{example}" (with your sizes).',
            )


def cut_outputs(model: ir.Model, out_nodes: Sequence[str]) -> None:
    """Makes ``out_nodes`` the graph outputs: value names, or ``node:index``."""
    if not out_nodes:
        return
    graph = model.graph
    values: dict[str, ir.Value] = {v.name: v for v in graph.inputs if v.name}
    nodes: dict[str, ir.Node] = {}
    for node in graph:
        if node.name:
            nodes[node.name] = node
        for out in node.outputs:
            if out.name:
                values[out.name] = out
    chosen: list[ir.Value] = []
    for entry in out_nodes:
        value = values.get(entry)
        node_name, _, index = entry.rpartition(":")
        if value is None and index.isdigit() and node_name in nodes:
            outputs = nodes[node_name].outputs
            if int(index) >= len(outputs):
                raise OpenATCError(
                    "E10016",
                    f"--out_nodes entry '{entry}': node '{node_name}' has {len(outputs)} output(s)",
                )
            value = outputs[int(index)]
        if value is None:
            raise OpenATCError(
                "E10016",
                f"--out_nodes entry '{entry}' names no node output or tensor of the model; "
                f"graph outputs: {_names(graph.outputs)}",
                hint="Use a tensor name, or node_name:output_index.",
            )
        if value.producer() is None:  # an input or an initializer: give it a producer
            copy = ir.node("Identity", [value], outputs=[ir.Value(name=f"{value.name}_out")])
            graph.append(copy)
            value = copy.outputs[0]
            value.dtype, value.shape = copy.inputs[0].dtype, copy.inputs[0].shape
        if value not in chosen:
            chosen.append(value)
    graph.outputs.clear()
    graph.outputs.extend(chosen)


_FLOATS = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16}


def apply_output_types(
    model: ir.Model, dtype: str | None, rules: Sequence[OutputTypeRule], out_nodes: Sequence[str]
) -> None:
    """Casts outputs to --output_type, keeping each output's name for the user."""
    targets: dict[int, ir.DataType] = {}
    if dtype is not None:
        target = ir.DataType.from_numpy(np.dtype(dtype))
        for i, value in enumerate(model.graph.outputs):
            if value.dtype in _FLOATS:
                targets[i] = target
            else:
                logger.info("--output_type: output '%s' (%s) is not floating point; kept", value.name, value.dtype)
    for rule in rules:
        targets[list(out_nodes).index(f"{rule.node}:{rule.index}")] = ir.DataType.from_numpy(np.dtype(rule.dtype))
    for i, target in sorted(targets.items()):
        value = model.graph.outputs[i]
        if value.dtype == target:
            continue
        name = value.name or f"output_{i}"
        if value.producer() is not None:  # the cast output takes over the user-visible name
            value.name = f"{name}__before_cast"
        else:  # a graph input passed through: its name belongs to the input
            name = f"{name}_{target.name.lower()}"
        cast = ir.node("Cast", [value], attributes={"to": target}, name=f"{name}_output_cast")
        out = cast.outputs[0]
        out.name, out.dtype, out.shape = name, target, value.shape
        model.graph.append(cast)
        model.graph.outputs[i] = out
