"""``--mode=1 --framework=3``: a TensorFlow GraphDef as JSON in TensorFlow's own schema, tensor data left out.

Laid out as ATC's Pb2Json writes it (spec section 3.2): proto field names, enums by name
(``{"type": "DT_FLOAT"}``), maps as lists of ``{"key", "value"}`` entries (a node's ``attr``),
64-bit integers as numbers (``{"size": 1}``). Const tensors keep ``dtype`` and ``tensor_shape``
only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.descriptor import FieldDescriptor

from ._loader import _import_tf, _read_graph_def, _saved_model_dir, _saved_model_graph

__all__ = ["tensorflow_to_json"]

#: TensorProto fields written out; the value fields (tensor_content, float_val, ...) are left out.
_TENSOR_KEPT = frozenset({"dtype", "tensor_shape"})


def tensorflow_to_json(model: Path, weight: Path | None) -> dict[str, Any]:
    """The GraphDef of ``model`` (binary or text .pb; a SavedModel's serving signature, frozen)."""
    del weight  # the host already warned that --weight is ignored for TensorFlow
    tf, _ = _import_tf()
    saved_model = model if model.is_dir() else _saved_model_dir(model)
    graph_def = _saved_model_graph(tf, saved_model) if saved_model else _read_graph_def(tf, model)
    return _message(graph_def)


def _message(msg: Any) -> dict[str, Any]:
    tensor = msg.DESCRIPTOR.full_name == "tensorflow.TensorProto"
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        if tensor and field.name not in _TENSOR_KEPT:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = [{"key": k, "value": _value(value_field, value[k])} for k in sorted(value)]
        elif _repeated(field):
            out[field.name] = [_value(field, v) for v in value]
        else:
            out[field.name] = _value(field, value)
    return out


def _repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf 6+ (``label`` is gone in 7)
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.decode("utf-8", "backslashreplace")
    if field.type == FieldDescriptor.TYPE_FLOAT:  # float32: the shortest text that reads back the same
        return float(str(np.float32(value)))
    return value
