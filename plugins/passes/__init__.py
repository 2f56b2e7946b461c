"""Built-in graph passes (hook family 2).

Upstream passes of onnx_ir and onnxscript are contributed as they are; passes of our own live in
one module each.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir
import onnx_ir.passes.common as common

from openatc.hookspecs import hookimpl
from openatc.types import PassContext, PassSpec

from .infer_shapes import InferShapesPass
from .remove_identity import RemoveIdentityPass


def _fold_constants(ctx: PassContext) -> ir.passes.PassBase:
    from .fold_constants import FoldConstantsPass  # onnxscript is heavy: imported when a build runs

    return FoldConstantsPass()


@hookimpl
def openatc_passes() -> Iterator[PassSpec]:
    yield PassSpec(
        "initializers_from_inputs",
        "canonicalize",
        lambda ctx: common.RemoveInitializersFromInputsPass(),
        switchable=False,
        order=10,
        description="Initializers are weights, not overridable inputs.",
    )
    yield PassSpec(
        "shape_inference",
        "canonicalize",
        lambda ctx: InferShapesPass(),
        switchable=False,
        order=90,
        description="ONNX shape and type inference (model unchanged on failure).",
    )
    yield PassSpec(
        "identity_elimination",
        "canonicalize",
        lambda ctx: RemoveIdentityPass(),
        order=50,
        description="Removes Identity nodes.",
    )
    yield PassSpec(
        "constant_folding",
        "fold",
        _fold_constants,
        order=10,
        description="Evaluates nodes whose inputs are constant, shape subgraphs included (size-limited).",
    )
    yield PassSpec(
        "dead_code_elimination",
        "fold",
        lambda ctx: common.RemoveUnusedNodesPass(),
        order=20,
        description="Removes nodes and initializers no output depends on.",
    )
    yield PassSpec(
        "common_subexpression_elimination",
        "fold",
        lambda ctx: common.CommonSubexpressionEliminationPass(),
        order=30,
        description="Merges nodes computing the same value.",
    )
    yield PassSpec(
        "lift_constants",
        "fold",
        lambda ctx: common.LiftConstantsToInitializersPass(lift_all_constants=True),
        order=40,
        description="Constant nodes become initializers (weights).",
    )
    yield PassSpec(
        "deduplicate_initializers",
        "fold",
        lambda ctx: common.DeduplicateHashedInitializersPass(),
        order=50,
        description="Identical initializers are stored once.",
    )
    yield PassSpec(
        "remove_unused_opsets",
        "memory",
        lambda ctx: common.RemoveUnusedOpsetsPass(),
        switchable=False,
        order=80,
        description="Drops opset imports no node uses.",
    )
    yield PassSpec(
        "topological_sort",
        "memory",
        lambda ctx: common.TopologicalSortPass(),
        switchable=False,
        order=90,
        description="Orders nodes deterministically.",
    )
