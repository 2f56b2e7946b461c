"""conv_bn_fusion: BatchNormalization folded into Conv; fp32 tolerance 1e-4 (weights rescaled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

from openatc.plugins.passes.fuse_conv_bn import FuseConvBatchNormPass

from ._helpers import check_pass, model, rand


def test_conv_bn_becomes_one_conv() -> None:
    rng = np.random.default_rng(1)
    c = 8
    init = {
        "w": rand(c, 3, 3, 3, seed=2),
        "b": rand(c, seed=3),
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rand(c, seed=4),
        "mean": rand(c, seed=5),
        "var": rng.uniform(0.5, 2.0, c).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-5),
    ]
    proto = model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, c, 8, 8])], init)
    _, pass_ = check_pass(
        proto,
        FuseConvBatchNormPass,
        {"x": rand(1, 3, 8, 8)},
        ops_after={"Conv": 1},
        absent=("BatchNormalization",),
        rtol=1e-4,
        atol=1e-4,
    )
    assert pass_.hits["Conv+BatchNormalization"] == 1


def test_small_constant_node_parameters_are_lifted_and_folded() -> None:
    """PP-OCR's classifier: 8-channel BatchNormalization parameters as Constant nodes (below
    lift_constants' 16-element limit) and a Conv without bias still fold."""
    rng = np.random.default_rng(7)
    c = 8
    params = {
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rand(c, seed=8),
        "mean": rand(c, seed=9),
        "var": rng.uniform(0.5, 2.0, c).astype(np.float32),
    }
    nodes = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))
        for name, array in params.items()
    ]
    nodes += [
        helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["a", *params], ["y"], epsilon=1e-5),
    ]
    proto = model(nodes, [("x", [2, 3, 8, 8])], [("y", [2, c, 4, 4])], {"w": rand(c, 3, 3, 3, seed=2)})
    _, pass_ = check_pass(
        proto,
        FuseConvBatchNormPass,
        {"x": rand(2, 3, 8, 8)},
        ops_after={"Conv": 1},
        absent=("BatchNormalization", "Constant"),
        rtol=1e-4,
        atol=1e-4,
    )
    assert pass_.hits["Conv+BatchNormalization"] == 1


def test_bn_of_few_channels_with_constant_node_parameters_is_fused_in_a_build(tmp_path: Path) -> None:
    """Exporters (Paddle) give BatchNormalization its parameters as Constant nodes; with 8 channels
    they are below the lifting pass's default size limit, and an unfused BatchNormalization splits
    an INT8 build's Conv from its activation."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    import openatc
    from openatc.inspect import export_onnx

    rng = np.random.default_rng(1)
    c = 8
    params = {
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rand(c, seed=4),
        "mean": rand(c, seed=5),
        "var": rng.uniform(0.5, 2.0, c).astype(np.float32),
    }
    nodes = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))
        for name, value in params.items()
    ]
    nodes += [
        helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", *params], ["b"], epsilon=1e-5),
        helper.make_node("HardSwish", ["b"], ["y"]),
    ]
    proto = model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, c, 8, 8])], {"w": rand(c, 3, 3, 3, seed=2)})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    om = openatc.build(model=str(path), framework=5, soc_version="cpu", output=str(tmp_path / "m"), log="error")
    built = onnx.load(export_onnx(om, tmp_path / "built.onnx", 0))
    assert "BatchNormalization" not in {n.op_type for n in built.graph.node}
    x = rand(1, 3, 8, 8, seed=7)
    want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    with openatc.Session(om) as session:
        got = next(iter(session.run({"x": x}).values()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
