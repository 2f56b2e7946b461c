"""``--mode=3``: parse the model and check every operator against the target, without building.

Writes ATC's ``check_result.json`` (spec section 1.6.3): the model name, the overall result,
counts, and one entry per operator with its cause codes (0 OK, 1 TYPE_UNSUPPORTED,
9 NAME_REPEATED).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from openatc.errors import OpenATCError
from openatc.graph import walk_nodes
from openatc.manager import OpenATCPluginManager, default_plugin_manager
from openatc.options import FRAMEWORKS, BuildOptions
from openatc.specialize import apply_input_shapes

__all__ = ["CAUSE_NAME_REPEATED", "CAUSE_OK", "CAUSE_TYPE_UNSUPPORTED", "precheck"]

CAUSE_OK, CAUSE_TYPE_UNSUPPORTED, CAUSE_NAME_REPEATED = 0, 1, 9


def _op_entry(name: str, op_type: str, causes: list[dict[str, Any]]) -> dict[str, Any]:
    failed = any(c["code"] != CAUSE_OK for c in causes)
    return {"name": name, "type": op_type, "result": "failed" if failed else "success", "cause": causes}


def precheck(options: BuildOptions, pm: OpenATCPluginManager | None = None) -> dict[str, Any]:
    """The check report of ``options.model`` for ``options.soc_version`` (not written)."""
    pm = pm or default_plugin_manager()
    backend = pm.backend_for_soc(options.soc_version)
    assert options.model is not None and options.framework is not None
    frontend = pm.frontends().get(str(options.framework))
    if frontend is None:
        raise OpenATCError(
            "E10055", f"--framework={options.framework} ({FRAMEWORKS.get(options.framework, '?')}) has no frontend"
        )
    ops: list[dict[str, Any]] = []
    try:
        model = frontend.load(options.model, options.weight, options)
    except OpenATCError as exc:
        if exc.code != "E20003" or not exc.details:
            raise
        for d in exc.details:  # the frontend cannot convert these: report them, nothing else to check
            message = f"{d['count']} node(s) of type {d['type']}: the {frontend.name} frontend cannot convert it"
            ops.append(
                _op_entry(str(d["name"]), str(d["type"]), [{"code": CAUSE_TYPE_UNSUPPORTED, "message": message}])
            )
        return _report(options, ops)
    apply_input_shapes(model, options.input_shape)
    nodes = list(walk_nodes(model.graph))
    names = Counter(n.name for n in nodes if n.name)
    for node in nodes:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        version = model.opset_imports.get(domain, model.opset_imports.get("ai.onnx", 1))
        causes = []
        reason = backend.supports(node, version) if backend.supports else None
        if reason:
            causes.append({"code": CAUSE_TYPE_UNSUPPORTED, "message": reason})
        if node.name and names[node.name] > 1:
            causes.append({"code": CAUSE_NAME_REPEATED, "message": f"{names[node.name]} nodes are named '{node.name}'"})
        op_type = f"{domain}::{node.op_type}" if domain else node.op_type
        ops.append(_op_entry(node.name or "", op_type, causes or [{"code": CAUSE_OK, "message": ""}]))
    return _report(options, ops)


def _report(options: BuildOptions, ops: list[dict[str, Any]]) -> dict[str, Any]:
    failed = sum(op["result"] == "failed" for op in ops)
    assert options.model is not None
    return {
        "name": options.model.stem,
        "result": "failed" if failed else "success",
        "total": len(ops),
        "pass": len(ops) - failed,
        "fail": failed,
        "soc_version": options.soc_version,
        "op": ops,
    }
