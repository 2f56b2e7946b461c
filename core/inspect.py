"""Human views of an .om: ATC's model-info block (``--mode=6``) and ``openatc inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from openatc.errors import OpenATCError
from openatc.om import OmFile

__all__ = ["export_onnx", "model_info", "summary"]


def _cmdline(manifest: dict[str, Any]) -> str:
    flags = manifest.get("build_flags", {})
    return "openatc " + " ".join(f"--{k}={v}" for k, v in sorted(flags.items()))


def _memory(manifest: dict[str, Any]) -> int:
    memory = manifest.get("memory", {})
    return int(memory.get("arena_bytes", memory.get("activation_bytes_no_reuse", 0)))


def model_info(path: Path) -> str:
    """ATC's "Display Model Info" block, with openatc's numbers (spec section 1.6.4)."""
    om = OmFile(path)
    try:
        m = om.manifest
        graphs = sum(s.size for s in om.iter_sections() if s.name.endswith(("/graph", "/payload")))
        weights = om.sections["weights"].size if "weights" in om.sections else 0
    finally:
        om.close()
    return "\n".join(
        [
            "============ Display Model Info start ============",
            f"Original Atc command line: {_cmdline(m)}",
            f"system   info: atc_version[{m['producer'].get('openatc', '?')}], soc_version[{m['soc_version']}], "
            f"framework_type[{m['framework']['id']}].",
            f"resource info: memory_size[{_memory(m)} B], weight_size[{m['memory']['weight_bytes']} B], "
            "stream_num[1], event_num[0].",
            f"om       info: modeldef_size[{graphs} B], weight_data_size[{weights} B], tbe_kernels_size[0 B], "
            "cust_aicpu_kernel_store_size[0 B], task_info_size[0 B], so_store_size[0 B].",
            "============ Display Model Info end   ============",
        ]
    )


def _tensor_line(t: dict[str, Any]) -> str:
    return f"    {t['name']}: {t['dtype']}[{','.join(str(d) for d in t['shape'])}] {t.get('format', '')}"


def summary(path: Path) -> str:
    """Inputs, outputs, gears, backend, sizes and the pass report of an .om."""
    om = OmFile(path)
    try:
        m = om.manifest
        size = path.stat().st_size
    finally:
        om.close()
    lines = [
        f"{path}  ({size} B, format {m['format_version']})",
        f"  target: --soc_version={m['soc_version']} (backend {m['backend']['name']}, plugin "
        f"{m['backend'].get('plugin', '?')}, native precision {m['backend'].get('native_precision', '?')})",
        f"  source: {m['source']['file']} (framework {m['framework']['name']}), built by openatc "
        f"{m['producer'].get('openatc', '?')}",
        f"  command: {_cmdline(m)}",
        "  inputs:",
        *(_tensor_line(t) for t in m["inputs"]),
        "  outputs:",
        *(_tensor_line(t) for t in m["outputs"]),
        f"  weights: {m['weights']['count']} tensors, {m['weights']['bytes']} B (stored once)",
        f"  memory: {_memory(m)} B of activations",
        f"  gears: {len(m['gears'])}",
    ]
    for gear in m["gears"]:
        shapes = "; ".join(f"{t['name']}:{','.join(str(d) for d in t['shape'])}" for t in gear["inputs"])
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(gear["ops"].items(), key=lambda kv: -kv[1]))
        lines.append(f"    {gear['name']}: {shapes}  ({gear['nodes']} nodes: {ops})")
        quant = gear.get("quantization")
        if quant:
            lines.append(
                f"      precision: INT8 ({quant['algorithm']}; weights {quant['weights']}, activations "
                f"{quant['activations']}): {quant['int8_layers']} layer(s) INT8, {quant['float_layers']} float"
                + (f", accuracy {quant['accuracy']}" if "accuracy" in quant else "")
            )
        elif gear.get("precision"):
            p = gear["precision"]
            lines.append(f"      precision: {p.get('mode')} ({p.get('layers', {})})")
        for p in gear.get("passes", []):
            if p.get("modified"):
                lines.append(
                    f"      pass {p['name']:<34} {p['stage']:<12} nodes {p['nodes_before']} -> {p['nodes_after']}"
                )
    return "\n".join(lines)


def export_onnx(path: Path, target: Path, gear: int = 0) -> Path:
    """Writes gear ``gear`` of the .om as a standalone ONNX model (weights included), for Netron."""
    om = OmFile(path)
    try:
        gears = om.manifest["gears"]
        if not 0 <= gear < len(gears):
            raise OpenATCError("E10001", f"--gear={gear}: the .om has gears 0..{len(gears) - 1}")
        info = gears[gear]
        model = onnx.ModelProto.FromString(bytes(om.section(info["graph_section"])))
        weights = om.weights()
        for init in model.graph.initializer:
            wid = info["weights"].get(init.name)
            if wid is not None:
                init.CopyFrom(onnx.numpy_helper.from_array(np.asarray(weights[wid]), init.name))
        del weights
    finally:
        om.close()
    model.doc_string = f"gear {info['name']} of {path.name}, compiled by openatc for {om.manifest['soc_version']}"
    onnx.save_model(model, target, save_as_external_data=model.ByteSize() > (1 << 30))
    return target
