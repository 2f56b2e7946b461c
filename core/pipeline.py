"""The build: frontend ─► specialize ─► passes ─► precision ─► backend compile ─► .om writer.

The host never imports a frontend or a backend: both are records looked up in the plugin manager.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import gc
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from openatc import om
from openatc.aipp import apply_aipp
from openatc.errors import OpenATCError
from openatc.gears import GEAR_FLAGS, InputShape, gear_shapes
from openatc.graph import count_nodes, intermediate_bytes, op_histogram, split_weights, value_spec
from openatc.manager import OpenATCPluginManager, default_plugin_manager
from openatc.memory import plan_memory
from openatc.options import FRAMEWORKS, BuildOptions
from openatc.passmanager import PassRecord, missed_fusions, order_passes, run_passes
from openatc.precision import apply_precision, precision_report
from openatc.quantize import quantization_report, quantize_gear, write_layer_reports
from openatc.specialize import (
    apply_input_shapes,
    apply_output_types,
    check_input_shapes,
    check_static_inputs,
    cut_outputs,
    shape_inference_error,
)
from openatc.types import Backend, BackendCapabilities, CompileContext, Frontend, PassContext, PassSpec, TensorSpec

__all__ = ["BuildResult", "build_om"]

logger = logging.getLogger(__name__)

_PRODUCER_PACKAGES = ("onnx", "onnx-ir", "onnxscript", "numpy")


@dataclass
class BuildResult:
    """What a build produced: the .om path, its manifest and the pass reports (with timings)."""

    path: Path
    manifest: dict[str, Any]
    reports: dict[str, list[PassRecord]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Gear:
    name: str
    graph: bytes
    payload: bytes | None
    weights: dict[str, np.ndarray]
    info: dict[str, Any]
    digests: dict[str, str] = field(default_factory=dict)  # weight name -> content digest
    layers: list[dict[str, Any]] = field(default_factory=list)  # INT8: per-layer report rows


def _weight_digest(array: np.ndarray) -> str:
    h = hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B"))
    h.update(f"{array.dtype.str}{array.shape}".encode())
    return h.hexdigest()


def _keep_once(gear: _Gear, store: dict[str, np.ndarray]) -> None:
    """Points the gear's weights at the arrays earlier gears keep, so a build holds one copy of each."""
    for name, array in gear.weights.items():
        digest = _weight_digest(array)
        gear.digests[name] = digest
        gear.weights[name] = store.setdefault(digest, array)


def _frontend(pm: OpenATCPluginManager, framework: int) -> Frontend:
    frontends = pm.frontends()
    found = frontends.get(str(framework))
    if found is None:
        installed = ", ".join(f"{k} ({f.name})" for k, f in sorted(frontends.items())) or "none"
        raise OpenATCError(
            "E10055",
            f"--framework={framework} ({FRAMEWORKS.get(framework, '?')}) is not supported yet: no installed "
            f"frontend serves it; installed: {installed}",
            hint="Convert the model to ONNX and use --framework=5, or install a frontend plugin.",
        )
    return found


def build_om(options: BuildOptions, pm: OpenATCPluginManager | None = None) -> BuildResult:
    """Builds ``options.output + '.om'`` from ``options.model``; writes nothing on failure.

    One graph per gear: each gear gets a clone of the loaded model (weights shared, not copied),
    its own shapes, passes and backend compile; the weights are stored once for all gears.
    """
    with _young_objects_only():
        return _build_om(options, pm)


@contextlib.contextmanager
def _young_objects_only() -> Iterator[None]:
    """The cyclic garbage collector looks only at objects made during the build: the objects that
    exist before it (modules of onnx, onnxscript, numpy, ONNX Runtime, the caller's) are set aside
    (``gc.freeze``) and given back after. A full collection over them took about 80 ms, as long as
    a whole PP-OCR cls build; the graphs' own garbage is still collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _build_om(options: BuildOptions, pm: OpenATCPluginManager | None) -> BuildResult:
    pm = pm or default_plugin_manager()
    start = time.perf_counter()
    for warning in options.warnings:
        logger.warning(warning)
    for note in options.notes:
        logger.info(note)
    backend = pm.backend_for_soc(options.soc_version)
    _check_dynamic_support(options, backend)
    frontend = _frontend(pm, options.framework if options.framework is not None else -1)
    assert options.model is not None
    source_sha256 = _sha256_in_background(options.model)  # for the manifest; overlaps the build
    logger.info("loading %s with frontend '%s'", options.model, frontend.name)
    model = frontend.load(options.model, options.weight, options)
    check_input_shapes(model, options.input_shape)  # names, ranks, fixed dims: checked once
    cut_outputs(model, options.out_nodes)
    passes = order_passes([*pm.passes().values(), *backend.passes], switches=options.fusion_switches)
    ctx = PassContext(options=options, capabilities=_pass_capabilities(options, backend), plugin_manager=pm)
    plans = gear_shapes(options.input_shape, options.dynamic, options.input_format)
    strict = len(plans) > 1 and shape_inference_error(model) is None  # else onnx cannot judge the gears
    gears: list[_Gear] = []
    store: dict[str, np.ndarray] = {}  # weight digest -> the one array kept for every gear
    reports: dict[str, list[PassRecord]] = {}
    with _Progress(len(plans)) as progress:
        for index, shapes in enumerate(plans):
            name = f"gear{index}"
            progress.step(index, shapes)
            gear_model = _clone_for_gear(model) if len(plans) > 1 else model
            try:
                gear, reports[name] = _build_gear(name, gear_model, shapes, backend, options, passes, ctx, strict)
            except OpenATCError as exc:
                if len(plans) == 1:
                    raise
                raise OpenATCError(exc.code, f"{name} ({_shapes_text(shapes)}): {exc.message}", exc.hint) from exc
            if options.dynamic is not None and options.dynamic.kind in GEAR_FLAGS:
                gear.info["dims"] = list(options.dynamic.gears[index])
            _keep_once(gear, store)
            gears.append(gear)
            del gear_model, gear
    inputs = _merged_specs([g.info["inputs"] for g in gears], options.input_format)
    outputs = _merged_specs([g.info["outputs"] for g in gears])
    manifest, sections = _assemble(options, pm, backend, frontend, inputs, outputs, gears, source_sha256.result())
    path = _write_verified(options.om_path, sections, pm)
    if options.quantization is not None and options.quantization.report:
        csv_path, json_path = write_layer_reports(path, {g.name: g.layers for g in gears})
        logger.info("quantization: per-layer report in %s and %s", csv_path, json_path)
    seconds = time.perf_counter() - start
    logger.info("wrote %s (%d B, %d gear(s)) in %.2f s", path, path.stat().st_size, len(gears), seconds)
    return BuildResult(path, manifest, reports, seconds)


def _clone_for_gear(model: ir.Model) -> ir.Model:
    """A clone that shares the weights but no type object with ``model``: onnx_ir's clone shares
    the values' types, and setting a value's dtype changes its type object in place, so a gear's
    precision pass would otherwise change the model the next gears are cloned from."""
    clone = model.clone()
    for graph in clone.graphs():
        for value in (*graph.inputs, *graph.initializers.values(), *(out for node in graph for out in node.outputs)):
            if value.type is not None:
                value.type = copy.deepcopy(value.type)
    return clone


def _build_gear(
    name: str,
    model: ir.Model,
    shapes: tuple[InputShape, ...],
    backend: Backend,
    options: BuildOptions,
    passes: list[PassSpec],
    ctx: PassContext,
    strict: bool,
) -> tuple[_Gear, list[PassRecord]]:
    """One gear: shapes fixed, shape subgraphs folded, optimized and compiled on its own."""
    apply_input_shapes(model, shapes)
    check_static_inputs(model, shapes)
    if strict:
        error = shape_inference_error(model)
        if error is not None:
            raise OpenATCError(
                "E30002",
                f"shape inference fails at these shapes: {error}",
                hint="Remove this gear, or check that the model supports these dimensions.",
            )
    apply_aipp(model, ctx)  # before the passes, so that they fold and fuse the inserted ops too
    report = run_passes(model, passes, ctx)
    if options.quantization is not None:
        model = quantize_gear(model, ctx, name)
    apply_precision(model, ctx)  # after passes and AIPP, before --output_type and the backend
    apply_output_types(model, options.output_type, options.output_type_rules, options.out_nodes)
    gear = _compile_gear(name, model, backend, options, report)
    return gear, report


def _pass_capabilities(options: BuildOptions, backend: Backend) -> BackendCapabilities:
    """INT8 builds keep standard ONNX ops: the backend's contrib fusions would hide Conv/MatMul/Gemm
    from ONNX Runtime's quantizer (ONNX Runtime fuses the QDQ graph into its integer kernels)."""
    if options.quantization is None:
        return backend.capabilities
    return dataclasses.replace(backend.capabilities, fused_ops=())


def _check_dynamic_support(options: BuildOptions, backend: Backend) -> None:
    if (
        options.dynamic is not None
        and options.dynamic.kind == "shape_range"
        and not backend.capabilities.dynamic_shapes
    ):
        dynamic = "; ".join(s.text() for s in options.input_shape if s.dynamic_axes)
        raise OpenATCError(
            "E10055",
            f'--input_shape "{dynamic}" asks for a dynamic-shape (range) compile, which backend '
            f"'{backend.name}' (--soc_version={options.soc_version}) cannot run",
            hint="Give gears instead (--dynamic_batch_size, --dynamic_image_size or --dynamic_dims), or fix the dims.",
        )


def _shapes_text(shapes: tuple[InputShape, ...]) -> str:
    return ";".join(s.text() for s in shapes)


def _merged_specs(per_gear: list[list[dict[str, Any]]], fmt: str | None = None) -> list[TensorSpec]:
    """Model-level inputs/outputs: dims equal in every gear stay ints; dims that vary become "-1"."""
    specs = []
    for entries in zip(*per_gear, strict=True):
        first = entries[0]
        dims: list[int | str] = []
        for axis, dim in enumerate(first["shape"]):
            same = all(len(e["shape"]) == len(first["shape"]) and e["shape"][axis] == dim for e in entries)
            dims.append(dim if same else "-1")
        layout = first["format"] if first.get("aipp") else fmt or first.get("format", "ND")  # AIPP: uint8 NHWC
        specs.append(TensorSpec(first["name"], first["dtype"], tuple(dims), layout, first.get("aipp")))
    return specs


class _Progress:
    """``gear i/n`` on one terminal line while gears build (multi-gear builds on a terminal only)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enabled = total > 1 and sys.stderr.isatty()
        self.start = time.perf_counter()

    def __enter__(self) -> _Progress:
        return self

    def step(self, index: int, shapes: tuple[InputShape, ...]) -> None:
        logger.info("building gear%d (%d of %d): %s", index, index + 1, self.total, _shapes_text(shapes))
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\r\x1b[Kgear {index + 1}/{self.total} [{_shapes_text(shapes)}] {elapsed:.1f}s")
            sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\r\x1b[K{self.total} gears built in {elapsed:.1f}s\n")
            sys.stderr.flush()


def _compile_gear(
    name: str, model: ir.Model, backend: Backend, options: BuildOptions, report: list[PassRecord]
) -> _Gear:
    try:
        payload = backend.compile(model, CompileContext(options=options, gear=name))
    except OpenATCError:
        raise
    except Exception as exc:
        raise OpenATCError("E40002", f"backend '{backend.name}' failed to compile {name}: {exc}") from exc
    quantization, layers = quantization_report(model)
    for key in ("openatc.quantization", "openatc.quantization.layers"):
        model.metadata_props.pop(key, None)
    graph, weights = split_weights(model)
    info = {
        "name": name,
        "inputs": [value_spec(v).to_json() for v in model.graph.inputs],
        "outputs": [value_spec(v).to_json() for v in model.graph.outputs],
        "nodes": count_nodes(model.graph),
        "ops": op_histogram(model.graph),
        "precision": precision_report(model),
        "opset": dict(sorted(model.opset_imports.items())),
        "memory": {"activation_bytes_no_reuse": intermediate_bytes(model.graph), **plan_memory(model.graph).to_json()},
        "passes": [r.to_json() for r in report],
        "missed_fusions": missed_fusions(model),
    }
    if quantization:
        info["quantization"] = quantization
    return _Gear(name, graph, payload, weights, info, layers=layers)


def _versions(backend: Backend) -> dict[str, str]:
    from openatc import __version__

    versions = {"openatc": __version__}
    for package in _PRODUCER_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions.update(backend.versions)
    return dict(sorted(versions.items()))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_in_background(path: Path) -> concurrent.futures.Future[str]:
    """The file's SHA-256, computed in a thread: hashlib releases the GIL, so on a second core it
    costs the build no time."""
    future: concurrent.futures.Future[str] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(_file_sha256(path))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the digest
            future.set_exception(exc)

    threading.Thread(target=run, name="openatc-source-sha256", daemon=True).start()
    return future


def _assemble(
    options: BuildOptions,
    pm: OpenATCPluginManager,
    backend: Backend,
    frontend: Frontend,
    inputs: list[Any],
    outputs: list[Any],
    gears: list[_Gear],
    source_sha256: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and sections; identical weights of all gears are stored once."""
    by_digest: dict[str, str] = {}
    arrays: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    sections: dict[str, Any] = {}
    for gear in gears:
        mapping: dict[str, str] = {}
        for name, array in sorted(gear.weights.items()):
            digest = gear.digests.get(name) or _weight_digest(array)
            if digest not in by_digest:
                by_digest[digest] = f"w{len(arrays)}"
                arrays.append(array)
                entries.append(
                    {
                        "id": by_digest[digest],
                        "dtype": array.dtype.name,
                        "shape": list(array.shape),
                        "nbytes": int(array.nbytes),
                        "sha256": digest,
                    }
                )
            mapping[name] = by_digest[digest]
        gear.info["weights"] = mapping
        gear.info["graph_section"] = f"{gear.name}/graph"
        sections[f"{gear.name}/graph"] = gear.graph
        if gear.payload is not None:
            gear.info["payload_section"] = f"{gear.name}/payload"
            sections[f"{gear.name}/payload"] = gear.payload
    for entry, offset in zip(entries, om.weight_layout(arrays), strict=True):
        entry["offset"] = offset
    weight_bytes = int(sum(a.nbytes for a in arrays))
    assert options.model is not None and options.output is not None
    manifest: dict[str, Any] = {
        "format": "openatc-om",
        "format_version": f"{om.FORMAT_VERSION[0]}.{om.FORMAT_VERSION[1]}",
        "name": options.output.name,
        "producer": _versions(backend),
        "soc_version": options.soc_version,
        "backend": {
            "name": backend.name,
            "plugin": pm.origin_of("openatc_backends", backend.name),
            "native_precision": backend.capabilities.native_precision,
        },
        "framework": {
            "id": options.framework,
            "name": FRAMEWORKS.get(options.framework or -1, "?"),
            "frontend": frontend.name,
        },
        "source": {"file": options.model.name, "sha256": source_sha256},
        "build_flags": dict(options.flags),
        "inputs": [s.to_json() for s in inputs],
        "outputs": [s.to_json() for s in outputs],
        "gears": [g.info for g in gears],
        "weights": {"section": "weights", "count": len(arrays), "bytes": weight_bytes, "entries": entries},
        "memory": {
            "weight_bytes": weight_bytes,
            "activation_bytes_no_reuse": max(g.info["memory"]["activation_bytes_no_reuse"] for g in gears),
        },
    }
    if options.dynamic is not None:
        manifest["dynamic"] = _dynamic_json(options)
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=1).encode()
    ordered = {"manifest": manifest_bytes, **sections, "weights": arrays}
    return manifest, ordered


def _dynamic_json(options: BuildOptions) -> dict[str, Any]:
    """``manifest.dynamic``: the gear flag and its gears, or the ranges of a range compile."""
    assert options.dynamic is not None
    dynamic = options.dynamic
    data: dict[str, Any] = {
        "kind": dynamic.kind,
        "input_shape": ";".join(s.text() for s in options.input_shape),
        "gears": [list(g) for g in dynamic.gears],
    }
    if dynamic.kind == "shape_range":
        data["ranges"] = {
            s.name: [list(r) for r in (s.ranges or tuple((d, d) for d in s.dims))] for s in options.input_shape
        }
    return data


def _write_verified(path: Path, sections: Mapping[str, Any], pm: OpenATCPluginManager) -> Path:
    """Writes to a temporary name, loads it back with the backend, then renames into place."""
    from openatc.runtime import Session

    staging = path.with_name(f".{path.name}.{os.getpid()}.staging")
    try:
        om.write_om(staging, sections, sync=False)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise OpenATCError("E50004", f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        # the data goes to disk while the backend loads the file (fsync releases the GIL); both
        # are done before the file gets its name
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            synced = pool.submit(om.sync_file, staging)
            # the file was just written (no checksum to verify) and is loaded once, never run
            Session(staging, plugin_manager=pm, verify=False, share_weights=True, check_only=True).close()
            try:
                synced.result()
            except OSError as exc:
                raise OpenATCError("E50004", f"cannot write '{path}': {exc.strerror or exc}") from None
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise
    return path
