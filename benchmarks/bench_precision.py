#!/usr/bin/env python3
"""Precision modes side by side: output cosine vs ONNX Runtime on the FP32 original, .om size, latency.

Models: the example text encoder (``examples/make_text_encoder.py``, input_ids 1x64), a small conv
net and the FP16-overflow model of ``tests/precision/_models.py``, and the PP-OCR det/rec/cls models
when ``bench_latency.py`` has cached them. For each model and each
``--precision_mode`` it builds the ``.om``, runs it on one random input next to ONNX Runtime on the
original FP32 model, and times ``--runs`` calls of each (interleaved, same thread count).

Prints a table and writes JSON (default ``benchmarks/results/precision.json``).

Usage::

    python benchmarks/bench_precision.py [--runs 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import openatc

ROOT = Path(__file__).resolve().parents[1]
MODES = ("must_keep_origin_dtype", "allow_fp32_to_fp16", "allow_mix_precision", "force_fp16")


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _cases(work: Path) -> list[tuple[str, Path, dict[str, str], dict[str, np.ndarray]]]:
    encoder = _module(ROOT / "examples" / "make_text_encoder.py", "make_text_encoder")
    models = _module(ROOT / "tests" / "precision" / "_models.py", "precision_models")
    rng = np.random.default_rng(0)
    return [
        (
            "text_encoder",
            encoder.write_model(work / "text_encoder.onnx"),
            {"input_shape": "input_ids:1,64"},
            {"input_ids": rng.integers(0, 4096, (1, 64)).astype(np.int64)},
        ),
        ("conv_net", models.conv_net(work / "conv.onnx"), {}, {"x": rng.standard_normal((1, 3, 32, 32), np.float32)}),
        ("overflow", models.overflow_model(work / "ovf.onnx"), {}, {"x": rng.standard_normal((2, 8, 64), np.float32)}),
        *_ppocr(rng),
    ]


#: PP-OCR models as bench_latency.py caches them (run it once to download); skipped when absent.
PPOCR = ROOT / "benchmarks" / ".cache" / "models" / "rapidocr-onnxruntime" / "rapidocr_onnxruntime" / "models"


def _ppocr(rng: np.random.Generator) -> list[tuple[str, Path, dict[str, str], dict[str, np.ndarray]]]:
    cases = []
    for name, file, dims in (
        ("ppocr_det", "ch_PP-OCRv4_det_infer.onnx", (1, 3, 736, 736)),
        ("ppocr_rec", "ch_PP-OCRv4_rec_infer.onnx", (6, 3, 48, 320)),
        ("ppocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", (6, 3, 48, 192)),
    ):
        if (PPOCR / file).is_file():
            shape = {"input_shape": "x:" + ",".join(map(str, dims))}
            cases.append((name, PPOCR / file, shape, {"x": rng.uniform(-1, 1, dims).astype(np.float32)}))
    return cases


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-30))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "precision.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, model, flags, feeds in _cases(work):
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            ref_sess = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            ref = ref_sess.run(None, feeds)[0]
            for mode in MODES:
                om = openatc.build(
                    model=str(model), framework=5, output=str(work / f"{name}_{mode}"), soc_version="cpu",
                    precision_mode=mode, log="error", **flags,
                )  # fmt: skip
                with openatc.Session(om, backend_options={"intra_op_num_threads": args.threads}) as sess:
                    out = next(iter(sess.run(feeds).values()))
                    om_t, ref_t = [], []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        sess.run(feeds)
                        om_t.append(time.perf_counter() - t)
                        t = time.perf_counter()
                        ref_sess.run(None, feeds)
                        ref_t.append(time.perf_counter() - t)
                rows.append(
                    {
                        "model": name,
                        "mode": mode,
                        "om_bytes": om.stat().st_size,
                        "cosine": _cosine(ref, out),
                        "max_abs": float(np.nanmax(np.abs(ref.astype(np.float64) - out.astype(np.float64)))),
                        "finite": bool(np.isfinite(out).all()),
                        "om_ms": 1e3 * float(np.median(om_t)),
                        "ort_fp32_ms": 1e3 * float(np.median(ref_t)),
                    }
                )
    print(f"{'model':14} {'mode':24} {'size':>10} {'cosine':>11} {'max_abs':>9} {'om ms':>7} {'ort ms':>7}")
    for r in rows:
        print(
            f"{r['model']:14} {r['mode']:24} {r['om_bytes']:>10} {r['cosine']:>11.8f} {r['max_abs']:>9.3g} "
            f"{r['om_ms']:>7.2f} {r['ort_fp32_ms']:>7.2f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"threads": args.threads, "runs": args.runs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
