"""ONNX shape and type inference merged into the onnx_ir model."""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir

from ._graph import static_type

logger = logging.getLogger(__name__)

#: Initializers larger than this are hidden from onnx's inference (it only needs their types), which
#: keeps models over 2 GB inferable and avoids copying the weights.
_HIDE_BYTES = 1024


class InferShapesPass(ir.passes.InPlacePass):
    """Runs ``onnx.shape_inference`` and merges whole types and shapes back (model unchanged on failure).

    Unlike onnx_ir's ShapeInferencePass, which merges element types only and so turns sequence and
    optional values into tensors, this pass copies the inferred type as a whole.
    """

    def __init__(self, *, data_prop: bool = True) -> None:
        super().__init__()
        self.data_prop = data_prop

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        flat = not _has_subgraphs(model.graph)
        if flat and _fully_typed(model.graph):
            # every value already has a dtype and a static shape: inference would only confirm them
            _move_large_initializers_last(model.graph)
            return ir.passes.PassResult(model, modified=False)
        try:
            proto = self._infer(model)
            if flat:
                return ir.passes.PassResult(model, modified=_merge_graph(model.graph, _inferred_types(proto.graph)))
            inferred = ir.serde.deserialize_model(proto)
        except Exception as exc:  # noqa: BLE001 - onnx raises several types; the model stays usable
            logger.warning("shape inference failed (%s); graph left unchanged", str(exc).splitlines()[0])
            return ir.passes.PassResult(model, modified=False)
        modified = False
        for original, result in zip(model.graphs(), inferred.graphs(), strict=False):
            known = ir.convenience.create_value_mapping(result)
            for name, value in ir.convenience.create_value_mapping(original).items():
                other = known.get(name)
                if other is None:
                    continue
                if other.type is not None and value.type != other.type:
                    value.type = other.type
                    modified = True
                if other.shape is not None and value.shape != other.shape:
                    value.shape = other.shape
                    modified = True
        return ir.passes.PassResult(model, modified=modified)

    def _infer(self, model: ir.Model) -> onnx.ModelProto:
        hidden: dict[str, ir.Value] = {}
        tensors = {}
        inputs_before = len(model.graph.inputs)
        for name, value in list(model.graph.initializers.items()):
            tensor = value.const_value
            if tensor is None or tensor.nbytes <= _HIDE_BYTES:
                continue
            value.shape = value.shape or tensor.shape
            value.dtype = value.dtype or tensor.dtype
            tensors[name] = tensor
            hidden[name] = model.graph.initializers.pop(name)
            value.const_value = None
            if value not in model.graph.inputs:
                model.graph.inputs.append(value)
        constants = _hide_constant_tensors(model.graph)
        try:
            proto = ir.serde.serialize_model(model)
        finally:
            for node, attr in constants:
                node.attributes["value"] = attr
            while len(model.graph.inputs) > inputs_before:
                model.graph.inputs.pop()
            for name, value in hidden.items():
                value.const_value = tensors[name]
                model.graph.initializers[name] = value
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False, data_prop=self.data_prop)


#: Where the stand-ins of large Constant tensors point: never read (inference only needs their
#: element type and dims).
_HIDDEN_LOCATION = "openatc:hidden"


def _hide_constant_tensors(graph: ir.Graph) -> list[tuple[ir.Node, ir.Attr]]:
    """Gives the large Constant nodes of ``graph`` (not of its subgraphs) an external-data stand-in
    of the same element type and dims, so that serializing the model for onnx copies no weights;
    returns the nodes and their original ``value`` attributes, to put back."""
    hidden = []
    for node in graph:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        attr = node.attributes.get("value")
        if attr is None or attr.type != ir.AttributeType.TENSOR:
            continue
        tensor = attr.value  # a TENSOR attribute (as_tensor's protocol check costs more than the rest)
        if tensor.nbytes <= _HIDE_BYTES or tensor.dtype in (ir.DataType.STRING, ir.DataType.UNDEFINED):
            continue
        stand_in = ir.ExternalTensor(
            _HIDDEN_LOCATION, 0, tensor.nbytes, tensor.dtype, shape=tensor.shape, name=tensor.name or ""
        )
        node.attributes["value"] = ir.AttrTensor("value", stand_in)
        hidden.append((node, attr))
    return hidden


_Inferred = tuple[ir.TypeProtocol | None, ir.Shape | None]


def _has_subgraphs(graph: ir.Graph) -> bool:
    return any(
        attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for node in graph
        for attr in node.attributes.values()
    )


def _fully_typed(graph: ir.Graph) -> bool:
    """True when every input, initializer and node output has a tensor type and a static shape."""
    if not all(static_type(v) for v in graph.inputs) or not all(static_type(v) for v in graph.initializers.values()):
        return False
    return all(static_type(out) for node in graph for out in node.outputs)


def _move_large_initializers_last(graph: ir.Graph) -> None:
    """The initializer order an inference run leaves (:meth:`InferShapesPass._infer` takes the large
    ones out and puts them back last), so that skipping a run writes the same file."""
    for name, value in list(graph.initializers.items()):
        tensor = value.const_value
        if tensor is not None and tensor.nbytes > _HIDE_BYTES:
            graph.initializers[name] = graph.initializers.pop(name)


def _type_and_shape(info: onnx.ValueInfoProto) -> _Inferred:
    return ir.serde.deserialize_type_proto_for_type(info.type), ir.serde.deserialize_type_proto_for_shape(info.type)


def _inferred_types(graph: onnx.GraphProto) -> dict[str, _Inferred]:
    """Name -> (type, shape) as ``ir.serde.deserialize_model`` would give the values of ``graph``
    (no subgraphs), without deserializing its nodes and tensors: inputs from their declarations,
    initializers from their tensors unless declared, node outputs from ``value_info``, graph outputs
    from their declarations (these win)."""
    value_info = {info.name: info for info in graph.value_info}
    found = {info.name: _type_and_shape(info) for info in graph.input}
    for tensor in graph.initializer:
        if not tensor.name or tensor.name in found:
            continue
        info = value_info.get(tensor.name)
        if info is not None:
            found[tensor.name] = _type_and_shape(info)
        else:
            found[tensor.name] = (ir.TensorType(ir.DataType(tensor.data_type)), ir.Shape(tensor.dims))
    for name, info in value_info.items():
        if name not in found:
            found[name] = _type_and_shape(info)
    for info in graph.output:
        found[info.name] = _type_and_shape(info)
    return found


def _merge_graph(graph: ir.Graph, inferred: dict[str, _Inferred]) -> bool:
    """Copies the inferred types and shapes onto the values of ``graph``; True if any changed."""
    modified = False
    for name, value in ir.convenience.create_value_mapping(graph).items():
        found = inferred.get(name)
        if found is None:
            continue
        type_, shape = found
        if type_ is not None and value.type != type_:
            value.type = type_
            modified = True
        if shape is not None and value.shape != shape:
            value.shape = shape
            modified = True
    return modified
