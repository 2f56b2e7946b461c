"""load(model, weight, options) for Caffe: parse both files, match layers by name, convert."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError

from ._convert import CaffemodelBlobs, convert_net
from ._layers import HANDLERS, declare_inputs
from ._proto import parse_caffemodel, parse_prototxt

if TYPE_CHECKING:
    from openatc.options import BuildOptions

__all__ = ["load_caffe"]

logger = logging.getLogger(__name__)


def load_caffe(model: Path, weight: Path | None, options: BuildOptions) -> ir.Model:
    """The net of ``model`` (prototxt) with the blobs of ``weight`` (caffemodel) as an onnx_ir model."""
    if weight is None:
        raise OpenATCError("E10008", "--weight (the .caffemodel) is required when --framework=0 (Caffe)")
    if model.suffix.lower() == ".caffemodel" or weight.suffix.lower() == ".prototxt":
        raise OpenATCError(
            "E20002",
            f"--model={model} and --weight={weight} look swapped",
            hint="Give the .prototxt with --model and the .caffemodel with --weight.",
        )
    net = parse_prototxt(model)
    weights = parse_caffemodel(weight)
    by_name = {layer.name: layer for layer in weights.layer}
    shapes = {s.name: s.dims for s in options.input_shape}
    proto, _ = convert_net(
        net,
        CaffemodelBlobs(by_name),
        HANDLERS,
        declare_inputs,
        input_shapes=shapes,
        out_nodes=options.out_nodes,
        path=str(model),
    )
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # a converter bug, not the user's
        raise OpenATCError("E19999", f"the converted Caffe net is not valid ONNX: {exc}") from None
    logger.info("Caffe net '%s': %d layers -> %d ONNX nodes", net.name, len(net.layer), len(proto.graph.node))
    return ir.serde.deserialize_model(proto)
