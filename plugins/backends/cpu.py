"""The ``cpu`` backend: ONNX Runtime's CPU execution provider.

Weights are never copied: each stubbed initializer is handed to ONNX Runtime with
``SessionOptions.add_initializer`` as a view of the memory-mapped .om, and the stub itself points
at the same bytes in the .om (ONNX Runtime's graph optimizers read initializer data from the
file the stub names, so both must agree).

When several gears share the weights (``share_weights``, the default with more than one gear)
and those weights feed kernels that ONNX Runtime prepacks (MatMul, Gemm, Attention), their
sessions are created through ONNX Runtime's C API with one *prepacked weights container* per
.om (:mod:`openatc.plugins.backends.ort_capi`): each weight is prepacked once and the packed copy
is shared by every gear; activations come from one arena in the C API's environment. The first
such session in a process maps ONNX Runtime's C library (about 30 MB of resident memory, most of
it shared, file-backed code). The ``prepack`` backend option chooses: ``auto`` (default; the
above when at least 1 MiB of shared weights is prepackable), ``shared`` or ``off``. With ``off``
(and without a C library next to the onnxruntime package) gears are Python sessions with
prepacking disabled (``session.disable_prepacking``) whose activations come from one arena
registered with ONNX Runtime's environment (``session.use_env_allocators``): less memory for
small models, slower MatMuls. A single gear (``share_weights=False``) keeps its own prepacked
Python session.
"""

from __future__ import annotations

import functools
import importlib.metadata
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import point_stubs_at, stub_names
from openatc.hookspecs import hookimpl
from openatc.plugins.backends import ort_capi
from openatc.types import Backend, BackendCapabilities, CompileContext, LoadContext, PassSpec

SOC_VERSIONS = ("cpu", "x86_64", "aarch64")
#: ONNX Runtime graph optimizers the cpu backend turns off. SkipLayerNormFusion (Add +
#: LayerNormalization -> SkipLayerNormalization) fires once shapes are static and made the example
#: encoder 8-10% slower at every size measured (1x64 .. 8x128, 1 and 2 threads; see benchmarks/).
#: WeightBiasQuantization quantizes the float weights of a layer that sits between a
#: DequantizeLinear and a QuantizeLinear: it would make INT8 a layer that an INT8 build kept float
#: (skip lists, accuracy fallback), so openatc's QDQ graph alone decides what runs in INT8.
DISABLED_ORT_OPTIMIZERS = ("SkipLayerNormFusion", "WeightBiasQuantization")
#: ONNX Runtime contrib ops (CPU kernels) that openatc's fusion passes may emit for this backend.
#: SkipLayerNormalization is offered, but its pass is off by default (see DISABLED_ORT_OPTIMIZERS).
FUSED_OPS = tuple(
    ("com.microsoft", op)
    for op in (
        "Attention",
        "MultiHeadAttention",
        "FusedConv",
        "FusedGemm",
        "FusedMatMul",
        "Gelu",
        "BiasGelu",
        "SkipLayerNormalization",
    )
)


#: Ops ONNX Runtime's CPU kernels run slower than an equal form the passes know:
#: PRelu broadcasts its slope element by element (prelu_lowering: 3.6 ms of MTCNN P-Net's 9 ms);
#: Attention (packed QKV) ran 0.3-1.5% slower than MultiHeadAttention after the separate Q, K, V
#: projections on BERT-base and ViT-base, both exporters (40-60 interleaved runs, 1 thread), and
#: the same on GPT-2 and the example encoder: attention_fusion writes MultiHeadAttention.
SLOW_OPS = frozenset({("", "PRelu"), ("com.microsoft", "Attention")})


def _compile(model: ir.Model, ctx: CompileContext) -> bytes | None:
    """The optimized ONNX graph is what ONNX Runtime runs: no separate payload."""
    del model, ctx
    return None


class OrtExecutor:
    """One ONNX Runtime session; keeps the weight views and OrtValues alive as long as it lives."""

    def __init__(self, session: Any, keepalive: tuple[Any, ...]) -> None:
        self.session = session
        self._keepalive = keepalive

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        names = output_names if type(output_names) is list else list(output_names)
        return self.session.run(names, feeds if type(feeds) is dict else dict(feeds))


@functools.cache
def _register_shared_arena() -> None:
    """One CPU arena in ONNX Runtime's environment (once per process), grown by what is requested."""
    import onnxruntime as ort

    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))  # 1: kSameAsRequested


#: ``backend_options["prepack"]`` values for gears that share weights (``share_weights``):
#: ``auto`` (default) is ``shared`` when the shared weights feed kernels that ONNX Runtime prepacks
#: (MatMul, Gemm, Attention: at least PREPACK_MIN_BYTES of them), else ``off``.
PREPACK_MODES = ("auto", "shared", "off")
#: Ops whose constant weight inputs ONNX Runtime's CPU kernels prepack (float32 MLAS GEMM).
PREPACKED_OPS = frozenset({"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "Attention"})
#: Below this many bytes of prepackable shared weights, ``auto`` keeps prepacking off: the C API
#: sessions measured 1-4% slower than Python sessions on conv nets, where nothing is prepacked.
PREPACK_MIN_BYTES = 1 << 20


def _prepackable_bytes(model: onnx.ModelProto, weights: Mapping[str, np.ndarray]) -> int:
    """Bytes of shared weights that feed prepacked kernels (each weight counted once)."""
    names = {
        name for node in model.graph.node if node.op_type in PREPACKED_OPS for name in node.input[1:] if name in weights
    }
    return sum(int(weights[n].nbytes) for n in names)


def _prepack_mode(ctx: LoadContext) -> str:
    mode = str(ctx.options.get("prepack", "auto"))
    if mode not in PREPACK_MODES:
        raise OpenATCError(
            "E40003",
            f"backend option prepack={mode!r} is not one of {', '.join(PREPACK_MODES)}",
            hint='Use Session(..., backend_options={"prepack": "auto"}), "shared" or "off".',
        )
    return mode


def _load(ctx: LoadContext) -> OrtExecutor | CApiExecutor:
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(ctx.graph)
    threads = ctx.options.get("intra_op_num_threads")
    names = stub_names(model)
    if names:
        if ctx.om_path is None:
            raise OpenATCError("E40003", "the cpu backend needs the .om path to map its weights")
        point_stubs_at(model, ctx.om_path.name, dict(ctx.weight_offsets))
    if ctx.share_weights:
        mode = _prepack_mode(ctx)
        if ctx.check_only:
            mode = "off"  # never run: no packed weights
        if mode == "auto":
            mode = "shared" if _prepackable_bytes(model, ctx.weights) >= PREPACK_MIN_BYTES else "off"
        if mode == "shared" and ort_capi.available() and _capi_types(model):
            return _load_capi(model, ctx, names, threads)
    options = ort.SessionOptions()
    # a check-only load (never run) needs the kernels and the weights, not ONNX Runtime's graph
    # rewrites: they only speed up runs and were 60-75% of the check's time on PP-OCR
    level = "ORT_DISABLE_ALL" if ctx.check_only else "ORT_ENABLE_ALL"
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    if ctx.share_weights:
        options.add_session_config_entry("session.disable_prepacking", "1")
        _register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    values = []
    if names:
        assert ctx.om_path is not None
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(ctx.om_path.resolve().parent)
        )
        for name in names:
            value = ort.OrtValue.ortvalue_from_numpy(ctx.weights[name])
            values.append(value)
            options.add_initializer(name, value)
    try:
        session = ort.InferenceSession(
            model.SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(DISABLED_ORT_OPTIMIZERS),
        )
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises several exception types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpenATCError(
            "E40003",
            f"ONNX Runtime cannot load gear '{ctx.gear}': {message}",
            hint="Check the operator named in the message; --soc_version=reference may run it.",
        ) from None
    return OrtExecutor(session, (values, ctx.weights, options))


class CApiExecutor:
    """One gear run through ONNX Runtime's C API, sharing prepacked weights with the other gears."""

    def __init__(self, session: ort_capi.CApiSession) -> None:
        self.session = session

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        return self.session.run(list(output_names), dict(feeds))


#: One prepacked-weights container per mapped .om (keyed by path, size and mtime), alive as long as
#: a gear of it is loaded.
_CONTAINERS: weakref.WeakValueDictionary[tuple[str, int, int], ort_capi.PrepackedWeights] = (
    weakref.WeakValueDictionary()
)


def _capi_types(model: onnx.ModelProto) -> bool:
    """Whether every graph input and output is a tensor of a type the C API path exchanges
    (numeric or bool; not strings, sequences or optionals, which stay on Python sessions)."""
    for value in (*model.graph.input, *model.graph.output):
        if not value.type.HasField("tensor_type"):
            return False
        if value.type.tensor_type.elem_type not in ort_capi.TENSOR_TYPES:
            return False
    return True


def _static_outputs(model: onnx.ModelProto) -> bool:
    """Whether every graph output has a fully known shape (then it cannot change between runs)."""
    for output in model.graph.output:
        tensor = output.type.tensor_type
        if not output.type.HasField("tensor_type") or not tensor.HasField("shape"):
            return False
        if any(not d.HasField("dim_value") for d in tensor.shape.dim):
            return False
    return True


def _load_capi(model: onnx.ModelProto, ctx: LoadContext, names: Sequence[str], threads: Any) -> CApiExecutor:
    config = {
        "optimization.disable_specified_optimizers": ",".join(DISABLED_ORT_OPTIMIZERS),
        "session.use_env_allocators": "1",
    }
    initializers: dict[str, np.ndarray] = {}
    container = None
    if names:
        assert ctx.om_path is not None
        # ONNX Runtime keeps one packed copy per distinct weight in the container, so every gear
        # runs prepacked MatMul/Gemm kernels for the memory of one.
        config["session.model_external_initializers_file_folder_path"] = str(ctx.om_path.resolve().parent)
        initializers = {name: ctx.weights[name] for name in names}
        stat = ctx.om_path.stat()
        key = (str(ctx.om_path.resolve()), stat.st_size, stat.st_mtime_ns)
        container = _CONTAINERS.get(key)
        if container is None:
            container = ort_capi.PrepackedWeights()
            _CONTAINERS[key] = container
    try:
        session = ort_capi.CApiSession(
            model.SerializeToString(),
            initializers=initializers,
            config=config,
            intra_op_num_threads=int(threads or 0),
            prepacked=container,
            static_outputs=_static_outputs(model),
        )
        ort_capi.release_free_memory()  # each session packs the weights, then drops the duplicate
    except ort_capi.CApiError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise OpenATCError(
            "E40003",
            f"ONNX Runtime cannot load gear '{ctx.gear}': {message}",
            hint="Check the operator named in the message; --soc_version=reference may run it.",
        ) from None
    return CApiExecutor(session)


@functools.cache
def _cpu_kernels() -> dict[tuple[str, str], list[tuple[int, int]]]:
    """ONNX Runtime's CPU kernels: (domain, op type) -> opset version ranges."""
    from onnxruntime.capi import _pybind_state as C  # the kernel registry is only exposed there

    kernels: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in C.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider":
            domain = "" if k.domain in ("", "ai.onnx") else k.domain
            kernels.setdefault((domain, k.op_name), []).append(tuple(k.version_range))
    return kernels


@functools.cache
def _fp16_kernels() -> frozenset[tuple[str, str]]:
    """(domain, op type) of ONNX Runtime's CPU kernels that take float16 (few: no MatMul or Conv on x86)."""
    from onnxruntime.capi import _pybind_state as C

    found = set()
    for k in C.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider" and any("tensor(float16)" in t for t in k.type_constraints.values()):
            found.add(("" if k.domain in ("", "ai.onnx") else k.domain, k.op_name))
    return frozenset(found)


def _supports(node: ir.Node, version: int) -> str | None:
    """None when ONNX Runtime's CPU provider runs ``node`` (a kernel, or a function it expands)."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    if domain == "" and node.op_type == "Constant":  # becomes an initializer, not a kernel
        return None
    ranges = _cpu_kernels().get((domain, node.op_type))
    if ranges and any(lo <= version <= hi for lo, hi in ranges):
        return None
    if onnx.defs.has(node.op_type, domain):
        schema = onnx.defs.get_schema(node.op_type, version, domain)
        if schema.has_function or schema.has_context_dependent_function:
            return None
    if ranges:
        spans = ", ".join(f"{lo}-{hi if hi < 1 << 30 else 'latest'}" for lo, hi in sorted(ranges))
        return f"ONNX Runtime's CPU provider has {node.op_type} for opsets {spans}, not {version}"
    return f"ONNX Runtime's CPU provider has no kernel for {(domain + '::') if domain else ''}{node.op_type}"


def _version() -> str:
    try:
        return importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _affine_to_depthwise(ctx: Any) -> ir.passes.PassBase:
    from openatc.plugins.passes.affine_to_depthwise import AffineToDepthwisePass

    return AffineToDepthwisePass()


@hookimpl
def openatc_backends() -> Iterator[Backend]:
    yield Backend(
        name="cpu",
        soc_versions=SOC_VERSIONS,
        capabilities=BackendCapabilities(
            op_types=None,
            dtypes=frozenset({"float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool"}),
            fused_ops=FUSED_OPS,
            native_precision="fp32",
            dynamic_shapes=True,
            fp16_ops=_fp16_kernels(),
            default_precision_mode="must_keep_origin_dtype",  # native FP32; docs/precision.md
            slow_ops=SLOW_OPS,
        ),
        compile=_compile,
        load=_load,
        passes=(
            PassSpec(
                "affine_to_depthwise",
                "layout",
                _affine_to_depthwise,
                order=10,
                description="x*a [+ b] with per-channel constants after a Conv becomes a depthwise 1x1 Conv "
                "(stays in ONNX Runtime's NCHWc layout).",
            ),
        ),
        versions={"onnxruntime": _version()},
        description="ONNX Runtime, CPU execution provider (all graph optimizations)",
        supports=_supports,
    )
