"""Reading an ONNX file without copying its weights: the large initializers stay in the file.

``onnx.load`` copies every tensor into protobuf memory, and taking them out again as numpy arrays
copies them once more: on a 440 MB BERT about a second and twice the weights in memory. Here the
file is memory-mapped and only the protobuf structure is read: each large ``raw_data`` initializer
is left out of the parsed model, and its bytes become a read-only numpy view of the mapped file
(the page cache's copy, shared and never written).

The scan follows the protobuf wire format over ModelProto > GraphProto > TensorProto; anything it
does not expect (a malformed file, a big-endian host) makes it give up, and the caller parses the
file the usual way, with the usual errors.
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

#: Files smaller than this are parsed as a whole (nothing to gain).
MIN_FILE_BYTES = 1 << 20

# Field numbers (onnx.proto) and wire types.
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 8, 9
_TENSOR_DOC_STRING, _TENSOR_METADATA_PROPS = 12, 16
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class _Malformed(Exception):
    """The bytes do not follow the wire format as expected: parse the file the usual way."""


@dataclass(frozen=True)
class MappedWeight:
    """A large initializer left out of the parsed model: its raw bytes in the mapped file."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    array: np.ndarray  # read-only view of the mapped file

    def to_proto(self) -> onnx.TensorProto:
        """The initializer as ``onnx.load`` would have read it (a copy of the data)."""
        tensor = onnx.TensorProto(name=self.name, data_type=self.data_type, dims=self.dims)
        tensor.raw_data = self.array.tobytes()
        return tensor


def load_mapped(
    path: Path, min_bytes: int, data_types: frozenset[int]
) -> tuple[onnx.ModelProto, list[MappedWeight]] | None:
    """The model without its initializers of ``data_types`` held in ``raw_data`` and over ``min_bytes``
    serialized (``TensorProto.ByteSize()``), and those initializers as views of the mapped file; None
    where the file should be parsed as a whole (small, not mappable, not a plain binary ModelProto,
    duplicate initializer names)."""
    if sys.byteorder != "little":
        return None  # raw_data is little-endian
    try:
        with path.open("rb") as f:
            if path.stat().st_size < MIN_FILE_BYTES:
                return None
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    view = memoryview(data)
    try:
        kept, weights = _strip_model(view, min_bytes, data_types)
        if not weights:
            return None  # nothing to leave in the file (e.g. weights in Constant nodes): parse it whole
        proto = onnx.ModelProto.FromString(kept)
    except (_Malformed, IndexError, ValueError, DecodeError):
        return None
    finally:
        view.release()  # the arrays keep the mapping alive; nothing else holds it
    names = [t.name for t in proto.graph.initializer] + [w.name for w in weights]
    if len(set(names)) != len(names):
        return None  # the checker reports duplicates on the model as it is
    return proto, weights


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, value start, value end, field start) of each field in buf[start:end];
    for varints and fixed-size values the value span is the encoded bytes."""
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, after = _varint(buf, pos)
        elif wire == _FIXED64:
            after = pos + 8
        elif wire == _FIXED32:
            after = pos + 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            after = pos + length
        else:
            raise _Malformed(f"wire type {wire}")  # groups: not in onnx.proto
        if after > end or number == 0:
            raise _Malformed("field past the end")
        yield number, wire, pos, after, field_start
        pos = after


def _strip_model(buf: memoryview, min_bytes: int, data_types: frozenset[int]) -> tuple[bytes, list[MappedWeight]]:
    """The file's bytes without the mapped initializers (b"" when there are none), and those."""
    parts: list[bytes | memoryview] = []
    weights: list[MappedWeight] = []
    graphs = 0
    for number, wire, start, end, field_start in _fields(buf, 0, len(buf)):
        if number == _MODEL_GRAPH and wire == _LEN:
            graphs += 1
            graph = _strip_graph(buf, start, end, min_bytes, data_types, weights)
            parts.append(_encode_varint(_MODEL_GRAPH << 3 | _LEN))
            parts.append(_encode_varint(len(graph)))
            parts.append(graph)
        else:
            parts.append(buf[field_start:end])
    if graphs != 1:
        raise _Malformed("not one graph")
    return (b"".join(parts) if weights else b""), weights


def _strip_graph(
    buf: memoryview, start: int, end: int, min_bytes: int, data_types: frozenset[int], weights: list[MappedWeight]
) -> bytes:
    parts: list[memoryview] = []
    kept_from = start  # runs of kept fields are copied in one piece
    for number, wire, value_start, value_end, field_start in _fields(buf, start, end):
        if number != _GRAPH_INITIALIZER or wire != _LEN:
            continue
        weight = _mapped_tensor(buf, value_start, value_end, min_bytes, data_types)
        if weight is None:
            continue
        parts.append(buf[kept_from:field_start])
        kept_from = value_end
        weights.append(weight)
    parts.append(buf[kept_from:end])
    return b"".join(parts)


def _mapped_tensor(
    buf: memoryview, start: int, end: int, min_bytes: int, data_types: frozenset[int]
) -> MappedWeight | None:
    """The tensor as a view, or None to keep it in the parsed model (small, other storage, odd)."""
    dims: list[int] = []
    data_type = 0
    name = ""
    raw: tuple[int, int] | None = None
    for number, wire, value_start, value_end, _ in _fields(buf, start, end):
        if number == _TENSOR_DIMS:
            if wire == _VARINT:
                dims.append(_varint(buf, value_start)[0])
            elif wire == _LEN:  # packed
                pos = value_start
                while pos < value_end:
                    dim, pos = _varint(buf, pos)
                    dims.append(dim)
            else:
                return None
        elif number == _TENSOR_DATA_TYPE and wire == _VARINT:
            data_type = _varint(buf, value_start)[0]
        elif number == _TENSOR_NAME and wire == _LEN:
            name = bytes(buf[value_start:value_end]).decode("utf-8")
        elif number == _TENSOR_RAW_DATA and wire == _LEN:
            raw = (value_start, value_end)
        elif number not in (_TENSOR_DOC_STRING, _TENSOR_METADATA_PROPS):
            return None  # segment, external data, the typed data fields: left to onnx
    if raw is None or not name or data_type not in data_types or end - start <= min_bytes:
        return None
    if any(d >= 1 << 62 for d in dims):
        return None  # int64 dims written as negative varints
    dtype = onnx.helper.tensor_dtype_to_np_dtype(data_type)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if count * dtype.itemsize != raw[1] - raw[0]:
        return None  # the usual path reports the size mismatch
    array = np.frombuffer(buf.obj, dtype=dtype, count=count, offset=raw[0]).reshape(dims)  # type: ignore[arg-type]
    return MappedWeight(name, data_type, tuple(dims), array)
