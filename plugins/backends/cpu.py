"""The ``cpu`` backend: ONNX Runtime's CPU execution provider.

Weights are never copied: each stubbed initializer is handed to ONNX Runtime with
``SessionOptions.add_initializer`` as a view of the memory-mapped .om, and the stub itself points
at the same bytes in the .om (ONNX Runtime's graph optimizers read initializer data from the
file the stub names, so both must agree). When several gears share the weights, weight
prepacking is disabled (``session.disable_prepacking``): prepacked copies would be per session;
and their sessions take activation memory from one arena registered with ONNX Runtime's
environment (``session.use_env_allocators``), so gears do not each keep their own peak.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import point_stubs_at, stub_names
from openatc.hookspecs import hookimpl
from openatc.types import Backend, BackendCapabilities, CompileContext, LoadContext

SOC_VERSIONS = ("cpu", "x86_64", "aarch64")
#: ONNX Runtime graph optimizers the cpu backend turns off. SkipLayerNormFusion (Add +
#: LayerNormalization -> SkipLayerNormalization) fires once shapes are static and made the example
#: encoder 8-10% slower at every size measured (1x64 .. 8x128, 1 and 2 threads; see benchmarks/).
DISABLED_ORT_OPTIMIZERS = ("SkipLayerNormFusion",)
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


def _load(ctx: LoadContext) -> OrtExecutor:
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(ctx.graph)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    threads = ctx.options.get("intra_op_num_threads")
    if threads:
        options.intra_op_num_threads = int(threads)
    if ctx.share_weights:
        options.add_session_config_entry("session.disable_prepacking", "1")
        _register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    names = stub_names(model)
    values = []
    if names:
        if ctx.om_path is None:
            raise OpenATCError("E40003", "the cpu backend needs the .om path to map its weights")
        point_stubs_at(model, ctx.om_path.name, dict(ctx.weight_offsets))
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
        ),
        compile=_compile,
        load=_load,
        versions={"onnxruntime": _version()},
        description="ONNX Runtime, CPU execution provider (all graph optimizations)",
        supports=_supports,
    )
