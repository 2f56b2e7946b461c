#!/usr/bin/env python3
"""Peak memory of INT8 calibration on a BERT-base-size model, relative to its FP32 weight bytes.

Calibrates ``--model`` (default: ``bert_base.onnx`` of ``export_transformers.py``'s cache, a
BERT-base export with inputs ``input_ids``/``attention_mask`` of 1x128) exactly as an INT8 build
does (``openatc.quantize``'s streamed calibration: every activation a default INT8 build
quantizes exposed, one observer each) on ``--samples`` generated samples (random token ids, full
attention mask) written as ``.npy`` files, and reports from ``/proc/self/status``:

* ``held``: resident memory before calibration, above the interpreter with its imports: the
  FP32 model as the build holds it (one ``onnx.ModelProto``);
* ``peak``: the high-water mark of resident memory during calibration alone (``VmHWM`` reset
  through ``/proc/self/clear_refs`` just before it), above the same base;
* both as ratios to the FP32 weight bytes (the goal: ``peak`` under 2x).

Each ``--algorithm`` runs in its own process (a fresh high-water mark). Linux only.

Usage::

    python benchmarks/bench_calibration_memory.py [--model PATH] [--samples 500] [--algorithm percentile]
        [--output results/calibration_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / ".cache" / "models" / "bert_base.onnx"
MIB = 1 << 20


def _status(key: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _write_samples(model_path: Path, folder: Path, count: int, seed: int) -> None:
    import numpy as np
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    for value in model.graph.input:
        if value.name in weights:
            continue
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        sub = folder / value.name
        sub.mkdir(parents=True)
        for index in range(count):
            if "mask" in value.name:
                array = np.ones(dims, dtype)
            elif dtype.kind in "iu":
                array = rng.integers(1000, 30000, size=dims).astype(dtype)  # token ids of BERT's vocabulary
            else:
                array = rng.standard_normal(dims).astype(dtype)
            np.save(sub / f"{index}.npy", array)


def _child(model_path: Path, data: Path, algorithm: str) -> dict[str, object]:
    """Runs in a fresh process: load, calibrate, measure."""
    import onnx

    from openatc.manager import default_plugin_manager
    from openatc.quantize import DEFAULT_OP_TYPES, QuantizationOptions
    from openatc.quantize._calibrate import calibrate, float_tensors
    from openatc.quantize._data import InputSpec, find_samples

    quantizers = default_plugin_manager().quantizers()
    factory = quantizers[algorithm].factory
    base = _status("VmRSS")
    start = time.perf_counter()
    model = onnx.load(model_path)
    model = onnx.shape_inference.infer_shapes(model)
    weight_bytes = sum(
        onnx.numpy_helper.to_array(t).nbytes if not t.raw_data else len(t.raw_data) for t in model.graph.initializer
    )
    specs = []
    inits = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        specs.append(InputSpec(value.name, dtype, dims))
    samples = find_samples(QuantizationOptions(source="bench", data_dirs=(("", data),)), specs)
    tensors = float_tensors(model, DEFAULT_OP_TYPES, set())
    held = _status("VmRSS")
    loaded = time.perf_counter() - start
    _reset_peak()
    start = time.perf_counter()
    full_range = quantizers["minmax"].factory if algorithm != "minmax" else None
    ranges = calibrate(model, samples, tensors, factory, symmetric=False, full_range=full_range)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    return {
        "model": model_path.name,
        "algorithm": algorithm,
        "samples": len(samples),
        "tensors": len(ranges),
        "weight_mib": round(weight_bytes / MIB, 1),
        "base_mib": round(base / MIB, 1),
        "held_mib": round((held - base) / MIB, 1),
        "peak_mib": round((peak - base) / MIB, 1),
        "held_ratio": round((held - base) / weight_bytes, 3),
        "peak_ratio": round((peak - base) / weight_bytes, 3),
        "peak_ratio_with_interpreter": round(peak / weight_bytes, 3),
        "calibration_extra_ratio": round((peak - held) / weight_bytes, 3),
        "load_s": round(loaded, 1),
        "calibration_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--algorithm", default="percentile", help="comma-separated, one process each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "calibration_memory.json")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "DATA", "ALGORITHM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _child(Path(args.child[0]), Path(args.child[1]), args.child[2])
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if not args.model.is_file():
        print(f"error: {args.model} does not exist; run benchmarks/export_transformers.py first", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="openatc-calib-mem-") as tmp:
        data = Path(tmp)
        _write_samples(args.model, data, args.samples, args.seed)
        for algorithm in args.algorithm.split(","):
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(args.model), str(data), algorithm],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                print(done.stdout + done.stderr, file=sys.stderr)
                return 1
            result = json.loads(lines[-1][len("RESULT ") :])
            print(json.dumps(result), flush=True)
            results.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    staging = args.output.with_name(args.output.name + ".staging")
    staging.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(staging, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
