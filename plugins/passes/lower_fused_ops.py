"""Conv/Gemm + activation and MatMul + Transpose/scale become ONNX Runtime's fused contrib ops."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from openatc.graph import walk_nodes

from ._graph import const_array, is_op, op_types, single_use
from ._rule_match import FilteredRuleSet

MS = "com.microsoft"
_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid")


def _activation_params(node: ir.Node) -> list[float] | None:
    """The ``activation_params`` ONNX Runtime's fused ops expect for ``node``; None if unsupported."""
    if node.op_type == "LeakyRelu":
        alpha = node.attributes.get("alpha")
        return [alpha.as_float() if alpha is not None else 0.01]
    if node.op_type == "HardSigmoid":
        alpha, beta = node.attributes.get("alpha"), node.attributes.get("beta")
        return [alpha.as_float() if alpha is not None else 0.2, beta.as_float() if beta is not None else 0.5]
    if node.op_type == "Clip":
        bounds = []
        for i, default in ((1, float(np.finfo(np.float32).min)), (2, float(np.finfo(np.float32).max))):
            if len(node.inputs) > i and node.inputs[i] is not None:
                value = const_array(node.inputs[i])
                if value is None or value.size != 1:
                    return None
                bounds.append(float(value.reshape(())))
            else:
                bounds.append(default)
        return bounds
    return []


def _fused_matmul_possible(model: ir.Model) -> bool:
    """Every FusedMatMul rule of onnxscript needs a (Fused)MatMul and a Div or a Transpose: without
    them, matching the rules against every node costs time for nothing (conv nets)."""
    present = op_types(model.graph)
    return bool(present & {"MatMul", "FusedMatMul"}) and bool(present & {"Div", "Transpose"})


def _float_matmuls_only(model: ir.Model) -> bool:
    """FusedMatMul takes floats only, and onnxscript's rules do not check: skip graphs with integer MatMuls."""
    floats = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE}
    return all(
        all(v is None or v.dtype is None or v.dtype in floats for v in node.inputs)
        for node in walk_nodes(model.graph)
        if node.op_type == "MatMul" and node.domain in ("", "ai.onnx")
    )


class LowerFusedOpsPass(ir.passes.InPlacePass):
    """Rewrites into the fused ops the backend offers (``offered``: com.microsoft op types):

    * ``FusedConv``: Conv followed by Relu, Sigmoid, Tanh, LeakyRelu, Clip (constant bounds) or
      HardSigmoid (float32 only, the Conv output used by the activation only);
    * ``FusedGemm``: the same after Gemm, Clip excepted;
    * ``FusedMatMul``: MatMul with a transposed operand or a scalar scale (onnxscript's rules).
    """

    def __init__(self, offered: frozenset[str]) -> None:
        super().__init__()
        self.offered = offered
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {}
        targets = {"Conv": "FusedConv", "Gemm": "FusedGemm"}
        for node in list(model.graph):
            if node.graph is None or not is_op(node, _ACTIVATIONS):
                continue
            x = node.inputs[0]
            producer = x.producer() if x is not None else None
            if not is_op(producer, tuple(targets)) or targets[producer.op_type] not in self.offered:
                continue
            if not single_use(x) or x.dtype != ir.DataType.FLOAT:
                continue
            if producer.op_type == "Gemm" and node.op_type == "Clip":
                continue  # FusedGemm has no Clip bounds
            params = _activation_params(node)
            if params is not None:
                self._fuse(producer, node, targets[producer.op_type], params)
                key = f"{producer.op_type}+{node.op_type}"
                self.hits[key] = self.hits.get(key, 0) + 1
        if "FusedMatMul" in self.offered and _fused_matmul_possible(model) and _float_matmuls_only(model):
            from onnxscript.rewriter.ort_fusions import fused_matmul_rule_sets

            rules = FilteredRuleSet(fused_matmul_rule_sets.fused_matmul_rule_sets())
            count = rules.apply_to_model(model)
            self.hits["FusedMatMul"] = count
        elif "FusedMatMul" in self.offered:
            self.hits["FusedMatMul"] = 0
        modified = any(self.hits.values())
        if modified:
            model.opset_imports.setdefault(MS, 1)
        return ir.passes.PassResult(model, modified=modified)

    @staticmethod
    def _fuse(op: ir.Node, activation: ir.Node, fused_type: str, params: list[float]) -> None:
        attrs = list(op.attributes.values())
        attrs.append(ir.AttrString("activation", activation.op_type))
        if params and fused_type == "FusedConv":
            attrs.append(ir.AttrFloat32s("activation_params", params))
        elif params:  # FusedGemm names its parameters
            attrs += [ir.AttrFloat32(f"activation_{k}", v) for k, v in zip(("alpha", "beta"), params, strict=False)]
        # node names must stay unique: unnamed ops take the (unique) name of the value they produce
        base = op.name or activation.name or activation.outputs[0].name or fused_type
        fused = ir.Node(MS, fused_type, list(op.inputs), attributes=attrs, name=f"{base}_fused")
        graph = activation.graph
        assert graph is not None
        graph.insert_before(activation, fused)
        out, new = activation.outputs[0], fused.outputs[0]
        new.shape, new.type = out.shape, out.type
        name = out.name
        out.replace_all_uses_with(new, replace_graph_outputs=True)
        out.name = None
        new.name = name
        graph.remove(activation, safe=True)
        graph.remove(op, safe=True)
