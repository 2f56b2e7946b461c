"""load(model, weight, options) for TensorFlow: read the GraphDef, check it is frozen, tf2onnx it.

Tensor names keep TensorFlow's spelling (``input:0``): graph inputs are the Placeholders' first
outputs and ``--out_nodes`` names tensors (``op:index``). ``--input_shape`` fixes the
Placeholders' shapes before conversion, so tf2onnx sees static shapes and folds what depends on
them. The model keeps TensorFlow's layout (NHWC by default, ATC's default --input_format for
TensorFlow); no transposes are inserted at the inputs.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError

from ._handlers import extra_handlers

if TYPE_CHECKING:
    from openatc.options import BuildOptions

__all__ = ["load_tensorflow"]

logger = logging.getLogger(__name__)

#: The opset tf2onnx converts to; the result is then converted to openatc's internal opset.
TF2ONNX_OPSET = 18
INTERNAL_OPSET = 21
VARIABLE_OPS = frozenset(
    {"VariableV2", "Variable", "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "Assign", "VarIsInitializedOp"}
)
_NOT_OUTPUTS = frozenset({"NoOp", "Const", "Placeholder", "Assert", "SaveV2", "RestoreV2", "PlaceholderWithDefault"})


def _import_tf() -> tuple[Any, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        raise OpenATCError(
            "E22004", f"--framework=3 needs TensorFlow and tf2onnx: {exc}", hint="pip install 'openatc[tensorflow]'"
        ) from None
    return tf, tf2onnx


def load_tensorflow(model: Path, weight: Path | None, options: BuildOptions) -> ir.Model:
    """The frozen graph ``model`` as an onnx_ir model; ``weight`` is unused.

    ``model`` may also be a SavedModel's ``saved_model.pb`` (or its directory): its serving
    signature is frozen on load.
    """
    del weight  # the host already warned that --weight is ignored for TensorFlow
    tf, tf2onnx = _import_tf()
    saved_model = model if model.is_dir() else _saved_model_dir(model)
    graph_def = _saved_model_graph(tf, saved_model) if saved_model else _read_graph_def(tf, model)
    _check_frozen(model, graph_def)
    inputs = _apply_input_shapes(graph_def, options)
    outputs = _outputs(graph_def, options.out_nodes)
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=inputs,
            output_names=outputs,
            opset=TF2ONNX_OPSET,
            custom_op_handlers=extra_handlers(),
        )
    except OpenATCError:
        raise
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpenATCError("E22003", f"tf2onnx cannot convert '{model}': {first}") from None
    _check_operators(model, proto)
    proto = _to_internal_opset(proto)
    return ir.serde.deserialize_model(proto)


def _read_graph_def(tf: Any, path: Path) -> Any:
    data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    problem = ""
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends
        problem = str(exc) or type(exc).__name__
        graph_def = tf.compat.v1.GraphDef()
    if not _plausible(graph_def):
        try:
            from google.protobuf import text_format

            text_graph = tf.compat.v1.GraphDef()
            text_format.Parse(data.decode("utf-8"), text_graph)
            graph_def = text_graph
        except Exception:  # noqa: BLE001 - not text either; report the binary problem
            graph_def = None
    if graph_def is None or not _plausible(graph_def):
        what = f" ({problem})" if problem else ""
        raise OpenATCError(
            "E22001",
            f"'{path}' is not a TensorFlow GraphDef{what}: it has no nodes with op types",
            hint="Give a frozen graph (.pb) written by TensorFlow, or the matching --framework for this file.",
        )
    return graph_def


def _saved_model_dir(path: Path) -> Path | None:
    """The SavedModel directory when ``path`` is its ``saved_model.pb`` (--model must name a file)."""
    if path.name == "saved_model.pb" and (path.parent / "variables").is_dir():
        return path.parent
    return None


def _plausible(graph_def: Any) -> bool:
    return bool(graph_def.node) and all(n.op and n.name for n in graph_def.node)


def _saved_model_graph(tf: Any, path: Path) -> Any:
    """The serving signature of a SavedModel, frozen (variables folded into constants)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures.get("serving_default") or next(iter(loaded.signatures.values()))
    except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad directory
        raise OpenATCError("E22001", f"'{path}' is a directory but not a TensorFlow SavedModel: {exc}") from None
    frozen = convert_variables_to_constants_v2(signature)
    return frozen.graph.as_graph_def()


def _check_frozen(path: Path, graph_def: Any) -> None:
    variables = [n for n in graph_def.node if n.op in VARIABLE_OPS]
    if variables:
        names = ", ".join(f"'{n.name}' ({n.op})" for n in variables[:8])
        more = f" and {len(variables) - 8} more" if len(variables) > 8 else ""
        raise OpenATCError(
            "E22002",
            f"'{path}' is not a frozen graph: {len(variables)} variable node(s) left: {names}{more}",
        )


def _apply_input_shapes(graph_def: Any, options: BuildOptions) -> list[str]:
    """The Placeholders' tensor names; shapes given by --input_shape (``x:0`` or ``x``) are set on them."""
    shapes = {s.name: s.dims for s in options.input_shape}
    names = []
    for node in graph_def.node:
        if node.op != "Placeholder":
            continue
        tensor = f"{node.name}:0"
        names.append(tensor)
        dims = shapes.get(tensor, shapes.get(node.name))
        if dims is None or any(d < 0 for d in dims):
            continue
        shape = node.attr["shape"].shape
        if not shape.unknown_rank and len(shape.dim) != len(dims):
            continue  # the host reports the rank mismatch (E10049)
        shape.unknown_rank = False
        del shape.dim[:]
        for d in dims:
            shape.dim.add().size = d
    return names


def _outputs(graph_def: Any, out_nodes: tuple[str, ...]) -> list[str]:
    """--out_nodes as tensor names, or every tensor no node consumes (the graph's sinks)."""
    names = {n.name for n in graph_def.node}
    if out_nodes:
        chosen = []
        for entry in out_nodes:
            op, _, index = entry.rpartition(":")
            if index.isdigit() and op in names:
                chosen.append(entry)
            elif entry in names:
                raise OpenATCError(
                    "E10016",
                    f"--out_nodes entry '{entry}' is a TensorFlow op; name its output tensor, e.g. '{entry}:0'",
                )
            else:
                raise OpenATCError("E10016", f"--out_nodes entry '{entry}' names no tensor of the TensorFlow graph")
        return chosen
    consumed = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    sinks = [f"{n.name}:0" for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS]
    if not sinks:
        raise OpenATCError("E22001", "the TensorFlow graph has no output (every node's result is consumed)")
    return sinks


def _check_operators(path: Path, proto: onnx.ModelProto) -> None:
    """E20003 listing every TensorFlow op tf2onnx left unconverted (name, type, count) at once."""
    unknown: Counter[str] = Counter()
    first: dict[str, str] = {}
    for node in proto.graph.node:
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        if domain in ("ai.onnx.ml", "com.microsoft") or onnx.defs.has(node.op_type, domain):
            continue
        unknown[node.op_type] += 1
        first.setdefault(node.op_type, node.name)
    if unknown:
        listing = "; ".join(f"{t} x{n} (e.g. node '{first[t]}')" for t, n in sorted(unknown.items()))
        raise OpenATCError(
            "E20003",
            f"'{path}' uses {sum(unknown.values())} node(s) of {len(unknown)} TensorFlow op type(s) that tf2onnx "
            f"cannot convert: {listing}",
            hint="Replace those ops, or cut the graph before them with --out_nodes.",
        )


def _to_internal_opset(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.version_converter.convert_version(proto, INTERNAL_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; the model stays usable
        logger.info("keeping tf2onnx's opset %d (%s)", TF2ONNX_OPSET, str(exc).splitlines()[0] if str(exc) else exc)
        return proto
