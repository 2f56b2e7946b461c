"""Rule passes give the node a rewrite creates the name of the layer it replaces, so that
skip_layers, --keep_dtype and compare keep naming the layers the user knows."""

from __future__ import annotations

import onnx_ir as ir
from onnx import helper

from openatc.plugins.passes.fuse_activation import FuseActivationPass
from openatc.plugins.passes.fuse_conv_bn import FuseConvBatchNormPass
from openatc.plugins.passes.infer_shapes import InferShapesPass

from ._helpers import model, rand


def _conv_bn_relu() -> ir.Model:
    import numpy as np

    c = 4
    init = {
        "w": rand(c, 3, 3, 3, seed=2),
        "scale": np.full(c, 1.5, np.float32),
        "bias": rand(c, seed=4),
        "mean": rand(c, seed=5),
        "var": np.full(c, 0.5, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["b"], name="bn1"),
        helper.make_node("Relu", ["b"], ["r"], name="relu1"),
        helper.make_node("Relu", ["r"], ["y"], name="relu2"),
    ]
    m = ir.serde.deserialize_model(model(nodes, [("x", [1, 3, 6, 6])], [("y", [1, c, 6, 6])], init))
    InferShapesPass()(m)
    return m


def test_folded_conv_keeps_the_conv_name() -> None:
    m = _conv_bn_relu()
    FuseConvBatchNormPass()(m)
    names = {n.op_type: n.name for n in m.graph}
    assert names["Conv"] == "conv1" and "BatchNormalization" not in names


def test_merged_node_takes_a_removed_name_of_its_op_type() -> None:
    m = _conv_bn_relu()
    FuseActivationPass()(m)  # Relu + Relu -> one Relu
    relus = [n.name for n in m.graph if n.op_type == "Relu"]
    assert len(relus) == 1 and relus[0] in {"relu1", "relu2"}
    assert len({n.name for n in m.graph}) == len(list(m.graph))  # no duplicate names
