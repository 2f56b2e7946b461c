"""AIPP: ATC's image pre-processing (``--insert_op_conf``) compiled into the model as ONNX ops.

The build calls :func:`apply_aipp` once per gear, after the input shapes are fixed and before the
optimization passes (so that constant folding, CSE and the backend's fusions cover the inserted
ops as well). See docs/aipp.md for the configuration fields, the order of the steps and the
fixed-point rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from openatc.aipp._builder import AippBuilder
from openatc.aipp.config import AippConfig, parse_aipp_config, parse_aipp_text

if TYPE_CHECKING:
    import onnx_ir as ir

    from openatc.types import PassContext

__all__ = ["AippBuilder", "AippConfig", "apply_aipp", "parse_aipp_config", "parse_aipp_text"]


def apply_aipp(model: ir.Model, ctx: PassContext) -> None:
    """Inserts the AIPP ops of ``ctx.options.aipp`` (nothing when the build has no --insert_op_conf)."""
    options = ctx.options
    configs = getattr(options, "aipp", ())
    if not configs:
        return
    from openatc.aipp.insert import check_conflicts, insert_aipp
    from openatc.graph import value_spec
    from openatc.manager import default_plugin_manager

    dynamic = getattr(options, "dynamic", None)
    kind = getattr(dynamic, "kind", "")
    names = [v.name or "" for v in model.graph.inputs]
    check_conflicts(
        configs,
        names,
        fp16_nodes=tuple(getattr(getattr(options, "precision", None), "input_fp16_nodes", ()) or ()),
        dynamic_batch=kind == "dynamic_batch_size",
        dynamic_image_size=kind == "dynamic_image_size",
        dynamic_dims=kind == "dynamic_dims",
    )
    pm = ctx.plugin_manager or default_plugin_manager()
    inputs = [value_spec(v, options.input_format) for v in model.graph.inputs]
    insert_aipp(model, configs, pm.aipp_formats(), inputs, options.input_format)
