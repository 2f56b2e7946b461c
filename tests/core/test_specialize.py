"""--input_shape on the loaded model (checking leaves it untouched, applying sets the shapes) and the
gear clones made from it."""

from __future__ import annotations

import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from openatc.errors import OpenATCError
from openatc.gears import InputShape
from openatc.specialize import apply_input_shapes, check_input_shapes


def _model() -> ir.Model:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    return ir.serde.deserialize_model(helper.make_model(graph))


@pytest.mark.parametrize(
    ("shape", "code"),
    [(InputShape("z", (2, 3)), "E10016"), (InputShape("x", (2, 3, 1)), "E10049"), (InputShape("x", (2, 4)), "E10002")],
)
def test_check_raises_what_apply_raises(shape: InputShape, code: str) -> None:
    for function in (check_input_shapes, apply_input_shapes):
        m = _model()
        with pytest.raises(OpenATCError) as info:
            function(m, [shape])
        assert info.value.code == code
        assert m.graph.inputs[0].shape == ir.Shape(["n", 3])  # nothing set on failure


def test_check_leaves_the_model_as_it_is() -> None:
    m = _model()
    check_input_shapes(m, [InputShape("x", (2, 3))])
    assert m.graph.inputs[0].shape == ir.Shape(["n", 3])
    apply_input_shapes(m, [InputShape("x", (2, 3))])
    assert m.graph.inputs[0].shape == ir.Shape([2, 3])


def test_gear_clones_share_no_type_with_the_model() -> None:
    from openatc.pipeline import _clone_for_gear

    m = _model()
    clone = _clone_for_gear(m)
    for value in (clone.graph.inputs[0], clone.graph.node(0).outputs[0]):
        value.dtype = ir.DataType.FLOAT16  # what a precision pass does: changes the type in place
    assert m.graph.inputs[0].dtype == ir.DataType.FLOAT and m.graph.node(0).outputs[0].dtype == ir.DataType.FLOAT
