"""The ``reference`` backend: onnx's ReferenceEvaluator, a pure-Python executor of ONNX semantics.

Slow but close to the letter of the ONNX specification; used to check other backends. Weights
are fed as inputs on every run, so the views of the memory-mapped .om are used without copies.
The graph runs node by node and each intermediate is freed after its last use, as the gear's
static memory plan assumes.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import stub_names
from openatc.hookspecs import hookimpl
from openatc.types import Backend, BackendCapabilities, CompileContext, LoadContext


def _compile(model: ir.Model, ctx: CompileContext) -> bytes | None:
    del model, ctx
    return None


def _names_read(node: onnx.NodeProto) -> set[str]:
    """Names ``node`` reads, names read anywhere inside its subgraphs included (a superset of the
    outer-scope reads: a shadowing name only makes a lifetime longer, never shorter)."""
    names = set(node.input)
    for attr in node.attribute:
        graphs = [attr.g] if attr.HasField("g") else list(attr.graphs)
        for graph in graphs:
            for inner in graph.node:
                names |= _names_read(inner)
            names |= {o.name for o in graph.output}
    return names


def _release_plan(graph: onnx.GraphProto) -> list[list[str]]:
    """For each node: the intermediates (node outputs, not graph outputs) whose last reader it is."""
    outputs = {o.name for o in graph.output}
    produced = {name for node in graph.node for name in node.output if name}
    last: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                last.setdefault(name, index)  # unread outputs die where they are born
        for name in _names_read(node):
            if name in produced:
                last[name] = index
    plan: list[list[str]] = [[] for _ in graph.node]
    for name, index in last.items():
        if name not in outputs:
            plan[index].append(name)
    return plan


class ReferenceExecutor:
    """Runs the main graph node by node with the evaluator's operators and frees every intermediate
    after its last reader (the liveness that openatc's memory plan is built on, see
    :mod:`openatc.memory`). ``peak_bytes`` is the largest total of live intermediate bytes (graph
    outputs excluded) seen in the last run. Falls back to ``ReferenceEvaluator.run`` when the
    evaluator's internals are not there.
    """

    def __init__(self, evaluator: Any, weights: Mapping[str, np.ndarray], graph: onnx.GraphProto) -> None:
        self.evaluator = evaluator
        self.weights = dict(weights)
        self.release = _release_plan(graph)
        self.intermediates = {name for names in self.release for name in names}
        nodes = getattr(evaluator, "rt_nodes_", None)
        self.stepwise = nodes is not None and len(nodes) == len(self.release) and hasattr(evaluator, "rt_inits_")
        self.peak_bytes = 0

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        if not self.stepwise:
            return list(self.evaluator.run(list(output_names), {**feeds, **self.weights}))
        results: dict[str, Any] = {"": None, **self.evaluator.rt_inits_, **feeds, **self.weights}
        live = peak = 0
        keep = set(output_names)
        for node, release in zip(self.evaluator.rt_nodes_, self.release, strict=True):
            inputs = [results[name] for name in node.input]
            outputs = node.run(*inputs, context=results) if node.need_context() else node.run(*inputs)
            for name, value in zip(node.output, outputs, strict=False):
                if name:
                    results[name] = value
                    live += _nbytes(value) if name in self.intermediates and name not in keep else 0
            peak = max(peak, live)
            for name in release:
                if name not in keep and name in results:
                    live -= _nbytes(results.pop(name))
        self.peak_bytes = peak
        return [results[name] for name in output_names]


def _nbytes(value: Any) -> int:
    return int(value.nbytes) if isinstance(value, np.ndarray) else 0


def _load(ctx: LoadContext) -> ReferenceExecutor:
    from onnx.reference import ReferenceEvaluator

    model = onnx.ModelProto.FromString(ctx.graph)
    names = set(stub_names(model))
    kept = [init for init in model.graph.initializer if init.name not in names]
    for init in model.graph.initializer:
        if init.name in names:
            model.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    try:
        evaluator = ReferenceEvaluator(model)
    except Exception as exc:  # noqa: BLE001 - the evaluator raises many exception types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpenATCError("E40003", f"ReferenceEvaluator cannot load gear '{ctx.gear}': {message}") from None
    return ReferenceExecutor(evaluator, {n: ctx.weights[n] for n in names}, model.graph)


def _supports(node: ir.Node, version: int) -> str | None:
    """None when onnx.reference implements ``node`` at ``version`` (or expands it as a function)."""
    from onnx.reference.ops import load_op

    if node.domain not in ("", "ai.onnx"):
        return f"ReferenceEvaluator runs only the standard domain, not '{node.domain}'"
    try:
        load_op("", node.op_type, version, expand=True)
    except Exception as exc:  # noqa: BLE001 - load_op raises several types for missing operators
        return f"ReferenceEvaluator has no implementation of {node.op_type} at opset {version} ({type(exc).__name__})"
    return None


@hookimpl
def openatc_backends() -> Iterator[Backend]:
    yield Backend(
        name="reference",
        soc_versions=("reference",),
        capabilities=BackendCapabilities(op_types=None, native_precision="fp32", dynamic_shapes=True),
        compile=_compile,
        load=_load,
        versions={"onnx": importlib.metadata.version("onnx")},
        description="onnx.reference.ReferenceEvaluator (pure Python, for checking)",
        supports=_supports,
    )
