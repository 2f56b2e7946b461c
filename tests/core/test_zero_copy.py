"""Weights are used from the memory-mapped .om without copies (measured, in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import openatc

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")

LAYERS, WIDTH = 6, 1024  # 6 x 4 MiB of float32 weights


def _big_mlp(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        name = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, WIDTH])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [8, WIDTH])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


_PROBE = textwrap.dedent(
    """
    import json, sys, numpy as np
    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    import onnxruntime as ort, openatc
    from openatc.manager import default_plugin_manager
    default_plugin_manager().backends()  # imports every plugin before measuring
    x = np.ones((8, 1024), np.float32)
    before = anon()
    if sys.argv[1] == "om":
        options = {"prepack": sys.argv[3]}
        sessions = [openatc.Session(sys.argv[2], share_weights=True, backend_options=options) for _ in range(3)]
        out = [s.run({"x": x}) for s in sessions]
    else:
        sessions = [ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"]) for _ in range(3)]
        out = [s.run(None, {"x": x}) for s in sessions]
    print(json.dumps({"delta": anon() - before}))
    """
)


def _anon_delta(kind: str, path: Path, prepack: str = "off") -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, kind, str(path), prepack],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["delta"]


def test_three_sessions_share_one_mapped_copy(tmp_path: Path) -> None:
    model = _big_mlp(tmp_path / "big.onnx")
    om = openatc.build(model=model, framework=5, output=tmp_path / "big", soc_version="cpu")
    weights = LAYERS * WIDTH * WIDTH * 4
    om_delta = _anon_delta("om", om)
    ort_delta = _anon_delta("onnx", model)
    # ONNX Runtime alone keeps a private copy of the weights per session (>= 3x weights); the .om
    # sessions keep them in the shared file mapping: private memory grows by activations only.
    assert ort_delta > 2.5 * weights, (ort_delta, weights)
    assert om_delta < 0.5 * weights, (om_delta, weights)
    # With shared prepacking (the default for gears) the three sessions add ONE packed copy of the
    # MatMul weights (ONNX Runtime's prepacked-weights container), plus ONNX Runtime's C library.
    shared_delta = _anon_delta("om", om, "shared")
    assert shared_delta < 1.5 * weights, (shared_delta, weights)
