"""``--mode=1 --framework=0``: a Caffe net as JSON in Caffe's own schema (NetParameter), blob data left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format

from ._proto import parse_caffemodel, parse_prototxt

__all__ = ["caffe_to_json"]

_BLOB_DATA = ("data", "diff", "double_data", "double_diff")


def caffe_to_json(model: Path, weight: Path | None) -> dict[str, Any]:
    """The prototxt's NetParameter; with ``weight``, the caffemodel's (as ATC does), blobs as shapes only.

    The files are dumped as written: V1 ``layers`` stay V1, field names are caffe.proto's.
    """
    net = parse_caffemodel(weight, upgrade=False) if weight is not None else parse_prototxt(model, upgrade=False)
    for layer in [*net.layer, *net.layers]:
        for blob in layer.blobs:
            for field in _BLOB_DATA:
                blob.ClearField(field)
    data = json_format.MessageToDict(net, preserving_proto_field_name=True)
    _int_dims(data)
    return data


def _int_dims(value: Any) -> None:
    """BlobShape.dim is int64, which the proto3 JSON mapping writes as strings; ATC writes numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("shape", "input_shape"):
                for shape in item if isinstance(item, list) else [item]:
                    if isinstance(shape, dict) and "dim" in shape:
                        shape["dim"] = [int(d) for d in shape["dim"]]
            _int_dims(item)
    elif isinstance(value, list):
        for item in value:
            _int_dims(item)
