"""Tests for the bundled example model built by ``examples/make_text_encoder.py``.

The reference below is written from the math of a post-norm transformer encoder layer
(``nn.TransformerEncoderLayer(..., batch_first=True, norm_first=False)`` in eval mode), in
float64 numpy, independently of the ONNX graph the script emits.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "make_text_encoder.py"
# ORT float32 vs float64 reference; observed max abs error is ~2e-6 on outputs of magnitude ~4.
ATOL = 1e-4


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_text_encoder", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def model_path(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return script.write_model(tmp_path_factory.mktemp("text_encoder") / "text_encoder.onnx")


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased variance, as torch uses
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def reference_encoder(ids: np.ndarray, w: dict[str, np.ndarray], nhead: int = 8) -> np.ndarray:
    """Embedding + one post-norm encoder layer (ReLU FFN, no dropout), in float64."""
    p = {k: v.astype(np.float64) for k, v in w.items()}
    x = p["embed.weight"][ids]  # [B, S, E]
    batch, _seq, d_model = x.shape
    head_dim = d_model // nhead

    # Multi-head self-attention with torch's packed in-projection: rows [q; k; v] of W (out x in).
    w_q, w_k, w_v = np.split(p["layer.self_attn.in_proj_weight"], 3, axis=0)
    b_q, b_k, b_v = np.split(p["layer.self_attn.in_proj_bias"], 3)
    q, k, v = x @ w_q.T + b_q, x @ w_k.T + b_k, x @ w_v.T + b_v
    out = np.empty_like(x)
    for h in range(nhead):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        for b in range(batch):
            scores = q[b, :, cols] @ k[b, :, cols].T / np.sqrt(head_dim)  # [S, S]
            out[b, :, cols] = _softmax(scores) @ v[b, :, cols]
    attn = out @ p["layer.self_attn.out_proj.weight"].T + p["layer.self_attn.out_proj.bias"]

    x = _layer_norm(x + attn, p["layer.norm1.weight"], p["layer.norm1.bias"])
    hidden = np.maximum(x @ p["layer.linear1.weight"].T + p["layer.linear1.bias"], 0.0)
    ffn = hidden @ p["layer.linear2.weight"].T + p["layer.linear2.bias"]
    return _layer_norm(x + ffn, p["layer.norm2.weight"], p["layer.norm2.bias"])


@pytest.mark.parametrize("shape", [(1, 64), (2, 128)])
def test_onnxruntime_matches_numpy_reference(script: ModuleType, model_path: Path, shape: tuple[int, int]) -> None:
    weights = script.build_weights(script.SEED)
    ids = np.random.default_rng(1234).integers(0, script.VOCAB_SIZE, size=shape, dtype=np.int64)

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (result,) = session.run(["last_hidden_state"], {"input_ids": ids})

    assert result.dtype == np.float32
    assert result.shape == (*shape, 512)
    assert np.isfinite(result).all()
    expected = reference_encoder(ids, weights)
    # Non-trivial output: LayerNorm'd rows with unit-ish spread, different per token.
    assert 0.5 < float(expected.std()) < 2.0
    max_err = float(np.abs(result.astype(np.float64) - expected).max())
    assert max_err <= ATOL, f"max abs error {max_err:.3g} > {ATOL}"


def test_model_interface(script: ModuleType, model_path: Path) -> None:
    import onnx

    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", script.OPSET)]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input_ids"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "seq"]
    assert out.name == "last_hidden_state"
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = out.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "seq", 512]
    op_types = {n.op_type for n in model.graph.node}
    assert {"Gather", "Shape", "Reshape", "Softmax", "LayerNormalization", "Relu"} <= op_types


def test_build_is_deterministic(script: ModuleType, model_path: Path, tmp_path: Path) -> None:
    # One build in-process (the fixture) and one through the command line in a fresh interpreter.
    cli_path = tmp_path / "cli" / "text_encoder.onnx"
    subprocess.run([sys.executable, str(SCRIPT), str(cli_path)], check=True, capture_output=True)
    again = script.write_model(tmp_path / "again.onnx")
    reference = model_path.read_bytes()
    assert cli_path.read_bytes() == reference
    assert again.read_bytes() == reference
