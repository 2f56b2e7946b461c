"""``--mode=1``: an .om as JSON, laid out like ATC's ModelDef dump (spec section 3.1).

Top-level keys: ``name``, ``version``, ``attr`` (model attributes as ``{"key", "value"}`` pairs),
``graph`` (one entry per gear, ops after all optimizations, weights as ``Const`` ops without
data) and ``manifest`` (the whole .om manifest: inputs/outputs, gears, pass report, memory).
Float attributes are strings formatted with ``%g``, as ATC writes them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from openatc.errors import OpenATCError
from openatc.om import OmFile

__all__ = ["model_to_json", "om_to_json", "write_json"]

_DT = {
    onnx.TensorProto.FLOAT: "DT_FLOAT",
    onnx.TensorProto.FLOAT16: "DT_FLOAT16",
    onnx.TensorProto.BFLOAT16: "DT_BF16",
    onnx.TensorProto.DOUBLE: "DT_DOUBLE",
    onnx.TensorProto.INT8: "DT_INT8",
    onnx.TensorProto.UINT8: "DT_UINT8",
    onnx.TensorProto.INT16: "DT_INT16",
    onnx.TensorProto.UINT16: "DT_UINT16",
    onnx.TensorProto.INT32: "DT_INT32",
    onnx.TensorProto.UINT32: "DT_UINT32",
    onnx.TensorProto.INT64: "DT_INT64",
    onnx.TensorProto.UINT64: "DT_UINT64",
    onnx.TensorProto.BOOL: "DT_BOOL",
    onnx.TensorProto.STRING: "DT_STRING",
    onnx.TensorProto.COMPLEX64: "DT_COMPLEX64",
    onnx.TensorProto.COMPLEX128: "DT_COMPLEX128",
    onnx.TensorProto.INT4: "DT_INT4",
}


def _dtype(elem_type: int) -> str:
    return _DT.get(elem_type, "DT_UNDEFINED")


def _desc(name: str, elem_type: int, dims: list[int | str], layout: str = "ND") -> dict[str, Any]:
    return {"name": name, "dtype": _dtype(elem_type), "shape": {"dim": dims}, "layout": layout}


def _value_descs(graph: onnx.GraphProto) -> dict[str, dict[str, Any]]:
    descs = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        t = vi.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in t.shape.dim]
        descs[vi.name] = _desc(vi.name, t.elem_type, dims)
    return descs


def _attr(attr: onnx.AttributeProto) -> dict[str, Any]:
    a = onnx.AttributeProto
    kind = attr.type
    if kind == a.INT:
        return {"i": attr.i}
    if kind == a.FLOAT:
        return {"f": f"{attr.f:g}"}
    if kind == a.STRING:
        return {"s": attr.s.decode("utf-8", "backslashreplace")}
    if kind == a.INTS:
        return {"list": {"i": list(attr.ints), "val_type": "VT_LIST_INT"}}
    if kind == a.FLOATS:
        return {"list": {"f": [f"{f:g}" for f in attr.floats], "val_type": "VT_LIST_FLOAT"}}
    if kind == a.STRINGS:
        return {
            "list": {"s": [s.decode("utf-8", "backslashreplace") for s in attr.strings], "val_type": "VT_LIST_STRING"}
        }
    if kind == a.TENSOR:
        return {"t": {"desc": _desc(attr.t.name, attr.t.data_type, list(attr.t.dims))}}
    if kind == a.GRAPH:
        return {"g": _graph(attr.g)}
    if kind == a.GRAPHS:
        return {"list": {"g": [_graph(g) for g in attr.graphs], "val_type": "VT_LIST_GRAPH"}}
    return {"s": f"<{onnx.AttributeProto.AttributeType.Name(kind)}>"}


def _graph(graph: onnx.GraphProto, name: str | None = None) -> dict[str, Any]:
    descs = _value_descs(graph)
    ops: list[dict[str, Any]] = []
    for init in graph.initializer:
        ops.append(
            {
                "name": init.name,
                "type": "Const",
                "input": [],
                "output_desc": [_desc(init.name, init.data_type, list(init.dims))],
            }
        )
    for node in graph.node:
        op = {
            "name": node.name,
            "type": node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}",
            "input": list(node.input),
            "output": list(node.output),
            "attr": [{"key": at.name, "value": _attr(at)} for at in node.attribute],
            "input_desc": [descs.get(i, {"name": i}) for i in node.input if i],
            "output_desc": [descs.get(o, {"name": o}) for o in node.output if o],
        }
        ops.append(op)
    return {
        "name": name or graph.name,
        "input": [i.name for i in graph.input],
        "output": [o.name for o in graph.output],
        "op": ops,
    }


def om_to_json(path: Path) -> dict[str, Any]:
    """The JSON document for ``openatc --mode=1 --om=path``."""
    om = OmFile(path)
    try:
        manifest = om.manifest
        graphs = []
        for gear in manifest["gears"]:
            proto = onnx.ModelProto.FromString(bytes(om.section(gear["graph_section"])))
            graphs.append(_graph(proto.graph, gear["name"]))
    finally:
        om.close()
    flags = manifest.get("build_flags", {})
    cmdline = "openatc " + " ".join(f"--{k}={v}" for k, v in sorted(flags.items()))
    attrs = {
        "soc_version": manifest.get("soc_version", ""),
        "atc_version": manifest.get("producer", {}).get("openatc", ""),
        "atc_cmdline": cmdline,
        "framework_type": str(manifest.get("framework", {}).get("id", "")),
        "backend": manifest.get("backend", {}).get("name", ""),
    }
    dynamic = manifest.get("dynamic")
    if dynamic:  # gears: one line per gear, "name:dims;name:dims", in gear order (graph[i] is gear i)
        attrs["dynamic_type"] = dynamic["kind"]
        attrs["dynamic_gears"] = "|".join(
            ";".join(f"{t['name']}:{','.join(map(str, t['shape']))}" for t in g["inputs"]) for g in manifest["gears"]
        )
    return {
        "name": manifest.get("name", path.stem),
        "version": int(str(manifest.get("format_version", "1.0")).split(".")[0]),
        "attr": [{"key": k, "value": {"s": v}} for k, v in attrs.items()],
        "graph": graphs,
        "manifest": manifest,
    }


def model_to_json(path: Path, framework: int, weight: Path | None = None) -> dict[str, Any]:
    """``--mode=1 --framework=N --om=model``: the original model in its framework's own schema."""
    from openatc.manager import default_plugin_manager

    frontend = default_plugin_manager().frontends().get(str(framework))
    if frontend is None or frontend.to_json is None:
        raise OpenATCError(
            "E10055",
            f"--mode=1 for --framework={framework} models is not supported by the installed frontends",
            hint="Convert the model to ONNX (--framework=5) or install a frontend that dumps JSON.",
        )
    return frontend.to_json(path, weight)


def write_json(data: dict[str, Any], path: Path) -> None:
    """Writes ``data`` atomically (indented, as ATC's dump)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=4, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OpenATCError("E13002", f"cannot write JSON '{path}': {exc.strerror or exc}") from None
