"""matmul_add_fusion: 2-D MatMul + Add becomes Gemm; fp32 tolerance 1e-5."""

from __future__ import annotations

from onnx import helper

from openatc.plugins.passes.fuse_matmul_add import FuseMatMulAddPass

from ._helpers import check_pass, model, rand


def test_matmul_add_becomes_gemm() -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Add", ["a", "b"], ["y"])]
    proto = model(nodes, [("x", [3, 8])], [("y", [3, 4])], {"w": rand(8, 4), "b": rand(4, seed=1)})
    _, pass_ = check_pass(proto, FuseMatMulAddPass, {"x": rand(3, 8)}, ops_after={"Gemm": 1}, absent=("MatMul", "Add"))
    assert pass_.hits["MatMul+Add"] == 1
