"""INT8 post-training quantization: calibration config, streamed calibration, QDQ emission,
accuracy target with sensitivity-ranked fallback, per-layer report (see docs/precision.md).

One gear at a time, on the optimized FP32 graph (standard ONNX ops only: INT8 builds turn the
backend's contrib fusions off so that ONNX Runtime's QDQ fusions see Conv/MatMul/Gemm):

1. the samples of the calibration config are split into calibration and held-out samples;
2. the FP32 graph runs on the calibration samples with the activations to quantize exposed,
   sample by sample, each feeding an observer of the chosen quantizer plugin;
3. ``onnxruntime.quantization``'s QDQ quantizer writes the QDQ graph from those ranges;
4. with an accuracy target, the outputs of the check samples (the held-out ones, topped up with
   calibration samples) are compared with FP32; when the target is
   missed, layers are ranked by sensitivity and returned to float until it is met;
5. the per-layer report compares every quantized activation with FP32.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError

from ._calibrate import calibrate, float_tensors
from ._config import DEFAULT_OP_TYPES, QuantizationOptions, parse_quantization
from ._data import InputSpec, Samples, find_samples
from ._emit import Evaluator, dq_map, emit_qdq, layer_report, quantized_nodes, worst_layers_table

if TYPE_CHECKING:
    from openatc.types import PassContext

__all__ = [
    "DEFAULT_OP_TYPES",
    "MIN_INT8_CONV_MACS",
    "MIN_INT8_CONV_TERMS",
    "QuantizationOptions",
    "dequantized_names",
    "parse_quantization",
    "quantization_report",
    "quantize_gear",
    "write_layer_reports",
]

logger = logging.getLogger(__name__)

_REPORT_KEY = "openatc.quantization"
_LAYERS_KEY = "openatc.quantization.layers"
#: At most this many candidate layers get a full sensitivity measurement (one INT8 build each).
_SENSITIVITY_CANDIDATES = 24
#: Samples the sensitivity of each candidate is measured on (the first of the accuracy check's).
_SENSITIVITY_SAMPLES = 8
#: At most this many layers of the fallback are tried back in INT8 once the target is met.
_PRUNE_TRIALS = 8
#: Samples the per-layer report runs on (held-out ones first).
_REPORT_SAMPLES = 8


def _specs(model: ir.Model) -> list[InputSpec]:
    specs = []
    for value in model.graph.inputs:
        if value.name in model.graph.initializers:
            continue
        dims = tuple(value.shape) if value.shape is not None else ()
        if value.dtype is None or not all(isinstance(d, int) for d in dims):
            raise OpenATCError(
                "E10061",
                f"INT8 calibration needs static input shapes; input '{value.name}' is {list(dims)}",
                hint="Fix its dims with --input_shape (gears are calibrated one by one).",
            )
        specs.append(InputSpec(value.name or "", np.dtype(value.dtype.numpy()), dims))  # type: ignore[arg-type]
    return specs


def _observer_factory(
    ctx: PassContext, algorithm: str, options: dict[str, Any] | None = None, source: str = ""
) -> Callable[[], Any]:
    from openatc.manager import default_plugin_manager

    pm = ctx.plugin_manager or default_plugin_manager()
    found = pm.quantizers()
    if algorithm not in found:
        raise OpenATCError(
            "E10062",
            f"calibration algorithm '{algorithm}' is not an installed quantizer plugin; known: "
            + ", ".join(sorted(found)),
            hint='Set "algorithm" to one of them, or install the plugin that provides it.',
        )
    factory = found[algorithm].factory
    if not options:
        return factory
    try:
        factory(**options)
    except (TypeError, ValueError) as exc:
        raise OpenATCError(
            "E10060", f"{source}: algorithm_options {options} do not fit algorithm '{algorithm}': {exc}"
        ) from None
    return functools.partial(factory, **options)


def _split(samples: Samples, opts: QuantizationOptions) -> tuple[Samples, Samples, Samples]:
    """Calibration, held-out and check samples.

    Held-out: the last ``holdout_fraction`` (at least one when there are two samples or more).
    Check (what the accuracy target is judged on): the held-out samples, topped up with
    calibration samples to ``check_samples``; on a small data set a few held-out samples alone
    can pass a target that most inputs miss (PP-OCR det: 3 held-out crops scored 0.991 while
    24 others gave 0.965).
    """
    count = len(samples)
    held = round(count * opts.holdout_fraction) if count > 1 else 0
    if opts.holdout_fraction > 0 and count > 1:
        held = min(max(held, 1), count - 1)
    calib = samples.subset(range(count - held))
    if not held:  # nothing held out: the checks run on calibration samples
        holdout = samples.subset(range(min(count, opts.check_samples)))
        return calib, holdout, holdout
    holdout = samples.subset(range(count - held, count))
    top_up = max(0, min(opts.check_samples, count) - held)
    check = samples.subset([*range(count - held, count), *range(top_up)]) if top_up else holdout
    return calib, holdout, check


def _excluded(proto: onnx.ModelProto, opts: QuantizationOptions) -> set[str]:
    names = {n.name for n in proto.graph.node}
    unknown = [s for s in opts.skip_layers if s not in names]
    if unknown:
        logger.warning(
            "%s: skip_layers names %s, not a layer of the optimized graph (unknown, or fused away); ignored",
            opts.source,
            ", ".join(unknown[:10]),
        )
    skip_types = set(opts.skip_op_types)
    excluded = {
        n.name for n in proto.graph.node if n.name in opts.skip_layers or n.op_type in skip_types or _keeps_fp32(n)
    }
    slow = _slow_in_int8(proto, opts.op_types, excluded) if opts.skip_slow_layers else []
    if slow:
        logger.info("quantization: %d layer(s) kept float, slower in INT8: %s", len(slow), ", ".join(slow[:20]))
    return excluded | set(slow)


#: A Conv whose dot products have fewer terms than this (depthwise, 3-channel stems, pointwise
#: convs of a few channels) runs slower in ONNX Runtime's QLinearConv than in its float NCHWc
#: kernels: the requantization of every output costs more than the int8 arithmetic saves.
MIN_INT8_CONV_TERMS = 32
#: A Conv of fewer multiply-adds than this (squeeze-excitation convs on pooled 1x1 features)
#: gains nothing from INT8 and pays a Q/DQ pair and a layout change around it.
MIN_INT8_CONV_MACS = 1 << 16
#: Ops that only move or select values: INT8 pays only when their input is INT8 already.
_MOVEMENT_OPS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Pad"})


def _elements(shape: onnx.TensorShapeProto | None) -> int | None:
    """Elements of a fully static shape, or None."""
    if shape is None or not shape.dim or not all(d.HasField("dim_value") for d in shape.dim):
        return None
    return int(np.prod([d.dim_value for d in shape.dim], dtype=np.int64))


def _slow_in_int8(proto: onnx.ModelProto, op_types: tuple[str, ...], excluded: set[str]) -> list[str]:
    """Layers that would make the INT8 build slower than the float one it replaces (graph order).

    * Conv/ConvTranspose with fewer than :data:`MIN_INT8_CONV_TERMS` terms per output, or fewer
      than :data:`MIN_INT8_CONV_MACS` multiply-adds in all (static shapes);
    * pooling and resizing whose input comes from a float layer (an op outside ``op_types``,
      kept float, or a graph input): quantizing them alone would put a Q/DQ pair around a float
      island, and ONNX Runtime's uint8 pooling runs in NCHW where the float one runs in NCHWc.
    """
    weights = {t.name: t for t in proto.graph.initializer}
    slow: list[str] = []
    floated = set(excluded)
    producers = {o: n for n in proto.graph.node for o in n.output}
    shapes = {v.name: v.type.tensor_type.shape for v in (*proto.graph.value_info, *proto.graph.output)}
    for node in proto.graph.node:
        if node.name in floated or node.op_type not in op_types:
            continue
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] in weights:
            dims = list(weights[node.input[1]].dims)
            if node.op_type == "ConvTranspose" and len(dims) > 1:  # [Cin, Cout/group, k...]: Cin terms per k
                terms = dims[0] * int(np.prod(dims[2:], dtype=np.int64))
            else:  # [Cout, Cin/group, k...]
                terms = int(np.prod(dims[1:], dtype=np.int64))
            outputs = _elements(shapes.get(node.output[0]))
            if terms < MIN_INT8_CONV_TERMS or (outputs is not None and outputs * terms < MIN_INT8_CONV_MACS):
                slow.append(node.name)
                floated.add(node.name)
        elif node.op_type in _MOVEMENT_OPS and node.input:
            producer = producers.get(node.input[0])
            if producer is None or producer.name in floated or producer.op_type not in op_types:
                slow.append(node.name)
                floated.add(node.name)
    return slow


def _keeps_fp32(node: onnx.NodeProto) -> bool:
    """Nodes marked ``openatc.keep_fp32`` (e.g. AIPP's exact float32 colour conversion) stay float."""
    return any(prop.key == "openatc.keep_fp32" for prop in node.metadata_props)


def _prepared(model: ir.Model) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.quant_utils import update_opset_version

    proto = ir.to_proto(model)
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # noqa: BLE001 - the quantizer copes with missing shapes
        logger.debug("quantization: shape inference failed: %s", exc)
    return update_opset_version(proto, QuantType.QInt8)


def quantize_gear(model: ir.Model, ctx: PassContext, gear: str = "gear0") -> ir.Model:
    """The QDQ INT8 version of one gear's optimized FP32 graph; its report in ``metadata_props``.

    One function for the whole sequence of the module docstring (steps 1-5), so that the order
    of calibration, emission, fallback and report reads in one place.
    """
    opts: QuantizationOptions = ctx.options.quantization  # type: ignore[attr-defined]
    metric = getattr(ctx.options, "accuracy_metric", None)
    factory = _observer_factory(ctx, opts.algorithm, dict(opts.algorithm_options), opts.source)
    if metric is None and opts.accuracy_target is not None and not 0.0 < opts.accuracy_target <= 1.0:
        raise OpenATCError(
            "E10060",
            f"{opts.source}: accuracy_target {opts.accuracy_target} is not a cosine in (0, 1]",
            hint="e.g. 0.99; other ranges need a Python accuracy_metric (openatc.build(..., accuracy_metric=fn)).",
        )
    specs = _specs(model)
    _check_atc_shapes(opts, specs)
    samples = find_samples(opts, specs)
    calib, holdout, check = _split(samples, opts)
    held = len(samples) - len(calib)  # 0: the checks run on (up to 16) calibration samples
    proto = _prepared(model)
    excluded = _excluded(proto, opts)
    tensors = float_tensors(proto, opts.op_types, excluded)
    logger.info(
        "quantization (%s): calibrating %d activation(s) with '%s' on %d sample(s), %d held out",
        gear,
        len(tensors),
        opts.algorithm,
        len(calib),
        held,
    )
    full_range = _observer_factory(ctx, "minmax") if opts.algorithm != "minmax" else None
    ranges = calibrate(proto, calib, tensors, factory, symmetric=opts.activation_symmetric, full_range=full_range)

    def emit(skip: set[str]) -> onnx.ModelProto:
        return emit_qdq(
            proto,
            ranges,
            per_channel=opts.per_channel,
            symmetric=opts.activation_symmetric,
            op_types=opts.op_types,
            excluded=skip,
        )

    qdq = emit(excluded)
    summary: dict[str, Any] = {
        "algorithm": opts.algorithm,
        "config": opts.source,
        "per_channel": opts.per_channel,
        "weights": "int8 symmetric" + (" per-channel" if opts.per_channel else " per-tensor"),
        "activations": "int8 symmetric" if opts.activation_symmetric else "uint8 asymmetric",
        "samples": {"calibration": len(calib), "held_out": held},
        "skipped": sorted(excluded),
    }
    if opts.accuracy_target is not None or metric is not None:
        summary["samples"]["accuracy_check"] = len(check)
        evaluator = Evaluator(proto, check, metric) if metric else Evaluator(proto, check)
        qdq, fallback = _meet_target(proto, qdq, emit, excluded, evaluator, holdout, opts)
        summary.update(fallback)
    rows = layer_report(proto, qdq, holdout.subset(range(min(len(holdout), _REPORT_SAMPLES))))
    floated = excluded | set(summary.get("fallback_layers", ()))
    layers = quantized_nodes(qdq, floated, opts.op_types)
    summary["int8_layers"] = len(layers)
    summary["float_layers"] = sum(
        1 for n in qdq.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.name not in layers
    )
    if rows:
        summary["worst_tensor"] = min(rows, key=lambda r: r["cosine"])
        logger.info("quantization (%s): worst quantized tensors vs FP32\n%s", gear, worst_layers_table(rows))
    result = ir.from_proto(qdq)
    result.graph.sort()  # the quantizer appends its Q/DQ nodes; backends may run nodes in order
    result.metadata_props[_REPORT_KEY] = json.dumps(summary, sort_keys=True)
    result.metadata_props[_LAYERS_KEY] = json.dumps(rows)
    logger.info("quantization (%s): %d layer(s) INT8, %d float", gear, summary["int8_layers"], summary["float_layers"])
    return result


def _check_atc_shapes(opts: QuantizationOptions, specs: list[InputSpec]) -> None:
    for name, dims in opts.shapes:
        spec = next((s for s in specs if s.name == name), None)
        if spec is None:
            raise OpenATCError(
                "E10061",
                f"{opts.source}: input_shape names '{name}', not an input of the model; inputs: "
                + ", ".join(s.name for s in specs),
            )
        if tuple(dims) != spec.shape:
            raise OpenATCError(
                "E10061",
                f"{opts.source}: input_shape gives '{name}' {list(dims)}, but the build compiles {list(spec.shape)}",
                hint="Use the same shape as --input_shape.",
            )


def _meet_target(
    proto: onnx.ModelProto,
    qdq: onnx.ModelProto,
    emit: Callable[[set[str]], onnx.ModelProto],
    excluded: set[str],
    evaluator: Evaluator,
    holdout: Samples,
    opts: QuantizationOptions,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Returns the most sensitive layers to float until the target is met (or the budget is spent).

    1. Rank: every quantized layer by the error it adds locally (its output's cosine drop over
       its inputs' in the per-layer report); the first ``_SENSITIVITY_CANDIDATES`` are then
       measured exactly (the model's score with only that layer in float) and those that help
       go first, most helpful first.
    2. Search: the shortest prefix of that order whose return to float meets the target, by
       bisection over the prefix length (error spread over many layers needs many of them back
       in float, which one layer at a time cannot find).
    3. Prune: layers of the prefix, least important first, go back to INT8 when the target still
       holds without them (at most ``_PRUNE_TRIALS`` tries).
    """
    target = opts.accuracy_target
    score = evaluator(qdq)
    info: dict[str, Any] = {"accuracy_target": target, "accuracy_before": round(score, 6), "fallback_layers": []}
    logger.info(
        "quantization: accuracy on %d sample(s) (%d held out): %.6f (target %s)",
        len(evaluator.samples),
        len(holdout),
        score,
        target,
    )
    if target is None or score >= target or opts.max_fallback_layers == 0:
        info["accuracy"] = round(score, 6)
        if target is not None and score < target:
            logger.warning("quantization: accuracy %.6f misses the target %g; fallback is off", score, target)
        info["target_met"] = target is None or score >= target
        return qdq, info
    ranked = _ranked_candidates(proto, qdq, holdout, excluded, opts.op_types)
    # the sensitivity only orders the candidates: a few samples do (the fallback itself is judged on all)
    few = evaluator.first(_SENSITIVITY_SAMPLES)
    base = few(qdq) if few is not evaluator else score
    measured = []
    for name in ranked[:_SENSITIVITY_CANDIDATES]:
        measured.append((few(emit(excluded | {name})), name))
    measured.sort(key=lambda item: -item[0])
    info["sensitivity"] = [{"layer": n, "accuracy_if_float": round(s, 6)} for s, n in measured]
    helpful = [n for s, n in measured if s > base]
    order = helpful + [n for n in ranked if n not in helpful]
    limit = len(order) if opts.max_fallback_layers is None else min(len(order), opts.max_fallback_layers)
    search: list[dict[str, Any]] = []

    def trial(layers: list[str]) -> tuple[float, onnx.ModelProto]:
        model = emit(excluded | set(layers))
        value = evaluator(model)
        search.append({"float_layers": len(layers), "accuracy": round(value, 6)})
        logger.info("quantization: %d layer(s) back to float: accuracy %.6f", len(layers), value)
        return value, model

    top_score, top_model = trial(order[:limit])
    if top_score < target:  # even the whole budget in float misses: keep the best reached
        if top_score > score:
            qdq, score, chosen = top_model, top_score, order[:limit]
        else:
            chosen = []
    else:
        low, high, best = 0, limit, (top_score, top_model)
        while high - low > 1:  # invariant: prefix ``low`` misses the target, prefix ``high`` meets it
            middle = (low + high) // 2
            value, model = trial(order[:middle])
            if value >= target:
                high, best = middle, (value, model)
            else:
                low = middle
        (score, qdq), chosen = best, order[:high]
        for name in list(reversed(chosen[:-1]))[:_PRUNE_TRIALS]:
            rest = [n for n in chosen if n != name]
            value, model = trial(rest)
            if value >= target:
                chosen, score, qdq = rest, value, model
    info.update(fallback_layers=chosen, accuracy=round(score, 6), target_met=score >= target, search=search)
    if score >= target:
        logger.info("quantization: target %g met with %d layer(s) in float: %s", target, len(chosen), ", ".join(chosen))
    else:
        logger.warning(
            "quantization: accuracy %.6f still misses the target %g with %d layer(s) in float (%s)",
            score,
            target,
            len(chosen),
            ", ".join(chosen[:20]) + (" ..." if len(chosen) > 20 else ""),
        )
    return qdq, info


def _ranked_candidates(
    proto: onnx.ModelProto, qdq: onnx.ModelProto, holdout: Samples, excluded: set[str], op_types: tuple[str, ...]
) -> list[str]:
    """Quantized layers, most error added first (from the per-layer report on a few samples)."""
    rows = layer_report(proto, qdq, holdout.subset(range(min(len(holdout), 4))))
    cosine = {r["tensor"]: r["cosine"] for r in rows}
    layers = set(quantized_nodes(qdq, excluded, op_types))
    added = []
    for node in proto.graph.node:
        if node.name not in layers:
            continue
        out = min((cosine.get(o, 1.0) for o in node.output), default=1.0)
        inputs = min((cosine.get(i, 1.0) for i in node.input), default=1.0)
        added.append((inputs - out, node.name))
    added.sort(key=lambda item: -item[0])
    return [name for _, name in added]


def dequantized_names(graph: onnx.ModelProto) -> dict[str, str]:
    """Tensor name -> the DequantizeLinear output carrying its quantized value (QDQ graphs)."""
    return dq_map(graph)


def quantization_report(model: ir.Model) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary and per-layer rows :func:`quantize_gear` recorded (empty when it did not run)."""
    summary = model.metadata_props.get(_REPORT_KEY)
    rows = model.metadata_props.get(_LAYERS_KEY)
    return (json.loads(summary) if summary else {}), (json.loads(rows) if rows else [])


def _atomic_write(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.staging")
    try:
        staging.write_text(text)
        os.replace(staging, path)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise OpenATCError("E50004", f"cannot write '{path}': {exc.strerror or exc}") from None


def write_layer_reports(om_path: Path, per_gear: dict[str, list[dict[str, Any]]]) -> tuple[Path, Path]:
    """``<output>_quant_report.csv`` and ``.json`` next to the .om: one row per quantized tensor and gear."""
    stem = om_path.name[: -len(".om")] if om_path.name.endswith(".om") else om_path.name
    csv_path = om_path.with_name(f"{stem}_quant_report.csv")
    json_path = om_path.with_name(f"{stem}_quant_report.json")
    columns = ["gear", "tensor", "node", "op_type", "cosine", "max_abs_error", "relative_error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for gear, rows in per_gear.items():
        for row in rows:
            writer.writerow({"gear": gear, **row})
    _atomic_write(csv_path, buffer.getvalue())
    _atomic_write(json_path, json.dumps({"gears": per_gear}, indent=1))
    return csv_path, json_path
