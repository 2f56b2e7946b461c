"""Precision control: ``--precision_mode`` (and ``_v2``), ``--keep_dtype``, ``--modify_mixlist``,
``--input_fp16_nodes``.

Two steps, both on the optimized ``onnx_ir`` graph of one gear (see docs/precision.md):

1. **Decide** a precision per layer (``fp16`` or ``fp32``) from the mode, the op lists, the user's
   keep list, large-range constants and, for the fp16 modes, the activation ranges measured on
   sample inputs (values that do not fit FP16 are kept FP32 under ``allow_mix_precision`` and
   named in a warning under the other modes).
2. **Convert**: FP16 layers get FP16 inputs (weights are stored in FP16, activations get a
   ``Cast``) and FP16 outputs; FP32 layers get a ``Cast`` back. A FP16 layer whose op the backend
   has no FP16 kernel for (``BackendCapabilities.fp16_ops``) keeps FP16 storage and computes in
   FP32 between a Cast up and a Cast down: the numbers are those of FP16 storage with FP32
   accumulation, which is what FP16 hardware (Ascend's cube units included) computes.

The conversion (:mod:`openatc.precision._convert`) is written on ``onnx_ir`` rather than by
calling ONNX Runtime's ``onnxruntime.transformers.float16``: the host may not import a backend
library, and the emulated layers (FP16 storage, FP32 compute) have no equivalent there. Its op
block list is reused as data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import walk_nodes
from openatc.precision._convert import (
    _ANY_INPUT_OPS,
    _FLOAT,
    FP16_MAX,
    Converter,
    _float_inputs,
    _is_const,
)

if TYPE_CHECKING:
    from openatc.types import Backend, PassContext

__all__ = ["MODES", "MODES_V2", "PrecisionOptions", "apply_precision", "parse_precision", "precision_report"]

logger = logging.getLogger(__name__)

#: --precision_mode names (ATC aliases map onto one of five behaviours).
MODES = {
    "force_fp16": "force_fp16",
    "allow_fp32_to_fp16": "allow_fp32_to_fp16",
    "must_keep_origin_dtype": "must_keep_origin_dtype",
    "allow_mix_precision": "allow_mix_precision",
    "allow_mix_precision_fp16": "allow_mix_precision",
    "force_fp32": "force_fp32",
    "cube_fp16in_fp32out": "force_fp32",
}
#: --precision_mode_v2 names and the --precision_mode behaviour each one is.
MODES_V2 = {
    "fp16": "force_fp16",
    "origin": "must_keep_origin_dtype",
    "cube_fp16in_fp32out": "force_fp32",
    "mixed_float16": "allow_mix_precision",
}
#: ATC modes that need BF16 or HiF8 arithmetic, which no openatc target computes in yet.
_UNSUPPORTED = ("allow_mix_precision_bf16", "allow_fp32_to_bf16", "mixed_bfloat16", "mixed_hif8", "cube_hif8")
_MIXED = ("allow_mix_precision",)

#: Under allow_mix_precision, activations whose sample maximum exceeds this stay FP32 (a margin
#: below FP16_MAX: sample inputs rarely show the largest values a model will see).
FP16_SAFE = FP16_MAX / 4

#: Matrix ("cube") ops: FP16 under allow_fp32_to_fp16 and on the mixed-precision white list.
CUBE_OPS = frozenset(
    {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "FusedConv", "FusedGemm", "FusedMatMul", "Attention"}
    | {"MultiHeadAttention"}
)
#: Ops that overflow or lose accuracy in FP16: FP32 under allow_mix_precision (black list).
BLACK_OPS = frozenset(
    {
        "ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
        "ReduceProd", "Pow", "Exp", "Log", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax", "Softplus",
        "LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization",
        "InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization", "LpNormalization", "CumSum",
    }
)  # fmt: skip
#: Ops never converted (no FP16 meaning, or type constraints the converter does not model):
#: ONNX Runtime's ``float16.DEFAULT_OP_BLOCK_LIST`` plus control flow, Resize and the random ops.
BLOCKED_OPS = frozenset(
    {
        "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer", "FeatureVectorizer",
        "Imputer", "LabelEncoder", "LinearClassifier", "LinearRegressor", "Normalizer", "OneHotEncoder",
        "RandomUniformLike", "SVMClassifier", "SVMRegressor", "Scaler", "TreeEnsembleClassifier",
        "TreeEnsembleRegressor", "TreeEnsemble", "ZipMap", "NonMaxSuppression", "TopK", "RoiAlign", "Range",
        "CumSum", "Min", "Max", "Upsample", "Resize", "If", "Loop", "Scan", "RandomNormalLike", "Multinomial",
        "Bernoulli", "EyeLike", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
    }
)  # fmt: skip
#: Ascend IR op type names (as in ATC's keep_dtype files and mixlists) -> ONNX op types.
ASCEND_ALIASES = {
    "Conv2D": "Conv", "Conv3D": "Conv", "Conv2DTranspose": "ConvTranspose", "MatMulV2": "MatMul",
    "BatchMatMul": "MatMul", "BatchMatMulV2": "MatMul", "ReduceSumD": "ReduceSum", "ReduceMeanD": "ReduceMean",
    "SoftmaxV2": "Softmax", "RealDiv": "Div", "LayerNorm": "LayerNormalization", "Square": "Pow",
    "FullyConnection": "Gemm", "Relu6": "Clip", "Exp": "Exp", "Rsqrt": "Sqrt",
}  # fmt: skip


@dataclass(frozen=True)
class PrecisionOptions:
    """The precision flags, validated. ``mode`` is None when no flag chose one (the backend's default)."""

    mode: str | None = None
    flag: str = ""  # the flag and value as given, e.g. "--precision_mode=allow_mix_precision"
    keep_names: frozenset[str] = frozenset()
    keep_types: frozenset[str] = frozenset()
    white_add: frozenset[str] = frozenset()
    white_remove: frozenset[str] = frozenset()
    black_add: frozenset[str] = frozenset()
    black_remove: frozenset[str] = frozenset()
    input_fp16_nodes: tuple[str, ...] = ()
    keep_file: str = field(default="", compare=False)


# -- parsing ---------------------------------------------------------------------------------------
def parse_precision(given: Mapping[str, str]) -> PrecisionOptions:
    """Validates the precision flags of one build (E10001 for bad values, files and combinations)."""
    v1, v2 = given.get("precision_mode", ""), given.get("precision_mode_v2", "")
    if v1 and v2:
        raise OpenATCError(
            "E10001",
            f"--precision_mode={v1} and --precision_mode_v2={v2} cannot be given together",
            hint="Keep one of them.",
        )
    mode, flag = None, ""
    if v1 or v2:
        name, table = ("precision_mode", MODES) if v1 else ("precision_mode_v2", MODES_V2)
        value = v1 or v2
        flag = f"--{name}={value}"
        if value in _UNSUPPORTED:
            raise OpenATCError(
                "E10001",
                f"{flag} needs BF16/HiF8 arithmetic, which no openatc target computes in",
                hint="Use allow_mix_precision (mixed_float16) or force_fp16 (fp16).",
            )
        if value not in table:
            raise OpenATCError("E10001", f"{flag} is not a precision mode", hint="Use one of: " + ", ".join(table))
        mode = table[value]
    keep_names, keep_types, keep_file = _keep_dtype(given.get("keep_dtype", ""))
    lists = _mixlist(given.get("modify_mixlist", ""), mode)
    fp16_inputs = tuple(n.strip() for n in given.get("input_fp16_nodes", "").split(";") if n.strip())
    return PrecisionOptions(mode, flag, keep_names, keep_types, *lists, fp16_inputs, keep_file)


def _read(flag: str, value: str) -> str:
    path = Path(value)
    if not path.is_file():
        raise OpenATCError("E10001", f"--{flag}={value}: file not found", hint="Check the path.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenATCError("E10001", f"--{flag}={value}: cannot read the file: {exc}") from None


def _op_type(name: str) -> str:
    return ASCEND_ALIASES.get(name, name)


def _keep_dtype(value: str) -> tuple[frozenset[str], frozenset[str], str]:
    """--keep_dtype: one node name or ``OpType::Type`` per line; ``#`` comments."""
    if not value:
        return frozenset(), frozenset(), ""
    names, types = set(), set()
    for line in _read("keep_dtype", value).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("OpType::"):
            types.add(_op_type(line[len("OpType::") :].strip()))
        else:
            names.add(line)
    return frozenset(names), frozenset(types), value


def _mixlist(value: str, mode: str | None) -> tuple[frozenset[str], ...]:
    """--modify_mixlist JSON: ``{"black-list"|"white-list"|"gray-list": {"to-add": [], "to-remove": []}}``."""
    empty: tuple[frozenset[str], ...] = (frozenset(),) * 4
    if not value:
        return empty
    if mode not in _MIXED:
        raise OpenATCError(
            "E10001",
            f"--modify_mixlist={value} needs a mixed-precision mode",
            hint="Add --precision_mode=allow_mix_precision (or --precision_mode_v2=mixed_float16).",
        )
    try:
        data = json.loads(_read("modify_mixlist", value))
    except json.JSONDecodeError as exc:
        raise OpenATCError("E10001", f"--modify_mixlist={value}: not valid JSON: {exc}") from None
    out: dict[tuple[str, str], set[str]] = {}
    if not isinstance(data, dict):
        raise OpenATCError("E10001", f"--modify_mixlist={value}: the top level must be a JSON object")
    for list_name, edits in data.items():
        if list_name not in ("black-list", "white-list", "gray-list") or not isinstance(edits, dict):
            raise OpenATCError(
                "E10001",
                f"--modify_mixlist={value}: unknown entry '{list_name}'",
                hint='Use "black-list", "white-list" or "gray-list", each {"to-add": [...], "to-remove": [...]}.',
            )
        for action, ops in edits.items():
            if action not in ("to-add", "to-remove") or not isinstance(ops, list):
                raise OpenATCError(
                    "E10001", f"--modify_mixlist={value}: '{list_name}.{action}' must be to-add or to-remove lists"
                )
            out.setdefault((list_name, action), set()).update(_op_type(str(o)) for o in ops)
    get = lambda k: frozenset(out.get(k, ()))  # noqa: E731
    gray = get(("gray-list", "to-add"))
    return (
        get(("white-list", "to-add")),
        get(("white-list", "to-remove")) | gray,
        get(("black-list", "to-add")),
        get(("black-list", "to-remove")) | gray,
    )


# -- deciding ----------------------------------------------------------------------------------------
def _computes_float(node: ir.Node) -> bool:
    if node.op_type in _ANY_INPUT_OPS or node.op_type in BLOCKED_OPS:
        return False
    if any(isinstance(a.value, ir.Graph) for a in node.attributes.values()):
        return False
    return any(v is not None and v.dtype == _FLOAT for v in node.outputs) and bool(_float_inputs(node))


def _large_constant(node: ir.Node) -> bool:
    for _, value in _float_inputs(node):
        if _is_const(value) and value.const_value.size:
            array = value.const_value.numpy()
            if np.issubdtype(array.dtype, np.floating) and float(np.nanmax(np.abs(array))) > FP16_MAX:
                return True
    return False


def _decide(graph: ir.Graph, mode: str, opts: PrecisionOptions, ranges: Mapping[ir.Value, float]) -> dict[ir.Node, str]:
    """Precision of every float-computing layer: ``fp16`` or ``fp32``."""
    white = (CUBE_OPS | opts.white_add) - opts.white_remove - opts.black_add
    black = (BLACK_OPS | opts.black_add) - opts.black_remove - opts.white_add
    half: set[ir.Value] = set()  # activations stored in FP16
    for value in graph.inputs:
        if value.name in opts.input_fp16_nodes:
            half.add(value)
    risky = {v for v, top in ranges.items() if top > FP16_SAFE}
    subgraph_reads = _read_by_subgraphs(graph)  # subgraphs are not converted: what they read stays FP32
    decided: dict[ir.Node, str] = {}
    for node in graph:
        if not _computes_float(node):
            continue
        op = _FUSED_FROM.get(node.op_type, node.op_type)
        kept = node.name in opts.keep_names or node.op_type in opts.keep_types or op in opts.keep_types
        kept = kept or "openatc.keep_fp32" in node.metadata_props  # e.g. AIPP's exact float32 CSC
        if mode in ("must_keep_origin_dtype", "force_fp32") or kept:
            choice = "fp32"
        elif mode == "force_fp16":
            choice = "fp16"
        elif mode == "allow_fp32_to_fp16":
            choice = "fp16" if op in CUBE_OPS else _follow(node, half, vector_fp32=True)
        elif op in black or node.op_type in black or _large_constant(node) or _touches(node, risky):
            choice = "fp32"
        else:
            choice = "fp16" if op in white and node.op_type not in black else _follow(node, half, vector_fp32=False)
        if choice == "fp16" and any(v in subgraph_reads for v in node.outputs):
            choice = "fp32"
        decided[node] = choice
        if choice == "fp16":
            half.update(v for v in node.outputs if v.dtype == _FLOAT)
    return decided


def _read_by_subgraphs(graph: ir.Graph) -> set[ir.Value]:
    """Values of ``graph`` that nodes of its subgraphs (If/Loop/Scan bodies) read directly."""
    found: set[ir.Value] = set()
    for node in walk_nodes(graph):
        if node.graph is not graph:
            found.update(v for v in node.inputs if v is not None and v.graph is graph)
    return found


def _touches(node: ir.Node, values: set[ir.Value]) -> bool:
    return any(v in values for v in node.outputs) or any(v in values for _, v in _float_inputs(node))


#: Fused ops of the passes and the op they were fused from: lists and keep_dtype types name the latter.
_FUSED_FROM = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul", "BiasGelu": "Gelu"}

_MOVEMENT_OPS = frozenset(
    {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Split", "Concat", "Gather"}
    | {"GatherElements", "GatherND", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth"}
)


def _follow(node: ir.Node, half: set[ir.Value], *, vector_fp32: bool) -> str:
    """Gray ops follow their activations: FP16 when every non-constant float input is FP16."""
    if vector_fp32 and node.op_type not in _MOVEMENT_OPS:
        return "fp32"
    activations = [v for _, v in _float_inputs(node) if not _is_const(v)]
    return "fp16" if all(v in half for v in activations) and (activations or node.op_type == "Gather") else "fp32"


# -- sample ranges -----------------------------------------------------------------------------------
def _sample_ranges(model: ir.Model, backend: Backend, ctx: PassContext) -> dict[ir.Value, float]:
    """Largest |value| of every float activation on generated inputs, run by the backend in FP32.

    Inputs: floats ~ N(0, 1), integers in [0, 16), booleans at random; symbolic dims take the
    lower bound of their --input_shape range (else 1). Skipped (empty result) for models over
    1 GiB of weights or when the backend cannot run the probe.
    """
    from openatc.types import CompileContext, LoadContext

    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if weight_bytes > 1 << 30:
        logger.info("precision: model over 1 GiB of weights; FP16 range check on sample inputs skipped")
        return {}
    probe = ir.serde.serialize_model(model)
    values = {}
    for node in model.graph:
        for value in node.outputs:
            if value.dtype == _FLOAT and value.name and value not in model.graph.outputs:
                values[value.name] = value
    for value in model.graph.outputs:
        if value.name:
            values[value.name] = value
    existing = {o.name for o in probe.graph.output}
    import onnx

    for name in values:
        if name not in existing:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    rng = np.random.default_rng(0)
    feeds = {}
    lows = {s.name: [r[0] for r in s.ranges] for s in getattr(ctx.options, "input_shape", ()) if s.ranges}
    for value in model.graph.inputs:
        if value.const_value is not None or value.shape is None or value.dtype is None:
            continue
        low = lows.get(value.name or "", [])  # a range compile: the smallest shape it accepts
        shape = [
            d if isinstance(d, int) else (max(low[i], 1) if i < len(low) else 1) for i, d in enumerate(value.shape)
        ]
        dtype = np.dtype(value.dtype.numpy())
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            feeds[value.name] = rng.integers(0, 16, shape).astype(dtype)
    names = [o.name for o in probe.graph.output]
    try:
        probe_ir = ir.serde.deserialize_model(probe)
        payload = backend.compile(probe_ir, CompileContext(options=ctx.options, gear="precision-probe"))
        executor = backend.load(LoadContext(graph=probe.SerializeToString(), payload=payload, weights={}, gear="probe"))
        results = executor.run(feeds, names)
    except Exception as exc:  # noqa: BLE001 - a probe failure only costs the range check
        logger.warning("precision: FP16 range check on sample inputs skipped: %s", str(exc).splitlines()[0])
        return {}
    ranges: dict[ir.Value, float] = {}
    for name, array in zip(names, results, strict=True):
        if name in values and isinstance(array, np.ndarray) and array.size and array.dtype.kind == "f":
            finite = array[np.isfinite(array)]
            ranges[values[name]] = float(np.abs(finite).max()) if finite.size else 0.0
    return ranges


# -- the build step ----------------------------------------------------------------------------------
_REPORT_KEY = "openatc.precision"


def _resolve_mode(opts: PrecisionOptions, ctx: PassContext) -> tuple[str, str]:
    if opts.mode is not None:
        return opts.mode, "flag"
    return ctx.capabilities.default_precision_mode, "backend default"


def apply_precision(model: ir.Model, ctx: PassContext) -> None:
    """Applies the precision flags to one gear's optimized graph (in place); records a report.

    The report (mode, where it came from, layer counts, FP16 layers, kept layers, overflow
    findings) is stored in the model's ``metadata_props`` under ``openatc.precision`` and read
    back by :func:`precision_report` for the manifest.
    """
    opts: PrecisionOptions = getattr(ctx.options, "precision", None) or PrecisionOptions()
    mode, source = _resolve_mode(opts, ctx)
    graph = model.graph
    unknown_inputs = [n for n in opts.input_fp16_nodes if n not in {v.name for v in graph.inputs}]
    if unknown_inputs:
        raise OpenATCError(
            "E10016",
            f"--input_fp16_nodes names {', '.join(unknown_inputs)}, which is not an input of the model; "
            f"inputs: {', '.join(v.name or '?' for v in graph.inputs)}",
        )
    half_inputs = [v for v in graph.inputs if v.name in opts.input_fp16_nodes and v.dtype == _FLOAT]
    fp16_mode = mode not in ("must_keep_origin_dtype", "force_fp32")
    _check_backend_runs_fp16(ctx, mode if fp16_mode else "", opts, bool(half_inputs))
    ranges: dict[ir.Value, float] = {}
    if fp16_mode:
        backend = _backend(ctx)
        ranges = _sample_ranges(model, backend, ctx) if backend is not None else {}
    _warn_unknown_keep(graph, opts)
    decided = _decide(graph, mode, opts, ranges)
    overflow = _overflowing(decided, ranges)
    if overflow and mode != "allow_mix_precision":
        logger.warning(
            "precision: %s: FP16 activations exceed the FP16 range (%g) on sample inputs in %d layer(s): %s; "
            "expect inf/NaN. Use --precision_mode=allow_mix_precision or list them in --keep_dtype.",
            opts.flag or f"--precision_mode={mode}",
            FP16_MAX,
            len(overflow),
            ", ".join(f"{n} ({t}, max {m:.3g})" for n, t, m in overflow[:10]),
        )
    converter = Converter(graph, ctx.capabilities.fp16_ops)
    keep_half = getattr(ctx.options, "output_type", None) == "float16"
    if half_inputs or "fp16" in decided.values():  # FP32 modes leave the graph untouched
        converter.convert(decided, half_inputs, keep_half)
    if converter.clipped:
        logger.warning(
            "precision: weights beyond the FP16 range clipped to +-%g: %s", FP16_MAX, ", ".join(converter.clipped[:10])
        )
    kept = sorted(n.name or n.op_type for n, c in decided.items() if c == "fp32")
    report = {
        "mode": mode,
        "source": source,
        "flag": opts.flag,
        "native_precision": ctx.capabilities.native_precision,
        "layers": {"fp16": sum(c == "fp16" for c in decided.values()), "fp32": len(kept)},
        "fp16_emulated": converter.emulated,
        "fp32_layers": kept if fp16_mode else [],
        "fp16_inputs": [v.name for v in half_inputs],
        "overflow_on_samples": [{"layer": n, "op": t, "max": m} for n, t, m in overflow],
        "clipped_weights": converter.clipped,
    }
    model.metadata_props[_REPORT_KEY] = json.dumps(report, sort_keys=True)
    logger.info("precision: %s (%s): %d layer(s) FP16, %d FP32", mode, source, report["layers"]["fp16"], len(kept))


def precision_report(model: ir.Model) -> dict[str, Any]:
    """The report :func:`apply_precision` recorded on ``model`` (empty when it did not run)."""
    text = model.metadata_props.get(_REPORT_KEY)
    return json.loads(text) if text else {}


def _check_backend_runs_fp16(ctx: PassContext, mode: str, opts: PrecisionOptions, half_inputs: bool) -> None:
    """E10001 when FP16 is asked of a backend whose capabilities do not list float16."""
    dtypes = ctx.capabilities.dtypes
    if not dtypes or "float16" in dtypes or not (mode or half_inputs):
        return
    asked = (opts.flag or f"--precision_mode={mode}") if mode else "--input_fp16_nodes"
    raise OpenATCError(
        "E10001",
        f"{asked} needs float16 tensors, which the backend for --soc_version={ctx.options.soc_version} "
        f"does not run (it runs {', '.join(sorted(dtypes))})",
        hint="Use --precision_mode=must_keep_origin_dtype (or force_fp32) for this target.",
    )


def _backend(ctx: PassContext) -> Backend | None:
    from openatc.manager import default_plugin_manager

    pm = getattr(ctx, "plugin_manager", None) or default_plugin_manager()
    try:
        return pm.backend_for_soc(ctx.options.soc_version)
    except OpenATCError:
        return None


def _overflowing(decided: Mapping[ir.Node, str], ranges: Mapping[ir.Value, float]) -> list[tuple[str, str, float]]:
    """FP16 layers whose outputs exceed FP16_MAX on the sample inputs: (name, op type, max)."""
    found = []
    for node, choice in decided.items():
        if choice != "fp16":
            continue
        top = max((ranges.get(v, 0.0) for v in node.outputs), default=0.0)
        if top > FP16_MAX:
            found.append((node.name or "?", node.op_type, top))
    return sorted(found, key=lambda item: -item[2])


def _warn_unknown_keep(graph: ir.Graph, opts: PrecisionOptions) -> None:
    if not opts.keep_names:
        return
    names = {n.name for n in graph}
    missing = sorted(opts.keep_names - names)
    if missing:
        logger.warning(
            "--keep_dtype=%s: no layer named %s in the optimized graph (unknown, or fused away); ignored",
            opts.keep_file,
            ", ".join(missing[:10]),
        )
