"""The ``openatc.testing`` pytest plugin itself: fixtures, model factories, numeric comparison."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import openatc
from openatc.testing import (
    TINY_OPSET,
    assert_numerically_equal,
    make_inputs,
    make_tiny_model,
    make_tiny_onnx,
    run_onnx_reference,
)

pytest_plugins = ["openatc.testing", "pytester"]


# -- the fixtures, as a plugin author's test suite uses them ---------------------------------------
_AUTHOR_TESTS = """
import openatc
import pluggy
import pytest

FIRST = {}


class Npu:
    @openatc.hookimpl
    def openatc_backends(self):
        yield openatc.Backend("npu", ("Npu1",), openatc.BackendCapabilities(), lambda m, c: None,
                              lambda ctx: None)


class Typo:
    @openatc.hookimpl
    def openatc_backend(self):
        return ()


def test_register(plugin_manager, register_plugin):
    FIRST["pm"] = plugin_manager
    name = register_plugin(Npu(), "npu_plugin")
    assert name == "npu_plugin"
    assert plugin_manager.backend_for_soc("npu1").name == "npu"


def test_unregistered_after_the_test_and_fresh_manager(plugin_manager):
    assert FIRST["pm"].get_plugin("npu_plugin") is None  # torn down
    assert "npu" not in FIRST["pm"].backends()
    assert plugin_manager is not FIRST["pm"]
    assert plugin_manager.get_plugin("npu_plugin") is None


def test_typo_is_rejected(plugin_manager, register_plugin):
    with pytest.raises(pluggy.PluginValidationError):
        register_plugin(Typo(), "typo")
    assert plugin_manager.get_plugin("typo") is None


def test_unchecked_registration_is_still_removed(plugin_manager, register_plugin):
    register_plugin(Typo(), "typo", check=False)
    FIRST["typo_pm"] = plugin_manager


def test_unchecked_plugin_was_removed():
    FIRST["typo_pm"].check_pending()


def test_tiny_onnx(tiny_onnx, tmp_path):
    assert tiny_onnx.parent == tmp_path and tiny_onnx.suffix == ".onnx"


def test_no_entry_points(plugin_manager):
    from openatc.manager import BUILTIN_PLUGINS

    assert {name for name, _ in plugin_manager.list_name_plugin()} == set(BUILTIN_PLUGINS)
"""


def test_fixtures_in_a_plugin_authors_suite(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["openatc.testing"]')
    pytester.makepyfile(test_author=_AUTHOR_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=7)


def test_fixtures_are_listed_with_docs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["openatc.testing"]')
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*fixtures defined from openatc.testing*"])
    for lines in (["plugin_manager -- *", "*fresh plugin manager*"], ["register_plugin -- *"], ["tiny_onnx -- *"]):
        result.stdout.fnmatch_lines(lines, consecutive=True)


# -- model factories -----------------------------------------------------------------------------------
def test_tiny_model_is_valid_and_deterministic() -> None:
    model = make_tiny_model()
    onnx.checker.check_model(model, full_check=True)
    assert [o.domain for o in model.opset_import] == [""] and model.opset_import[0].version == TINY_OPSET
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "Relu", "MatMul", "Add"]
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert {k: v.dtype for k, v in weights.items()} == dict.fromkeys(["W1", "B1", "W2", "B2"], np.float32)
    assert weights["W1"].nbytes >= 1024 and weights["W2"].nbytes >= 1024  # stored as .om weights
    assert make_tiny_model().SerializeToString() == model.SerializeToString()
    assert make_tiny_model(seed=1).SerializeToString() != model.SerializeToString()


def test_tiny_model_options(tmp_path) -> None:
    path = make_tiny_onnx(
        tmp_path / "sub", "m.onnx", batch="N", in_features=4, hidden=8, out_features=2, with_identity=True
    )
    model = onnx.load(path)
    assert model.graph.node[-1].op_type == "Identity"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    feeds = make_inputs(path, dims={"N": 3})
    assert feeds["x"].shape == (3, 4) and feeds["x"].dtype == np.float32
    y = run_onnx_reference(path, feeds)["y"]
    assert y.shape == (3, 2)
    assert make_inputs(model)["x"].shape == (1, 4)  # unnamed symbolic dims default to 1


def test_make_inputs_covers_integer_and_bool_inputs() -> None:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["ids"], ["out"])],
        "g",
        [
            onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [2, 3]),
            onnx.helper.make_tensor_value_info("mask", onnx.TensorProto.BOOL, [2]),
        ],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.INT64, [2, 3])],
    )
    feeds = make_inputs(onnx.helper.make_model(graph))
    assert feeds["ids"].dtype == np.int64 and ((feeds["ids"] >= 0) & (feeds["ids"] < 10)).all()
    assert feeds["mask"].dtype == np.bool_


def test_tiny_model_builds_and_runs_on_the_builtin_backends(
    plugin_manager: openatc.manager.OpenATCPluginManager, tiny_onnx, tmp_path
) -> None:
    feeds = make_inputs(tiny_onnx)
    expected = run_onnx_reference(tiny_onnx, feeds)
    for soc in ("cpu", "reference"):
        om = openatc.build(
            model=str(tiny_onnx),
            framework=5,
            output=str(tmp_path / soc),
            soc_version=soc,
            plugin_manager=plugin_manager,
        )
        with openatc.Session(om, plugin_manager=plugin_manager) as session:
            assert_numerically_equal(session.run(feeds), expected, rtol=1e-5, atol=1e-5, name=soc)


# -- assert_numerically_equal ---------------------------------------------------------------------------
def test_equal_within_tolerance_passes() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert_numerically_equal(a, a + 1e-7)
    assert_numerically_equal(a, a * (1 + 1e-4), rtol=1e-3, atol=0)
    assert_numerically_equal([1, 2, 3], np.array([1, 2, 3], dtype=np.int64))
    assert_numerically_equal(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert_numerically_equal({"y": a}, {"y": a.copy()})
    assert_numerically_equal(np.zeros((0, 3)), np.zeros((0, 3)))


def test_message_names_the_worst_element() -> None:
    expected = np.zeros((2, 3), dtype=np.float32)
    actual = expected.copy()
    actual[0, 1] = 0.5
    actual[1, 2] = 2.0
    with pytest.raises(AssertionError) as info:
        assert_numerically_equal(actual, expected, rtol=1e-5, atol=1e-3, name="logits")
    message = str(info.value)
    assert message.startswith("logits: 2 of 6 elements differ beyond atol=0.001, rtol=1e-05")
    assert "max abs error 2," in message
    assert "worst at index (1, 2): actual 2.0, expected 0.0" in message


def test_message_reports_relative_error() -> None:
    with pytest.raises(AssertionError, match=r"max abs error 0\.5, max rel error 0\.25;.*index \(1,\)"):
        assert_numerically_equal(np.array([1.0, 2.5]), np.array([1.0, 2.0]), rtol=0, atol=0.1)


def test_nan_mismatch_is_reported_first() -> None:
    with pytest.raises(AssertionError, match=r"2 of 3 elements differ.*1 of them NaN/inf.*index \(2,\)"):
        assert_numerically_equal(np.array([0.0, 5.0, np.nan]), np.array([0.0, 0.0, 1.0]), atol=0.1)
    with pytest.raises(AssertionError, match="NaN"):
        assert_numerically_equal(np.array([np.nan]), np.array([np.nan]), equal_nan=False)


def test_shape_and_name_mismatches() -> None:
    with pytest.raises(AssertionError, match=r"shape \(2,\) != expected shape \(1, 2\)"):
        assert_numerically_equal(np.zeros(2), np.zeros((1, 2)))
    with pytest.raises(AssertionError, match=r"names differ: actual \['a'\], expected \['b'\]"):
        assert_numerically_equal({"a": np.zeros(1)}, {"b": np.zeros(1)})
    with pytest.raises(AssertionError, match=r"^'b': 1 of 1 elements differ"):
        assert_numerically_equal({"a": np.zeros(1), "b": np.ones(1)}, {"a": np.zeros(1), "b": np.zeros(1)})
    with pytest.raises(AssertionError, match="mapping"):
        assert_numerically_equal({"a": np.zeros(1)}, np.zeros(1))


def test_integer_and_string_arrays() -> None:
    with pytest.raises(AssertionError, match=r"worst at index \(1,\): actual 7, expected 3"):
        assert_numerically_equal(np.array([1, 7], dtype=np.int32), np.array([1, 3], dtype=np.int32), atol=0)
    assert_numerically_equal(np.array(["a", "b"]), np.array(["a", "b"]))
    with pytest.raises(AssertionError, match=r"1 of 2 elements differ; first at index \(1,\)"):
        assert_numerically_equal(np.array(["a", "b"]), np.array(["a", "c"]))
