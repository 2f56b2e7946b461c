"""Built-in graph passes (hook family 2).

Upstream passes of onnx_ir and onnxscript are contributed as they are; passes of our own live in
one module each. Passes that rewrite into a backend's fused ops look at
``ctx.capabilities.fused_ops`` and do nothing when the backend does not offer them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx_ir as ir
import onnx_ir.passes.common as common

from openatc.hookspecs import hookimpl
from openatc.types import PassContext, PassSpec

from .dedup_initializers import DeduplicateInitializersPass
from .eliminate_noops import EliminateNoOpsPass
from .fuse_attention import FuseAttentionPass
from .fuse_bias import FuseBiasPass
from .fuse_gelu import FuseGeluPass
from .fuse_residual_scale import FuseResidualScalePass
from .infer_shapes import InferShapesPass
from .lift_constants import LiftConstantsPass
from .lower_fused_ops import LowerFusedOpsPass
from .lower_prelu import LowerPReluPass
from .merge_shape_ops import MergeShapeOpsPass
from .remove_identity import RemoveIdentityPass

MS = "com.microsoft"


def offered(ctx: PassContext) -> frozenset[str]:
    """The com.microsoft fused op types the target backend runs."""
    return _microsoft(ctx.capabilities.fused_ops)


def slow(ctx: PassContext) -> frozenset[str]:
    """The com.microsoft fused op types the target backend runs slowly (its ``slow_ops``)."""
    return _microsoft(ctx.capabilities.slow_ops)


def _microsoft(pairs: Iterable[tuple[str, str]]) -> frozenset[str]:
    return frozenset(op for domain, op in pairs if domain == MS)


def _fold_constants(ctx: PassContext) -> ir.passes.PassBase:
    from .fold_constants import FoldConstantsPass  # onnxscript is heavy: imported when a build runs

    return FoldConstantsPass()


def _rule_pass(module: str, cls: str):
    """A factory importing a pass module that needs onnxscript's rewriter only when a build runs."""

    def factory(ctx: PassContext) -> ir.passes.PassBase:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()

    return factory


def _skip_layer_norm(ctx: PassContext) -> ir.passes.PassBase:
    from .fuse_skip_layer_norm import FuseSkipLayerNormPass

    return FuseSkipLayerNormPass(offered(ctx))


@hookimpl
def openatc_passes() -> Iterator[PassSpec]:
    yield from _canonicalize()
    yield from _fold()
    yield from _fuse()
    yield from _memory()


def _canonicalize() -> Iterator[PassSpec]:
    yield PassSpec(
        "initializers_from_inputs",
        "canonicalize",
        lambda ctx: common.RemoveInitializersFromInputsPass(),
        switchable=False,
        order=10,
        description="Initializers are weights, not overridable inputs.",
    )
    yield PassSpec(
        "identity_elimination",
        "canonicalize",
        lambda ctx: RemoveIdentityPass(),
        order=50,
        description="Removes Identity nodes.",
    )
    yield PassSpec(
        "noop_elimination",
        "canonicalize",
        lambda ctx: EliminateNoOpsPass(),
        order=60,
        description="Removes Dropout, Cast to the same type, Reshape/Squeeze/Unsqueeze/Expand to the same shape, "
        "identity Transpose, x+0, x*1.",
    )
    yield PassSpec(
        "shape_op_merge",
        "canonicalize",
        lambda ctx: MergeShapeOpsPass(),
        order=70,
        description="Merges Transpose pairs and Reshape/Squeeze/Unsqueeze/Flatten chains.",
    )
    yield PassSpec(
        "shape_inference",
        "canonicalize",
        lambda ctx: InferShapesPass(),
        switchable=False,
        order=90,
        description="ONNX shape and type inference (model unchanged on failure).",
    )


def _fold() -> Iterator[PassSpec]:
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
        "canonicalize",
        lambda ctx: LiftConstantsPass(lift_all_constants=True),
        order=20,
        description="Constant nodes become initializers (weights; conv_bn_fusion lifts the small parameters it needs).",
    )


def _fuse() -> Iterator[PassSpec]:
    yield PassSpec(
        "conv_bn_fusion",
        "fuse",
        _rule_pass("fuse_conv_bn", "FuseConvBatchNormPass"),
        order=10,
        description="Folds BatchNormalization into Conv/ConvTranspose/Gemm.",
    )
    yield PassSpec(
        "bias_fusion",
        "fuse",
        lambda ctx: FuseBiasPass(),
        order=20,
        description="A constant per-channel Mul after Conv scales its weights; a constant per-channel Add "
        "after Conv/Gemm becomes its bias.",
    )
    yield PassSpec(
        "residual_scale_fusion",
        "fuse",
        lambda ctx: FuseResidualScalePass(),
        order=25,
        description="x + x*s with a smaller (broadcast) s becomes x*(1+s): squeeze-excitation with a residual.",
    )
    yield PassSpec(
        "matmul_add_fusion",
        "fuse",
        _rule_pass("fuse_matmul_add", "FuseMatMulAddPass"),
        order=30,
        description="2-D MatMul + Add becomes Gemm.",
    )
    yield PassSpec(
        "activation_fusion",
        "fuse",
        _rule_pass("fuse_activation", "FuseActivationPass"),
        order=40,
        description="HardSwish/HardSigmoid from their decomposition; merged Relu/Clip chains; Min/Max as Clip.",
    )
    yield PassSpec(
        "layer_norm_fusion",
        "fuse",
        _rule_pass("fuse_layer_norm", "FuseLayerNormPass"),
        order=50,
        description="Decomposed layer normalization becomes LayerNormalization.",
    )
    yield PassSpec(
        "gelu_fusion",
        "fuse",
        lambda ctx: FuseGeluPass(),
        order=60,
        description="GELU (erf and tanh forms) becomes Gelu (opset 20).",
    )
    yield PassSpec(
        "attention_fusion",
        "fuse",
        lambda ctx: FuseAttentionPass(offered(ctx), slow=slow(ctx)),
        order=70,
        description="Scaled dot-product attention becomes Attention/MultiHeadAttention (backend-offered).",
    )
    yield PassSpec(
        "skip_layer_norm_fusion",
        "fuse",
        _skip_layer_norm,
        default_on=False,
        order=80,
        description="Add + LayerNormalization becomes SkipLayerNormalization (backend-offered; off: measured slower).",
    )
    yield PassSpec(
        "prelu_lowering",
        "fuse",
        lambda ctx: LowerPReluPass(("", "PRelu") in ctx.capabilities.slow_ops),
        order=850,  # before fused_op_lowering: a LeakyRelu it writes can join its Conv
        description="PRelu with a constant slope becomes LeakyRelu, Max(x, x*slope) or Relu + Min*slope, exactly "
        "(backends that list PRelu as slow).",
    )
    yield PassSpec(
        "fused_op_lowering",
        "fuse",
        lambda ctx: LowerFusedOpsPass(offered(ctx)),
        order=900,  # last of the stage: other plugins' fusions (default order 100) see standard ops
        description="Conv/Gemm + activation, MatMul + Transpose/scale become FusedConv/FusedGemm/FusedMatMul "
        "(backend-offered).",
    )


def _memory() -> Iterator[PassSpec]:
    # Once, after the repeated canonicalize/fold/fuse rounds: hashing every weight per round would
    # cost more than the rounds themselves.
    yield PassSpec(
        "deduplicate_initializers",
        "memory",
        lambda ctx: DeduplicateInitializersPass(),
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
