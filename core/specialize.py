"""Graph edits driven by flags: --input_shape (one gear's shapes), --out_nodes, --output_type."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.options import InputShape, OutputTypeRule

__all__ = [
    "apply_input_shapes",
    "apply_output_types",
    "check_input_shapes",
    "check_static_inputs",
    "cut_outputs",
    "shape_inference_error",
]

logger = logging.getLogger(__name__)


def _names(values: Sequence[ir.Value], limit: int = 12) -> str:
    names = [v.name or "?" for v in values]
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def apply_input_shapes(model: ir.Model, shapes: Sequence[InputShape]) -> None:
    """Sets the shapes of the named graph inputs (E10016 unknown name, E10049 rank, E10002 clash).

    A ``-1`` dim (a range compile) becomes a symbolic dim: the model's own name for it when it has
    one, else ``<input>_d<axis>``. A -1 on a dim the model fixes is an error (E10002).
    """
    for value, shape in _input_shapes(model, shapes):
        value.shape = shape


def check_input_shapes(model: ir.Model, shapes: Sequence[InputShape]) -> None:
    """The errors :func:`apply_input_shapes` would raise, without changing ``model``."""
    _input_shapes(model, shapes)


def _input_shapes(model: ir.Model, shapes: Sequence[InputShape]) -> list[tuple[ir.Value, ir.Shape]]:
    """The graph inputs ``shapes`` name, each with its new shape (checked as documented above)."""
    inputs = {v.name: v for v in model.graph.inputs}
    result: dict[ir.Value, ir.Shape] = {}  # a name given twice: the second entry sees the first
    for entry in shapes:
        value = inputs.get(entry.name)
        if value is None:
            raise OpenATCError(
                "E10016",
                f"--input_shape names '{entry.name}', which is not an input of the model; "
                f"inputs: {_names(model.graph.inputs)}",
            )
        old = result.get(value, value.shape)
        if old is not None and len(old) != len(entry.dims):
            raise OpenATCError(
                "E10049",
                f"--input_shape gives input '{entry.name}' {len(entry.dims)} dims {list(entry.dims)}, "
                f"but it has rank {len(old)} {_shape_text(old)}",
            )
        dims: list[int | ir.SymbolicDim] = []
        for axis, want in enumerate(entry.dims):
            have = old[axis] if old is not None else None
            if isinstance(have, int) and have >= 0 and have != want:  # -1: old exporters' "dynamic"
                if want < 0:
                    raise OpenATCError(
                        "E10002",
                        f"--input_shape marks dim {axis} of input '{entry.name}' as dynamic (-1), but the model "
                        f"fixes it to {have} {_shape_text(old)}; gears and ranges need a dimension the model "
                        "leaves dynamic",
                        hint=f"Give dim {axis} as {have}, or export the model with that dimension dynamic.",
                    )
                raise OpenATCError(
                    "E10002",
                    f"--input_shape sets dim {axis} of input '{entry.name}' to {want}, but the model "
                    f"fixes it to {have} {_shape_text(old)}",
                    hint="Only dynamic dimensions can be set.",
                )
            if want >= 0:
                dims.append(want)
            else:
                named = isinstance(have, ir.SymbolicDim) and have.value
                dims.append(have if named else ir.SymbolicDim(f"{entry.name}_d{axis}"))
        result[value] = ir.Shape(dims)
    return list(result.items())


def _shape_text(shape: ir.Shape) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else (d.value or "?") for d in shape) + "]"


def check_static_inputs(model: ir.Model, shapes: Sequence[InputShape] = ()) -> None:
    """Every tensor input must have fixed dims after --input_shape, except those it gives as -1."""
    allowed = {s.name: set(s.dynamic_axes) for s in shapes}
    for value in model.graph.inputs:
        if not isinstance(value.type, ir.TensorType) or value.shape is None:
            continue
        free = allowed.get(value.name or "", set())
        dynamic = [i for i, d in enumerate(value.shape) if (not isinstance(d, int) or d < 0) and i not in free]
        if dynamic:
            example = ",".join("1" if not isinstance(d, int) or d < 0 else str(d) for d in value.shape)
            raise OpenATCError(
                "E10054",
                f"input '{value.name}' has dynamic dimensions {_shape_text(value.shape)}; --input_shape must fix them",
                hint=f'Add --input_shape="{value.name}:{example}" (with your sizes).',
            )


def shape_inference_error(model: ir.Model) -> str | None:
    """The first error of onnx's strict shape inference (with data propagation), or None.

    Large initializers are hidden from onnx during the check (only their types matter), so the
    weights are not copied. The message names the node (``node name: ...``) as onnx reports it.
    """
    import onnx

    hidden: dict[str, tuple[ir.Value, ir.TensorProtocol]] = {}
    inputs_before = len(model.graph.inputs)
    for name, value in list(model.graph.initializers.items()):
        tensor = value.const_value
        if tensor is None or tensor.nbytes <= 1024:
            continue
        value.shape = value.shape or tensor.shape
        value.dtype = value.dtype or tensor.dtype
        hidden[name] = (model.graph.initializers.pop(name), tensor)
        value.const_value = None
        if value not in model.graph.inputs:
            model.graph.inputs.append(value)
    try:
        proto = ir.serde.serialize_model(model)
    finally:
        while len(model.graph.inputs) > inputs_before:
            model.graph.inputs.pop()
        for name, (value, tensor) in hidden.items():
            value.const_value = tensor
            model.graph.initializers[name] = value
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError, ValidationError, RuntimeError
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


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
