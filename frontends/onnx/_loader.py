"""Reading an ONNX file into onnx_ir, with clear errors for files that are not ONNX."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import onnx_ir as ir
from google.protobuf import json_format

from openatc.errors import OpenATCError

from ._mapped import MappedWeight, load_mapped

if TYPE_CHECKING:
    from openatc.options import BuildOptions

logger = logging.getLogger(__name__)

#: The opset every model is converted to when it is older (newer models keep their opset).
INTERNAL_OPSET = 21
#: Domains whose operators are accepted without an ONNX schema (run by backends that offer them).
EXTENSION_DOMAINS = ("com.microsoft",)
_OTHER_FRAMEWORKS = {
    ".pb": "a TensorFlow frozen graph: use --framework=3",
    ".pbtxt": "a TensorFlow graph: use --framework=3",
    ".prototxt": "a Caffe network definition: use --framework=0 with --weight",
    ".caffemodel": "Caffe weights: give the .prototxt with --model, this file with --weight, and --framework=0",
    ".om": "an offline model: convert it to JSON with --mode=1 --om=... --json=...",
    ".air": "a MindSpore model: not supported by openatc",
}


def load_onnx(model: Path, weight: Path | None, options: BuildOptions) -> ir.Model:
    """Loads ``model`` as ONNX, checks it, and converts older opsets to :data:`INTERNAL_OPSET`."""
    del weight, options  # ONNX has no separate weight file; options are applied by the host
    mapped = load_mapped(model, _HIDE_BYTES, _HIDE_TYPES)  # the weights stay in the file, not copied
    if mapped is not None and mapped[0].HasField("graph") and mapped[0].ir_version:
        proto, weights = mapped
    else:
        proto, weights = _parse(model), []
    _check_opsets(model, proto)
    _unknown_negative_dims(proto.graph)
    # the checker and the converter copy the model: not its weights
    big, added = (list(weights), _declare_inputs(proto.graph, list(weights))) if weights else _hide_weights(proto)
    constants = _hide_constants(proto)  # nor the weights exporters write as Constant nodes
    try:
        onnx.checker.check_model(proto)
        constants.check()
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpenATCError(
            "E20004", f"'{model}' is not a valid ONNX model: {first}", hint="Fix the exporter's output."
        ) from None
    _check_operators(model, proto)
    converted = _convert_opset(model, proto)
    if converted is proto:
        constants.restore(proto.graph)
    elif not (added | constants.names) <= {i.name for i in converted.graph.input} or not constants.restore(
        converted.graph
    ):
        # the converter dropped a hidden weight's input or a node a constant follows: convert with the weights
        _restore_weights(proto, big, added)
        constants.restore(proto.graph)
        big, added, converted = [], set(), _convert_opset(model, proto)
    ir_model = ir.serde.deserialize_model(converted)
    del proto, converted  # the weights now live in ``big`` only
    _attach_weights(model, ir_model, big, added)
    ir.external_data.set_base_dir(ir_model.graph, model.parent.resolve())
    return ir_model


def _unknown_negative_dims(graph: onnx.GraphProto) -> None:
    """Dims written as -1 (some exporters' "dynamic", e.g. PaddlePaddle's) become unknown dims.

    ONNX has no negative dim values; left in place, shape inference compares them with the real
    size and fails at every static shape (PP-OCR cls: "(1) vs (-1)"). Graph inputs and outputs get
    a symbolic dim of their own, intermediate value infos an unset one.
    """
    for kind, values in (("input", graph.input), ("output", graph.output), ("", graph.value_info)):
        for value in values:
            if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
                continue
            for axis, dim in enumerate(value.type.tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value < 0:
                    dim.Clear()
                    if kind:
                        dim.dim_param = f"{value.name}_dim{axis}"
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                _unknown_negative_dims(attribute.g)
            for sub in attribute.graphs:
                _unknown_negative_dims(sub)


#: A weight taken out of the parsed model: a tensor of it, or a view of the mapped file.
_Hidden = onnx.TensorProto | MappedWeight


def _attach_weights(path: Path, model: ir.Model, big: list[_Hidden], added: set[str]) -> None:
    """Makes the hidden initializers numpy-backed initializers of ``model`` again, one at a time, so
    that the parsed file's memory is released as they are copied out (peak: about twice the weights;
    mapped weights are not copied)."""
    graph = model.graph
    values = {v.name: v for v in graph.inputs}
    while big:
        tensor = big.pop(0)
        try:
            array = tensor.array if isinstance(tensor, MappedWeight) else onnx.numpy_helper.to_array(tensor)
        except Exception as exc:  # noqa: BLE001 - onnx raises several types for malformed tensors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OpenATCError(
                "E20004",
                f"'{path}' is not a valid ONNX model: initializer '{tensor.name}' cannot be read ({first})",
                hint="Fix the exporter's output.",
            ) from None
        value = values[tensor.name]
        value.const_value = ir.Tensor(array, name=tensor.name)
        del tensor, array
        if value.name in added:
            graph.inputs.remove(value)
        graph.register_initializer(value)


#: Initializers larger than this (serialized bytes) are hidden from the checker and the converter.
_HIDE_BYTES = 1024
#: Element types whose tensors numpy holds as they are (others, e.g. strings or 4-bit, stay in place).
_HIDE_TYPES = frozenset(
    getattr(onnx.TensorProto, t)
    for t in (
        "FLOAT",
        "FLOAT16",
        "DOUBLE",
        "INT8",
        "UINT8",
        "INT16",
        "UINT16",
        "INT32",
        "UINT32",
        "INT64",
        "UINT64",
        "BOOL",
    )
)


def _declare_inputs(graph: onnx.GraphProto, hidden: list[_Hidden]) -> set[str]:
    """Declares the weights taken out of ``graph`` (tensors or mapped views) as graph inputs of the
    same type and shape, unless already declared; returns the names of the inputs added."""
    declared = {i.name for i in graph.input}
    added = {t.name for t in hidden if t.name not in declared}
    graph.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in hidden if t.name in added
    )
    return added


def _hide_weights(proto: onnx.ModelProto) -> tuple[list[_Hidden], set[str]]:
    """Takes the large initializers out of ``proto`` and declares them as graph inputs of the same
    type and shape instead: the checker and the opset converter, which copy the whole model, then
    neither copy nor check the weights (their values are checked when loaded). Returns the tensors
    and the names of the inputs added, for :func:`_restore_weights`."""
    graph = proto.graph
    names = [t.name for t in graph.initializer]
    if len(set(names)) != len(names):
        return [], set()  # duplicate names: the checker reports them on the model as it is
    big = [
        t
        for t in graph.initializer
        if t.data_type in _HIDE_TYPES and t.data_location != onnx.TensorProto.EXTERNAL and t.ByteSize() > _HIDE_BYTES
    ]
    if not big:
        return [], set()
    hidden = {t.name for t in big}
    small = [t for t in graph.initializer if t.name not in hidden]
    del graph.initializer[:]  # the tensors in ``big`` keep their data
    graph.initializer.extend(small)
    return list(big), _declare_inputs(graph, list(big))


class _HiddenConstants:
    """Large Constant nodes taken out of a graph, their outputs declared as graph inputs instead
    (see :func:`_hide_constants`); each is put back after the kept node it followed."""

    def __init__(self, nodes: list[tuple[str | None, onnx.NodeProto]]) -> None:
        self.nodes = nodes  # (first output of the kept node before it, or None: first), node
        self.names = {node.output[0] for _, node in nodes}

    def check(self) -> None:
        """onnx's checks of the tensors the model checker did not see (ValidationError if bad)."""
        for _, node in self.nodes:
            onnx.checker.check_tensor(node.attribute[0].t)

    def restore(self, graph: onnx.GraphProto) -> bool:
        """Puts the nodes back into ``graph`` (the original or the converted one) and removes their
        inputs; False (nothing done) when a node they followed is not in ``graph``."""
        if not self.nodes:
            return True
        after: dict[str | None, list[onnx.NodeProto]] = {}
        for anchor, node in self.nodes:
            after.setdefault(anchor, []).append(node)
        if not set(after) - {None} <= {node.output[0] for node in graph.node if node.output}:
            return False
        nodes = list(after.get(None, []))
        for node in graph.node:
            nodes.append(node)
            if node.output:
                nodes.extend(after.get(node.output[0], ()))
        keep = [i for i in graph.input if i.name not in self.names]
        del graph.input[:]
        graph.input.extend(keep)
        del graph.node[:]
        graph.node.extend(nodes)
        return True


def _hide_constants(proto: onnx.ModelProto) -> _HiddenConstants:
    """Takes the Constant nodes of ``proto``'s graph that hold a large tensor (a weight) out and
    declares their outputs as graph inputs of the same type and shape: the checker and the opset
    converter copy the model, and on models that keep their weights in Constant nodes copying them
    took most of their time. The tensors are checked on their own (:meth:`_HiddenConstants.check`)."""
    graph = proto.graph
    outputs = [name for node in graph.node for name in node.output]
    taken = {i.name for i in graph.input} | {o.name for o in graph.output} | {t.name for t in graph.initializer}
    if len(set(outputs)) != len(outputs) or any(not node.output or not node.output[0] for node in graph.node):
        return _HiddenConstants([])  # the checker reports such graphs as they are
    hidden: list[tuple[str | None, onnx.NodeProto]] = []
    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        if _hideable_constant(node) and node.output[0] not in taken:
            hidden.append((kept[-1].output[0] if kept else None, node))
        else:
            kept.append(node)
    if not hidden:
        return _HiddenConstants([])
    del graph.node[:]
    graph.node.extend(kept)
    for _, node in hidden:
        tensor = node.attribute[0].t
        graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], tensor.data_type, tensor.dims))
    return _HiddenConstants(hidden)


def _hideable_constant(node: onnx.NodeProto) -> bool:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return False
    if (
        len(node.attribute) != 1
        or node.attribute[0].name != "value"
        or node.attribute[0].type != onnx.AttributeProto.TENSOR
    ):
        return False
    tensor = node.attribute[0].t
    return (
        tensor.data_type in _HIDE_TYPES
        and tensor.data_location != onnx.TensorProto.EXTERNAL
        and tensor.ByteSize() > _HIDE_BYTES
    )


def _restore_weights(proto: onnx.ModelProto, big: list[_Hidden], added: set[str]) -> bool:
    """Puts the hidden initializers back into ``proto`` (the original or the converted model) and
    removes the inputs added for them; False (nothing done) when an added input is missing."""
    graph = proto.graph
    if not big:
        return True
    if not added <= {i.name for i in graph.input}:
        return False
    keep = [i for i in graph.input if i.name not in added]
    del graph.input[:]
    graph.input.extend(keep)
    graph.initializer.extend(t.to_proto() if isinstance(t, MappedWeight) else t for t in big)
    return True


def _parse(path: Path) -> onnx.ModelProto:
    data_head = path.open("rb").read(4096)
    if not data_head:
        raise OpenATCError("E20001", f"'{path}' is empty", hint="Give a complete .onnx file.")
    wrong = _OTHER_FRAMEWORKS.get(path.suffix.lower())
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - binary, text and JSON parsers raise different errors
        raise OpenATCError("E20001" if not wrong else "E20002", _describe(path, data_head, wrong, exc)) from None
    if not proto.HasField("graph") or not proto.ir_version:
        raise OpenATCError("E20001" if not wrong else "E20002", _describe(path, data_head, wrong, None))
    return proto


def _describe(path: Path, head: bytes, wrong: str | None, exc: Exception | None) -> str:
    if wrong:
        return f"'{path}' is not an ONNX model; by its suffix it is {wrong}"
    if _looks_like_text(head):
        text = head.decode("utf-8", "replace")
        if "layer" in text and "{" in text:
            return f"'{path}' is a text file that looks like a Caffe prototxt, not ONNX: use --framework=0"
        return f"'{path}' is a text file, not a binary ONNX model"
    reason = f" ({exc})" if exc else " (no graph in the file)"
    return f"'{path}' cannot be parsed as an ONNX model: it is truncated or not ONNX{reason}"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _check_opsets(path: Path, proto: onnx.ModelProto) -> None:
    domains = Counter(op.domain or "ai.onnx" for op in proto.opset_import)
    twice = [d for d, n in domains.items() if n > 1]
    if twice:
        raise OpenATCError(
            "E20004",
            f"'{path}' imports the opset of domain '{twice[0]}' {domains[twice[0]]} times; only one is allowed",
            hint="Keep one opset_import entry per domain.",
        )


def _check_operators(path: Path, proto: onnx.ModelProto) -> None:
    """Lists every operator without a schema at once (name, type, count)."""
    local = {(f.domain, f.name) for f in proto.functions}
    unknown: Counter[tuple[str, str]] = Counter()
    first_names: dict[tuple[str, str], str] = {}
    for node in _all_nodes(proto.graph):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        key = (domain, node.op_type)
        if key in local or domain in EXTENSION_DOMAINS or onnx.defs.has(node.op_type, domain):
            continue
        unknown[key] += 1
        first_names.setdefault(key, node.name)
    if unknown:
        listing = "; ".join(
            f"{(d + '::') if d else ''}{t} x{n} (e.g. node '{first_names[(d, t)]}')"
            for (d, t), n in sorted(unknown.items())
        )
        raise OpenATCError(
            "E20003",
            f"'{path}' uses {sum(unknown.values())} node(s) of {len(unknown)} unsupported operator type(s): {listing}",
            details=[
                {"type": f"{(d + '::') if d else ''}{t}", "count": n, "name": first_names[(d, t)]}
                for (d, t), n in sorted(unknown.items())
            ],
        )


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


def _convert_opset(path: Path, proto: onnx.ModelProto) -> onnx.ModelProto:
    version = next((op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")), None)
    if version is None or version >= INTERNAL_OPSET:
        return proto
    try:
        converted = onnx.version_converter.convert_version(proto, INTERNAL_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; the model stays usable
        logger.warning(
            "'%s': cannot convert opset %d to %d (%s); keeping opset %d",
            path,
            version,
            INTERNAL_OPSET,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            version,
        )
        return proto
    if _signature(converted) != _signature(proto) and _refined_only(proto, converted):
        # the converter's shape inference only made symbolic dims concrete: keep the model's own types
        for old, new in zip([*proto.graph.input, *proto.graph.output], _signature_values(converted), strict=True):
            new.type.CopyFrom(old.type)
    if _signature(converted) != _signature(proto):
        logger.warning(
            "'%s': converting opset %d to %d changes the model's inputs or outputs; keeping opset %d",
            path,
            version,
            INTERNAL_OPSET,
            version,
        )
        return proto
    logger.info("'%s': converted opset %d to %d", path, version, INTERNAL_OPSET)
    return converted


def _signature_values(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [*proto.graph.input, *proto.graph.output]


def _refined_only(proto: onnx.ModelProto, converted: onnx.ModelProto) -> bool:
    """Same inputs and outputs (names, element types, ranks, fixed dims), where the converted model
    may give a concrete size to a dim the original leaves symbolic."""
    before, after = _signature_values(proto), _signature_values(converted)
    if len(before) != len(after) or len(proto.graph.input) != len(converted.graph.input):
        return False
    for old, new in zip(before, after, strict=True):
        if old.name != new.name or old.type.WhichOneof("value") != "tensor_type":
            return False
        a, b = old.type.tensor_type, new.type.tensor_type
        if a.elem_type != b.elem_type or a.HasField("shape") != b.HasField("shape"):
            return False
        if len(a.shape.dim) != len(b.shape.dim):
            return False
        for x, y in zip(a.shape.dim, b.shape.dim, strict=True):
            if x.HasField("dim_value") and (not y.HasField("dim_value") or x.dim_value != y.dim_value):
                return False
    return True


def _signature(proto: onnx.ModelProto) -> list[str]:
    """Names and types of the graph's inputs and outputs: a conversion must not change them."""
    return [
        str(v.name) + ":" + v.type.SerializeToString(deterministic=True).hex()
        for v in [*proto.graph.input, *proto.graph.output]
    ]


def onnx_to_json(model: Path, weight: Path | None) -> dict[str, Any]:
    """``--mode=1 --framework=5 --om=model.onnx``: the ModelProto as JSON, tensor data left out."""
    del weight
    proto = _parse(model)
    for tensor in _all_tensors(proto):
        for field in (
            "raw_data",
            "float_data",
            "int32_data",
            "string_data",
            "int64_data",
            "double_data",
            "uint64_data",
            "external_data",
        ):
            tensor.ClearField(field)
    return json_format.MessageToDict(proto, preserving_proto_field_name=True)


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from proto.graph.initializer
    for node in _all_nodes(proto.graph):
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
