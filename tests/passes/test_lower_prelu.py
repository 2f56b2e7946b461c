"""prelu_lowering: PRelu with a constant slope becomes LeakyRelu, Max(x, x*slope) or
Relu + Min(x, 0)*slope, bit-exactly (tolerance 0), only for backends that list PRelu as slow."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import openatc
from openatc.plugins.passes.lower_prelu import LowerPReluPass

from ._helpers import check_pass, model, rand

SHAPE = [2, 4, 5, 6]


def _prelu(slope: np.ndarray, *, graph_output: bool = False) -> object:
    out = "y" if graph_output else "p"
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c", "s"], [out]),
    ]
    if not graph_output:
        nodes.append(helper.make_node("Neg", ["p"], ["y"]))
    weights = {"w": rand(4, 4, 3, 3, seed=1), "s": slope}
    return model(nodes, [("x", SHAPE)], [("y", SHAPE)], weights)


@pytest.mark.parametrize(
    ("slope", "rule", "ops", "absent"),
    [
        (np.full((4, 1, 1), 0.25, np.float32), "PRelu->LeakyRelu", {"LeakyRelu": 1}, ("PRelu",)),
        (
            np.array([0.1, -0.3, 1.0, 0.7], np.float32).reshape(4, 1, 1),
            "PRelu->Max(x,x*slope)",
            {"Max": 1, "Mul": 1},
            ("PRelu",),
        ),
        (
            np.array([0.1, 2.5, 0.0, 0.7], np.float32).reshape(1, 4, 1, 1),
            "PRelu->Relu+Min*slope",
            {"Relu": 1, "Min": 1, "Mul": 1, "Add": 1},
            ("PRelu",),
        ),
        (np.array([0.2], np.float32), "PRelu->LeakyRelu", {"LeakyRelu": 1}, ("PRelu",)),
    ],
    ids=["one_value", "all_at_most_one", "mixed", "scalar"],
)
def test_prelu_forms_are_exact(slope: np.ndarray, rule: str, ops: dict[str, int], absent: tuple[str, ...]) -> None:
    x = rand(*SHAPE, seed=3, scale=2.0)
    x[0, 0, 0, :3] = [0.0, -0.0, 1e-38]  # zeros and a denormal take the same branch as PRelu
    _, pass_ = check_pass(
        _prelu(slope), lambda: LowerPReluPass(True), {"x": x}, ops_after=ops, absent=absent, rtol=0, atol=0
    )
    assert pass_.hits == {rule: 1}


def test_graph_output_keeps_its_name() -> None:
    slope = np.array([0.1, -0.3, 1.0, 0.7], np.float32).reshape(4, 1, 1)
    m, _ = check_pass(
        _prelu(slope, graph_output=True), lambda: LowerPReluPass(True), {"x": rand(*SHAPE)}, rtol=0, atol=0
    )
    assert [o.name for o in m.graph.outputs] == ["y"]


def test_disabled_or_not_constant_keeps_prelu() -> None:
    slope = np.full((4, 1, 1), 0.25, np.float32)
    check_pass(
        _prelu(slope), lambda: LowerPReluPass(False), {"x": rand(*SHAPE)}, ops_after={"PRelu": 1}, modified=False
    )
    nodes = [helper.make_node("PRelu", ["x", "s"], ["y"])]
    dynamic = model(nodes, [("x", SHAPE), ("s", [4, 1, 1])], [("y", SHAPE)])
    feeds = {"x": rand(*SHAPE), "s": rand(4, 1, 1, seed=2)}
    check_pass(dynamic, lambda: LowerPReluPass(True), feeds, ops_after={"PRelu": 1}, modified=False)


def test_backends_choose(tmp_path) -> None:
    """cpu lists PRelu as slow (rewritten), reference does not (kept); both match ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    slope = np.array([0.1, -0.3, 1.0, 0.7], np.float32).reshape(4, 1, 1)
    path = tmp_path / "prelu.onnx"
    onnx.save(_prelu(slope), path)
    x = rand(*SHAPE, seed=5)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for soc, kept in (("cpu", False), ("reference", True)):
        om = openatc.build(model=str(path), framework=5, output=str(tmp_path / soc), soc_version=soc, log="error")
        with openatc.Session(om) as session:
            got = session.run({"x": x})["y"]
            ops = session.manifest["gears"][0]["ops"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)  # the Conv kernels differ (reference: numpy)
        assert ("PRelu" in ops) is kept, ops
