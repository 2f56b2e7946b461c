"""Fixtures for the gear tests.

``encoder_onnx`` (session): the example text encoder (``examples/make_text_encoder.py``), written
once per session: ``input_ids`` int64 [batch, seq] -> ``last_hidden_state`` float32 [batch, seq, 512].
``conv_onnx``: :func:`make_conv_model` in the test's tmp_path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "make_text_encoder.py"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def make_conv_model(path: Path) -> Path:
    """``x`` float32 [N, 3, H, W] (symbolic N, H, W) -> Conv 3x3 (16) -> Relu -> Conv 3x3 stride 2 (16)
    -> ``features`` [N, 16, H/2, W/2]; GlobalAveragePool -> Flatten -> Gemm (10) -> ``logits`` [N, 10].
    """
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 3, 3, 3)) * 0.3).astype(np.float32)
    b1 = rng.standard_normal(16).astype(np.float32)
    w2 = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    b2 = rng.standard_normal(16).astype(np.float32)
    w3 = rng.standard_normal((10, 16)).astype(np.float32)
    b3 = rng.standard_normal(10).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["features"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["features"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16, "H2", "W2"]),
        ],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (b3, "b3"))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_fixed_matmul_model(path: Path) -> Path:
    """``x`` float32 [1, S] -> MatMul with ``w`` [64, 8] (node ``fixed_matmul``) -> ``y`` [1, 8].

    Valid for S == 64 only: a gear with another S fails shape inference at ``fixed_matmul``.
    """
    w = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fixed_matmul")],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "S"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def encoder_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("make_text_encoder", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_model(tmp_path_factory.mktemp("encoder") / "text_encoder.onnx")


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    return make_conv_model(tmp_path / "conv.onnx")


@pytest.fixture
def fixed_matmul_onnx(tmp_path: Path) -> Path:
    return make_fixed_matmul_model(tmp_path / "fixed.onnx")
