"""ONNX shape and type inference merged into the onnx_ir model."""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir

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
        try:
            inferred = ir.serde.deserialize_model(self._infer(model))
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
        try:
            proto = ir.serde.serialize_model(model)
        finally:
            while len(model.graph.inputs) > inputs_before:
                model.graph.inputs.pop()
            for name, value in hidden.items():
                value.const_value = tensors[name]
                model.graph.initializers[name] = value
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False, data_prop=self.data_prop)
