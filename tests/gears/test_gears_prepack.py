"""Gears share one prepacked copy of their weights through ONNX Runtime's C API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import openatc
from openatc.errors import OpenATCError
from openatc.plugins.backends import cpu, ort_capi

pytestmark = pytest.mark.skipif(not ort_capi.available(), reason="no ONNX Runtime C library next to the package")


@pytest.fixture(scope="module")
def encoder_om(encoder_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return openatc.build(
        model=encoder_onnx,
        framework=5,
        output=tmp_path_factory.mktemp("prepack") / "enc",
        soc_version="cpu",
        input_format="ND",
        input_shape="input_ids:1,-1",
        dynamic_dims="64;128",
    )


def _matmul_model(rows: int, weight: np.ndarray) -> bytes:
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [rows, n])],
        [numpy_helper.from_array(np.zeros_like(weight), "w")],  # overridden by the shared initializer
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_sessions_with_one_container_match_numpy() -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((256, 128)).astype(np.float32)
    container = ort_capi.PrepackedWeights()
    sessions = {
        rows: ort_capi.CApiSession(
            _matmul_model(rows, weight),
            initializers={"w": weight},
            config={},
            intra_op_num_threads=1,
            prepacked=container,
            static_outputs=True,
        )
        for rows in (4, 32)
    }
    for rows, session in sessions.items():
        for _ in range(2):  # the second call writes into pre-allocated outputs
            x = rng.standard_normal((rows, 256)).astype(np.float32)
            (z,) = session.run(["z"], {"x": x})
            np.testing.assert_allclose(z, np.maximum(x @ weight, 0), rtol=1e-4, atol=1e-4)
            assert z.flags.owndata and z.shape == (rows, 128)


def test_c_api_errors_carry_onnx_runtime_message() -> None:
    with pytest.raises(ort_capi.CApiError, match=r"(?i)protobuf|parse|model"):
        ort_capi.CApiSession(b"not a model", initializers={}, config={})


def test_gears_use_shared_prepacking_by_default(encoder_om: Path) -> None:
    with openatc.Session(encoder_om) as session:
        kinds = {type(e).__name__ for e in session._executors}
    assert kinds == {"CApiExecutor"}
    with openatc.Session(encoder_om, backend_options={"prepack": "off"}) as session:
        assert {type(e).__name__ for e in session._executors} == {"OrtExecutor"}
    with openatc.Session(encoder_om, share_weights=False) as session:
        assert {type(e).__name__ for e in session._executors} == {"OrtExecutor"}


def test_a_load_check_packs_no_weights(encoder_om: Path) -> None:
    """The build's load of the .om it wrote (``check_only``) proves each gear loads, with Python
    sessions that build no prepacked-weights container, whatever the prepack option."""
    for options in ({}, {"prepack": "shared"}):
        with openatc.Session(encoder_om, backend_options=options, check_only=True) as session:
            assert {type(e).__name__ for e in session._executors} == {"OrtExecutor"}
    broken = encoder_om.parent / "broken.om"
    broken.write_bytes(encoder_om.read_bytes().replace(b"MatMul", b"MatMuX"))
    with pytest.raises(OpenATCError) as info:
        openatc.Session(broken, verify=False, check_only=True)
    assert info.value.code == "E40003"


def test_prepack_modes_agree(encoder_om: Path) -> None:
    feeds = {"input_ids": np.random.default_rng(1).integers(0, 4096, (1, 128)).astype(np.int64)}
    results = []
    for options in ({"prepack": "shared"}, {"prepack": "off"}):
        with openatc.Session(encoder_om, backend_options=options) as session:
            results.append(session.run(feeds)["last_hidden_state"])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-4)


def test_bad_prepack_option_is_named(encoder_om: Path) -> None:
    with pytest.raises(OpenATCError) as info:
        openatc.Session(encoder_om, backend_options={"prepack": "sometimes"})
    assert info.value.code == "E40003" and "prepack" in str(info.value)
    assert cpu.PREPACK_MODES == ("auto", "shared", "off")


def test_auto_keeps_small_conv_gears_on_python_sessions(conv_onnx: Path, tmp_path: Path) -> None:
    om = openatc.build(
        model=conv_onnx,
        framework=5,
        output=tmp_path / "conv",
        soc_version="cpu",
        input_shape="x:-1,3,32,32",
        dynamic_batch_size="1,2",
    )
    with openatc.Session(om) as session:  # nothing ONNX Runtime prepacks: "auto" means "off"
        assert {type(e).__name__ for e in session._executors} == {"OrtExecutor"}
    with openatc.Session(om, backend_options={"prepack": "shared"}) as session:
        assert {type(e).__name__ for e in session._executors} == {"CApiExecutor"}
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
        shared = session.run({"x": x})
    with openatc.Session(om, backend_options={"prepack": "off"}) as session:
        off = session.run({"x": x})
    for name, value in shared.items():
        np.testing.assert_allclose(value, off[name], rtol=1e-5, atol=1e-5)


def test_only_numeric_tensor_graphs_take_the_c_api_path() -> None:
    import onnx

    def graph(output: onnx.ValueInfoProto) -> onnx.ModelProto:
        g = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], [output], [])
        return helper.make_model(g)

    assert cpu._capi_types(graph(helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])))
    assert not cpu._capi_types(graph(helper.make_tensor_value_info("x", TensorProto.STRING, [2])))
    sequence = helper.make_value_info("x", helper.make_sequence_type_proto(helper.make_tensor_type_proto(1, [2])))
    assert not cpu._capi_types(graph(sequence))
