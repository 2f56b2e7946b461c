"""Helpers of the pass tests: tiny models, running one pass, and the four checks of every pass test.

``check_pass`` runs a pass on a model (after shape inference, as in the pipeline) and asserts:
op types after, numeric equality with ONNX Runtime on the *original* model (tolerances given per
test), a valid serialized model (``onnx.checker``), and idempotence (a fresh instance of the pass
reports no change on the result).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from openatc.plugins.passes.infer_shapes import InferShapesPass

OPSET = 21


def model(nodes, inputs, outputs, initializers=(), opset: int = OPSET) -> onnx.ModelProto:
    """A model from nodes; ``inputs``/``outputs`` are (name, shape) pairs of float32 tensors unless a
    third element gives the element type; ``initializers`` maps names to arrays."""

    def info(entry):
        name, shape, *rest = entry
        return helper.make_tensor_value_info(name, rest[0] if rest else TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes,
        "tiny",
        [info(i) for i in inputs],
        [info(o) for o in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in dict(initializers).items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    return proto


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def ort_run(proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def op_types(m: ir.Model) -> Counter[str]:
    return Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in m.graph)


def check_pass(
    proto: onnx.ModelProto,
    make_pass: Callable[[], ir.passes.PassBase],
    feeds: Mapping[str, np.ndarray],
    *,
    ops_after: Mapping[str, int] | None = None,
    absent: tuple[str, ...] = (),
    rtol: float = 1e-5,
    atol: float = 1e-5,
    modified: bool = True,
) -> tuple[ir.Model, ir.passes.PassBase]:
    """Runs the pass and asserts the four properties; returns the model after and the pass object."""
    expected = ort_run(proto, feeds)
    m = ir.serde.deserialize_model(proto)
    InferShapesPass()(m)
    pass_ = make_pass()
    result = pass_(m)
    assert result.modified is modified, f"modified={result.modified}; ops now {op_types(m)}"
    ops = op_types(m)
    for op, count in (ops_after or {}).items():
        assert ops.get(op, 0) == count, f"{op}: {ops.get(op, 0)} != {count}; ops now {dict(ops)}"
    for op in absent:
        assert op not in ops, f"{op} still there: {dict(ops)}"
    after = ir.serde.serialize_model(m)
    onnx.checker.check_model(after)
    assert [o.name for o in after.graph.output] == [o.name for o in proto.graph.output]
    actual = ort_run(after, feeds)
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    again = make_pass()
    assert again(m).modified is False, "second run changed the model (not idempotent)"
    return m, pass_
