"""affine_to_depthwise (the cpu backend's layout pass): x*a [+ b] with scalar or per-channel
constants after a Conv becomes a depthwise 1x1 Conv; fp32 tolerance 1e-6 (one rounding: the Conv
may fuse the multiply-add)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import openatc
from openatc.plugins.passes.affine_to_depthwise import AffineToDepthwisePass

from ._helpers import check_pass, model, rand

SHAPE = [2, 4, 6, 6]


def _net(scale: np.ndarray, shift: np.ndarray | None, *, activation: str | None = "HardSwish", fanout: bool = False):
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1])]
    src = "c"
    if activation:
        nodes.append(helper.make_node(activation, ["c"], ["h"]))
        src = "h"
    nodes.append(helper.make_node("Mul", ["a", src], ["m"]))  # constant first, as PP-OCR writes it
    last = "m"
    if shift is not None:
        nodes.append(helper.make_node("Add", ["m", "b"], ["s"]))
        last = "s"
    nodes.append(helper.make_node("Conv", [last, "w2"], ["y"], pads=[1, 1, 1, 1], group=4))
    outputs = [("y", SHAPE)]
    if fanout:
        nodes.append(helper.make_node("Neg", ["m"], ["n"]))
        outputs.append(("n", SHAPE))
    weights = {"w1": rand(4, 4, 3, 3, seed=1), "w2": rand(4, 1, 3, 3, seed=2), "a": scale}
    if shift is not None:
        weights["b"] = shift
    return model(nodes, [("x", SHAPE)], outputs, weights)


@pytest.mark.parametrize(
    ("scale", "shift", "rule"),
    [
        (np.array(0.7, np.float32), np.array([-0.25], np.float32), "Mul+Add->depthwise Conv"),
        (
            np.array([0.5, 1.5, -2.0, 1.0], np.float32).reshape(4, 1, 1),
            np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4, 1, 1),
            "Mul+Add->depthwise Conv",
        ),
        (np.array([[[[1.25]]]], np.float32), None, "Mul->depthwise Conv"),
    ],
    ids=["scalars", "per_channel", "scale_only"],
)
def test_affine_becomes_depthwise_conv(scale: np.ndarray, shift: np.ndarray | None, rule: str) -> None:
    m, pass_ = check_pass(
        _net(scale, shift),
        AffineToDepthwisePass,
        {"x": rand(*SHAPE, seed=3)},
        ops_after={"Conv": 3},
        absent=("Mul", "Add"),
        rtol=1e-6,
        atol=1e-6,
    )
    assert pass_.hits == {rule: 1}
    assert not {"a", "b"} & set(m.graph.initializers), "the affine constants are dropped"
    dw = next(n for n in m.graph if n.name.endswith("_dw"))
    assert dw.op_type == "Conv" and dw.attributes["group"].as_int() == 4
    assert list(dw.attributes["kernel_shape"].as_ints()) == [1, 1]


def test_directly_after_conv_and_shared_product() -> None:
    """After the Conv itself; a product also read elsewhere keeps its Add (only the Mul becomes a Conv)."""
    proto = _net(np.array(0.7, np.float32), np.array(0.5, np.float32), activation=None, fanout=True)
    _, pass_ = check_pass(
        proto, AffineToDepthwisePass, {"x": rand(*SHAPE)}, ops_after={"Conv": 3, "Add": 1}, rtol=1e-6, atol=1e-6
    )
    assert pass_.hits == {"Mul->depthwise Conv": 1}


def test_left_alone() -> None:
    """Not after a Conv (a MatMul), a constant that is not per channel, a non-constant factor."""
    nodes = [helper.make_node("MatMul", ["x", "k"], ["p"]), helper.make_node("Mul", ["p", "a"], ["y"])]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], {"k": rand(6, 6), "a": np.array(0.5, np.float32)})
    check_pass(proto, AffineToDepthwisePass, {"x": rand(*SHAPE)}, ops_after={"Mul": 1}, modified=False)
    per_column = np.linspace(1, 2, 6, dtype=np.float32)  # broadcasts over W, not over channels
    check_pass(_net(per_column, None), AffineToDepthwisePass, {"x": rand(*SHAPE)}, ops_after={"Mul": 1}, modified=False)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "z"], ["y"])]
    proto = model(nodes, [("x", SHAPE), ("z", [1, 4, 1, 1])], [("y", SHAPE)], {"w": rand(4, 4, 1, 1)})
    check_pass(proto, AffineToDepthwisePass, {"x": rand(*SHAPE), "z": rand(1, 4, 1, 1)}, modified=False)


def test_cpu_backend_runs_it_and_switch_turns_it_off(tmp_path) -> None:
    import onnx
    import onnxruntime as ort

    path = tmp_path / "affine.onnx"
    onnx.save(_net(np.array(0.7, np.float32), np.array([-0.25], np.float32)), path)
    x = rand(*SHAPE, seed=4)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    switch = tmp_path / "switch.cfg"
    switch.write_text("affine_to_depthwise:off\n")
    for name, extra, rewritten in (("on", {}, True), ("off", {"fusion_switch_file": str(switch)}, False)):
        om = openatc.build(
            model=str(path), framework=5, output=str(tmp_path / name), soc_version="cpu", log="error", **extra
        )
        with openatc.Session(om) as session:
            np.testing.assert_allclose(session.run({"x": x})["y"], expected, rtol=1e-5, atol=1e-5)
            ops = session.manifest["gears"][0]["ops"]
        assert ("Mul" not in ops) is rewritten, ops
