"""The build: frontend ─► specialize ─► passes ─► precision ─► backend compile ─► .om writer.

The host never imports a frontend or a backend: both are records looked up in the plugin manager.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from openatc import om
from openatc.errors import OpenATCError
from openatc.graph import count_nodes, intermediate_bytes, op_histogram, split_weights, value_spec
from openatc.manager import OpenATCPluginManager, default_plugin_manager
from openatc.options import FRAMEWORKS, BuildOptions
from openatc.passmanager import PassRecord, order_passes, run_passes
from openatc.specialize import apply_input_shapes, apply_output_types, check_static_inputs, cut_outputs
from openatc.types import Backend, CompileContext, Frontend, PassContext

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
    """Builds ``options.output + '.om'`` from ``options.model``; writes nothing on failure."""
    pm = pm or default_plugin_manager()
    start = time.perf_counter()
    for warning in options.warnings:
        logger.warning(warning)
    backend = pm.backend_for_soc(options.soc_version)
    frontend = _frontend(pm, options.framework if options.framework is not None else -1)
    assert options.model is not None
    logger.info("loading %s with frontend '%s'", options.model, frontend.name)
    model = frontend.load(options.model, options.weight, options)
    apply_input_shapes(model, options.input_shape)
    check_static_inputs(model)
    cut_outputs(model, options.out_nodes)
    inputs = [value_spec(v, options.input_format) for v in model.graph.inputs]
    passes = order_passes([*pm.passes().values(), *backend.passes])
    ctx = PassContext(options=options, capabilities=backend.capabilities)
    gear_name = "gear0"
    report = run_passes(model, passes, ctx)
    apply_output_types(model, options.output_type, options.output_type_rules, options.out_nodes)
    gear = _compile_gear(gear_name, model, backend, options, report)
    outputs = [value_spec(v) for v in model.graph.outputs]
    manifest, sections = _assemble(options, pm, backend, frontend, inputs, outputs, [gear])
    path = _write_verified(options.om_path, sections, pm)
    seconds = time.perf_counter() - start
    logger.info("wrote %s (%d B) in %.2f s", path, path.stat().st_size, seconds)
    return BuildResult(path, manifest, {gear_name: report}, seconds)


def _compile_gear(
    name: str, model: ir.Model, backend: Backend, options: BuildOptions, report: list[PassRecord]
) -> _Gear:
    try:
        payload = backend.compile(model, CompileContext(options=options, gear=name))
    except OpenATCError:
        raise
    except Exception as exc:
        raise OpenATCError("E40002", f"backend '{backend.name}' failed to compile {name}: {exc}") from exc
    graph, weights = split_weights(model)
    info = {
        "name": name,
        "inputs": [value_spec(v).to_json() for v in model.graph.inputs],
        "outputs": [value_spec(v).to_json() for v in model.graph.outputs],
        "nodes": count_nodes(model.graph),
        "ops": op_histogram(model.graph),
        "opset": dict(sorted(model.opset_imports.items())),
        "memory": {"activation_bytes_no_reuse": intermediate_bytes(model.graph)},
        "passes": [r.to_json() for r in report],
    }
    return _Gear(name, graph, payload, weights, info)


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


def _assemble(
    options: BuildOptions,
    pm: OpenATCPluginManager,
    backend: Backend,
    frontend: Frontend,
    inputs: list[Any],
    outputs: list[Any],
    gears: list[_Gear],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and sections; identical weights of all gears are stored once."""
    by_digest: dict[str, str] = {}
    arrays: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    sections: dict[str, Any] = {}
    for gear in gears:
        mapping: dict[str, str] = {}
        for name, array in sorted(gear.weights.items()):
            digest = hashlib.sha256(array.tobytes() + f"{array.dtype.str}{array.shape}".encode()).hexdigest()
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
        "source": {"file": options.model.name, "sha256": _file_sha256(options.model)},
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
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=1).encode()
    ordered = {"manifest": manifest_bytes, **sections, "weights": arrays}
    return manifest, ordered


def _write_verified(path: Path, sections: Mapping[str, Any], pm: OpenATCPluginManager) -> Path:
    """Writes to a temporary name, loads it back with the backend, then renames into place."""
    from openatc.runtime import Session

    staging = path.with_name(f".{path.name}.{os.getpid()}.staging")
    try:
        om.write_om(staging, sections)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise OpenATCError("E50004", f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        Session(staging, plugin_manager=pm).close()
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise
    return path
