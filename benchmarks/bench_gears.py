#!/usr/bin/env python3
"""Gears: accuracy, file size, resident memory and per-gear latency of multi-gear .om files.

For each case (the example text encoder with ``--dynamic_dims``, a conv net with
``--dynamic_batch_size`` and with ``--dynamic_image_size``), in one run:

* builds the multi-gear ``.om`` and a single-gear ``.om`` at the largest gear;
* per gear: cosine similarity (FP32) of every output against ONNX Runtime on the *original*
  dynamic model at the same shape, and median latency of the ``.om`` and of that ONNX Runtime
  session, timed interleaved run by run (reference, om, reference, om, ...), with the same
  ``intra_op_num_threads``; the ``.om`` runs with default settings (gears share the weights and
  one prepacked copy of them, through ONNX Runtime's C API), as "1 session" with
  ``share_weights=False`` (one Python ONNX Runtime session per gear, each with its own prepacked
  copy) and as "unpacked" with ``backend_options={"prepack": "off"}`` (shared weights, no
  prepacking);
* file size: multi-gear ``.om`` / single-gear ``.om``;
* resident memory, each in a fresh process: ``VmRSS`` and ``RssAnon`` growth from before the
  ``Session`` is created until every gear has run once, for the multi-gear ``.om`` and for the
  single-gear ``.om`` (both with default Session settings), and for the multi-gear ``.om`` with
  prepacking off. ONNX Runtime's C library is mapped before measuring (a one-off cost per process,
  like importing onnxruntime); its own growth is reported as ``C lib MB``.

Prints a table and writes JSON (default ``benchmarks/results/gears.json``).

Usage::

    python benchmarks/bench_gears.py [--runs 50] [--warmup 5] [--threads 1] [--cases encoder,conv_batch]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import openatc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUTPUT = HERE / "results" / "gears.json"


# -- models ----------------------------------------------------------------------------------------
def _encoder(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_text_encoder", REPO / "examples" / "make_text_encoder.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_model(path)


def _conv(path: Path) -> Path:
    """x [N, 3, H, W] -> 3 conv blocks (32, 64, 128 channels, stride 2) -> GAP -> FC 1000 -> logits [N, 1000]."""
    rng = np.random.default_rng(0)
    nodes, inits, name, cin = [], [], "x", 3
    for i, cout in enumerate((32, 64, 128)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")]
        nodes.append(
            helper.make_node(
                "Conv", [name, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1], strides=[2, 2]
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        name, cin = f"r{i}", cout
    fc = (rng.standard_normal((1000, cin)) / np.sqrt(cin)).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc"), numpy_helper.from_array(np.zeros(1000, np.float32), "fcb")]
    nodes += [
        helper.make_node("GlobalAveragePool", [name], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]
    flags: dict[str, str]  # gear flags for openatc.build
    single_shape: str  # --input_shape of the single-gear build (the largest gear)
    int_high: int = 0  # > 0: integer inputs in [0, int_high)


CASES = {
    "encoder": Case(
        "encoder",
        _encoder,
        {"input_format": "ND", "input_shape": "input_ids:1,-1", "dynamic_dims": "64;128;256"},
        "input_ids:1,256",
        int_high=4096,
    ),
    "conv_batch": Case(
        "conv_batch", _conv, {"input_shape": "x:-1,3,224,224", "dynamic_batch_size": "1,2,4,8"}, "x:8,3,224,224"
    ),
    "conv_image": Case(
        "conv_image",
        _conv,
        {"input_shape": "x:1,3,-1,-1", "dynamic_image_size": "224,224;320,320;448,448"},
        "x:1,3,448,448",
    ),
}


# -- measuring -------------------------------------------------------------------------------------
def _feeds(shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str], int_high: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in shapes.items():
        dtype = np.dtype(dtypes[name])
        if np.issubdtype(dtype, np.integer):
            feeds[name] = rng.integers(0, int_high or 16, shape).astype(dtype)
        else:
            feeds[name] = rng.uniform(-1, 1, shape).astype(dtype)
    return feeds


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def _time(fns: list[Callable[[], Any]], runs: int, warmup: int) -> list[tuple[float, float]]:
    """(median wall ms, median thread-CPU ms) of each callable, interleaved run by run.

    The order rotates every run (a, b, c; b, c, a; ...) so no engine always follows the same one.
    Thread CPU time (``time.thread_time``) counts only while the calling thread runs: with one
    intra-op thread every kernel runs on it, so it is robust to other processes taking the CPU.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    gc.disable()
    try:
        for run in range(runs):
            for i in order[run % len(fns) :] + order[: run % len(fns)]:
                start, start_cpu = time.perf_counter(), time.thread_time()
                fns[i]()
                cpu[i].append((time.thread_time() - start_cpu) * 1e3)
                wall[i].append((time.perf_counter() - start) * 1e3)
    finally:
        gc.enable()
    return [(float(np.median(w)), float(np.median(c))) for w, c in zip(wall, cpu, strict=True)]


_PROBE = textwrap.dedent(
    """
    import json, sys, numpy as np
    def status():
        out = {}
        for line in open("/proc/self/status"):
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
        return out
    import onnxruntime, openatc
    from openatc.manager import default_plugin_manager
    from openatc.plugins.backends import ort_capi
    default_plugin_manager().backends()  # every plugin imported before measuring
    start = status()
    ort_capi.available()  # ONNX Runtime's C library: a one-off cost per process, reported apart
    before = status()
    share = None if sys.argv[2] == "default" else True
    session = openatc.Session(sys.argv[1], share_weights=share, backend_options={"prepack": sys.argv[3]})
    loaded = status()
    specs = {s.name: s.dtype for s in session.inputs}
    for shapes in session.gears:
        session.run({n: np.zeros(s, specs[n]) for n, s in shapes.items()})
    after = status()
    result = {k: after[k] - before[k] for k in after}
    result["VmRSS_loaded"] = loaded["VmRSS"] - before["VmRSS"]
    result["c_library_VmRSS"] = before["VmRSS"] - start["VmRSS"]
    result["c_library_RssAnon"] = before["RssAnon"] - start["RssAnon"]
    print(json.dumps(result))
    """
)


def resident(om: Path, share: str = "default", prepack: str = "shared") -> dict[str, int]:
    """Growth (bytes) of a fresh process's VmRSS and RssAnon from before loading ``om`` until every gear
    has run once, and of VmRSS right after loading (``VmRSS_loaded``). ONNX Runtime's C library is
    mapped before ``before``; its own cost is ``c_library_VmRSS`` / ``c_library_RssAnon``."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(om), share, prepack],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_case(case: Case, work: Path, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    model = case.make(work / f"{case.name}.onnx")
    start = time.perf_counter()
    multi = openatc.build(model=model, framework=5, output=work / f"{case.name}_gears", soc_version="cpu", **case.flags)
    compile_s = time.perf_counter() - start
    single = openatc.build(
        model=model, framework=5, output=work / f"{case.name}_single", soc_version="cpu", input_shape=case.single_shape
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    reference = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    backend_options = {"intra_op_num_threads": threads} if threads else None
    gears = []
    prepacked = openatc.Session(multi, backend_options=backend_options, share_weights=False)
    unpacked = openatc.Session(multi, backend_options={**(backend_options or {}), "prepack": "off"})
    with openatc.Session(multi, backend_options=backend_options) as session, prepacked, unpacked:
        dtypes = {s.name: s.dtype for s in session.inputs}
        names = [o.name for o in session.outputs]
        for index, shapes in enumerate(session.gears):
            feeds = _feeds(shapes, dtypes, case.int_high, seed=index)
            got = session.run(feeds)
            want = dict(zip(names, reference.run(names, feeds), strict=True))
            cosines = {n: _cosine(got[n], want[n]) for n in names}
            (ref_ms, ref_cpu), (om_ms, om_cpu), (prepacked_ms, prepacked_cpu), (unpacked_ms, unpacked_cpu) = _time(
                [
                    lambda f=feeds: reference.run(names, f),
                    lambda f=feeds: session.run(f),
                    lambda f=feeds: prepacked.run(f),
                    lambda f=feeds: unpacked.run(f),
                ],
                runs,
                warmup,
            )
            gears.append(
                {
                    "gear": f"gear{index}",
                    "shapes": {n: list(s) for n, s in shapes.items()},
                    "cosine": cosines,
                    "min_cosine": min(cosines.values()),
                    "ort_median_ms": ref_ms,
                    "om_median_ms": om_ms,
                    "ratio": om_ms / ref_ms,
                    "om_prepacked_median_ms": prepacked_ms,
                    "ratio_prepacked": prepacked_ms / ref_ms,
                    "om_unpacked_median_ms": unpacked_ms,
                    "ratio_unpacked": unpacked_ms / ref_ms,
                    "ort_cpu_median_ms": ref_cpu,
                    "om_cpu_median_ms": om_cpu,
                    "cpu_ratio": om_cpu / ref_cpu,
                    "cpu_ratio_prepacked": prepacked_cpu / ref_cpu,
                    "cpu_ratio_unpacked": unpacked_cpu / ref_cpu,
                }
            )
    memory = {
        "gears": resident(multi),
        "gears_unpacked": resident(multi, prepack="off"),
        "single": resident(single),
        "single_shared": resident(single, "shared"),
    }
    return {
        "case": case.name,
        "flags": case.flags,
        "compile_s": compile_s,
        "gear_count": len(gears),
        "om_bytes": multi.stat().st_size,
        "single_om_bytes": single.stat().st_size,
        "size_ratio": multi.stat().st_size / single.stat().st_size,
        "memory": memory,
        "rss_ratio": memory["gears"]["VmRSS"] / memory["single"]["VmRSS"],
        "rss_ratio_loaded": memory["gears"]["VmRSS_loaded"] / memory["single"]["VmRSS_loaded"],
        "rss_ratio_vs_shared_single": memory["gears"]["VmRSS"] / memory["single_shared"]["VmRSS"],
        "rss_ratio_unpacked": memory["gears_unpacked"]["VmRSS"] / memory["single"]["VmRSS"],
        "gears": gears,
    }


# -- report ----------------------------------------------------------------------------------------
def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'case':<11} {'gear':<6} {'shape':<22} {'cosine':>10} {'ORT ms':>8} {'om ms':>8} {'ratio':>6} {'cpu':>6} "
        f"{'1 session':>9} {'ratio':>6} {'cpu':>6} {'unpacked':>8} {'ratio':>6} {'cpu':>6}",
        "-" * 127,
    ]
    for r in results:
        for g in r["gears"]:
            shape = ";".join(f"{n}:{','.join(map(str, s))}" for n, s in g["shapes"].items())
            lines.append(
                f"{r['case']:<11} {g['gear']:<6} {shape:<22} {g['min_cosine']:>10.7f} {g['ort_median_ms']:>8.3f} "
                f"{g['om_median_ms']:>8.3f} {g['ratio']:>6.3f} {g['cpu_ratio']:>6.3f} "
                f"{g['om_prepacked_median_ms']:>9.3f} {g['ratio_prepacked']:>6.3f} {g['cpu_ratio_prepacked']:>6.3f} "
                f"{g['om_unpacked_median_ms']:>8.3f} {g['ratio_unpacked']:>6.3f} {g['cpu_ratio_unpacked']:>6.3f}"
            )
    lines += [
        "",
        f"{'case':<11} {'gears':>5} {'om MB':>8} {'1-gear MB':>9} {'size x':>7} {'RSS MB':>7} "
        f"{'1-gear RSS':>10} {'RSS x':>6} {'RSS x loaded':>12} {'RSS x unpacked':>14} {'C lib MB':>8}",
        "-" * 108,
    ]
    for r in results:
        m = r["memory"]
        lines.append(
            f"{r['case']:<11} {r['gear_count']:>5} {r['om_bytes'] / 1e6:>8.2f} {r['single_om_bytes'] / 1e6:>9.2f} "
            f"{r['size_ratio']:>7.4f} {m['gears']['VmRSS'] / 1e6:>7.1f} {m['single']['VmRSS'] / 1e6:>10.1f} "
            f"{r['rss_ratio']:>6.3f} {r['rss_ratio_loaded']:>12.3f} {r['rss_ratio_unpacked']:>14.3f} "
            f"{m['gears']['c_library_VmRSS'] / 1e6:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="intra_op_num_threads for both engines; 0 = ORT default")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_gears_") as tmp:
        for name in args.cases.split(","):
            print(f"  {name} ...", flush=True)
            results.append(bench_case(CASES[name], Path(tmp), args.runs, args.warmup, args.threads))
    print(_table(results))
    data = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "onnxruntime": ort.__version__,
            "openatc": openatc.__version__,
            "threads": args.threads,
            "runs": args.runs,
            "warmup": args.warmup,
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
