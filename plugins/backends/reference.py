"""The ``reference`` backend: onnx's ReferenceEvaluator, a pure-Python executor of ONNX semantics.

Slow but close to the letter of the ONNX specification; used to check other backends. Weights
are fed as inputs on every run, so the views of the memory-mapped .om are used without copies.
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


class ReferenceExecutor:
    def __init__(self, evaluator: Any, weights: Mapping[str, np.ndarray]) -> None:
        self.evaluator = evaluator
        self.weights = dict(weights)

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        return list(self.evaluator.run(list(output_names), {**feeds, **self.weights}))


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
    return ReferenceExecutor(evaluator, {n: ctx.weights[n] for n in names})


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
