"""Per-tensor accuracy comparison of an .om against its source model (``openatc compare``).

The golden side runs the original model in ONNX Runtime with every intermediate tensor exposed
and graph optimizations off (so each tensor is computed exactly as the model says); the .om side
runs the compiled graph with its intermediates exposed through the same backend that runs the
.om. Tensors are matched by name: passes keep the names of the values they do not remove, and a
fused op's output keeps the name of the last output it replaces, so fused ops map back to the
original node that produced that tensor.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.manager import OpenATCPluginManager, default_plugin_manager

__all__ = ["TensorComparison", "compare_tensors", "golden_intermediates", "write_report"]

logger = logging.getLogger(__name__)

#: The metrics of one tensor, as columns of the CSV.
COLUMNS = (
    "index",
    "node",
    "op_type",
    "tensor",
    "shape",
    "cosine_similarity",
    "max_abs_error",
    "mean_abs_error",
    "max_relative_error",
    "rmse",
    "note",
)


@dataclass(frozen=True)
class TensorComparison:
    """How one tensor of the .om compares with the same tensor of the source model."""

    index: int
    node: str
    op_type: str
    tensor: str
    shape: str
    cosine_similarity: float | None
    max_abs_error: float | None
    mean_abs_error: float | None
    max_relative_error: float | None
    rmse: float | None
    note: str = ""


def _metrics(om: np.ndarray, golden: np.ndarray) -> dict[str, float]:
    a = np.asarray(om, dtype=np.float64).ravel()
    b = np.asarray(golden, dtype=np.float64).ravel()
    diff = np.abs(a - b)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(np.dot(a, b) / norm) if norm else float(not diff.any())  # two zero tensors match
    return {
        "cosine_similarity": cosine,
        "max_abs_error": float(diff.max(initial=0.0)),
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "max_relative_error": float((diff / (np.abs(b) + 1e-12)).max(initial=0.0)),
        "rmse": float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0,
    }


def golden_intermediates(
    model: ir.Model, feeds: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[tuple[str, str, str]]]:
    """Runs ``model`` in ONNX Runtime (optimizations off) exposing every node output.

    Returns the tensors by name and, in graph order, ``(tensor, node name, op type)`` for each.
    """
    import onnxruntime as ort

    wanted = sorted(v.name for v in model.graph.inputs if v.name not in model.graph.initializers)
    if wanted != sorted(feeds):
        raise OpenATCError(
            "E10016",
            f"the golden model's inputs {wanted} do not match the .om's inputs {sorted(feeds)}",
            hint="Give as --golden the model the .om was built from.",
        )
    order: list[tuple[str, str, str]] = []
    for node in model.graph:
        for value in node.outputs:
            if value.name and isinstance(value.type, ir.TensorType | None):
                order.append((value.name, node.name or "", node.op_type))
    proto = ir.to_proto(model)
    existing = {o.name for o in proto.graph.output}
    for name, _, _ in order:
        if name not in existing:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "golden.onnx"
        onnx.save_model(proto, path, save_as_external_data=True, location="golden.data", size_threshold=1024)
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            results = session.run(names, dict(feeds))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises several exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OpenATCError(
                "E40011",
                f"the golden model cannot run in ONNX Runtime: {first}",
                hint="Check that --golden is the model the .om was built from and the inputs fit it.",
            ) from None
    return dict(zip(names, results, strict=True)), order


def compare_tensors(
    golden: Mapping[str, np.ndarray], order: list[tuple[str, str, str]], om: Mapping[str, np.ndarray]
) -> list[TensorComparison]:
    """One row per golden tensor, in graph order; tensors the .om does not have are noted."""
    rows = []
    for index, (name, node, op_type) in enumerate(order):
        want = golden.get(name)
        got = om.get(name)
        shape = "x".join(str(d) for d in np.shape(want)) if want is not None else ""
        empty = dict.fromkeys(("cosine_similarity", "max_abs_error", "mean_abs_error", "max_relative_error", "rmse"))
        if want is None or got is None:
            note = "not in the .om (folded or fused away)" if got is None else "not produced by the golden model"
            rows.append(TensorComparison(index, node, op_type, name, shape, **empty, note=note))  # type: ignore[arg-type]
            continue
        if not np.issubdtype(np.asarray(want).dtype, np.number) and np.asarray(want).dtype != np.bool_:
            rows.append(TensorComparison(index, node, op_type, name, shape, **empty, note="not numeric"))  # type: ignore[arg-type]
            continue
        if np.shape(got) != np.shape(want):
            note = f"shape differs: .om {list(np.shape(got))}"
            rows.append(TensorComparison(index, node, op_type, name, shape, **empty, note=note))  # type: ignore[arg-type]
            continue
        rows.append(TensorComparison(index, node, op_type, name, shape, **_metrics(got, want)))
    return rows


def first_divergence(rows: list[TensorComparison], threshold: float) -> TensorComparison | None:
    """The first tensor in graph order whose cosine similarity is below ``threshold``."""
    return next((r for r in rows if r.cosine_similarity is not None and r.cosine_similarity < threshold), None)


def write_report(rows: list[TensorComparison], directory: Path, summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """Writes ``compare.csv`` and ``compare.json`` into ``directory`` (created if needed)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(directory)
    except OSError as exc:
        raise OpenATCError("E13002", f"cannot write the comparison into '{directory}': {exc}") from None
    csv_path, json_path = directory / "compare.csv", directory / "compare.json"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    json_path.write_text(json.dumps({"summary": dict(summary), "tensors": [asdict(r) for r in rows]}, indent=2))
    return csv_path, json_path


def load_golden(model: Path, framework: int, weight: Path | None, pm: OpenATCPluginManager | None) -> ir.Model:
    """The source model through its frontend (so .pb and .prototxt goldens work like .onnx)."""
    from openatc.options import BuildOptions

    pm = pm or default_plugin_manager()
    frontend = pm.frontends().get(str(framework))
    if frontend is None:
        raise OpenATCError("E10055", f"no installed frontend serves --framework={framework} for the golden model")
    return frontend.load(model, weight, BuildOptions(framework=framework, model=model, weight=weight))
