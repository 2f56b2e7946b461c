#!/usr/bin/env python3
"""openatc's graph optimizer side by side with ONNX Runtime's own (ORT_ENABLE_ALL), onnxsim and
onnxoptimizer, on the models of ``bench_latency.py`` (same fetching, same cache).

For every model, in one run:

* node counts: the original; after openatc (the .om's graph); after onnxsim (with the same fixed
  input shapes); after onnxoptimizer (its fuse-and-eliminate passes); and ONNX Runtime's saved
  optimized model (ORT_ENABLE_ALL on the original);
* compile time and peak memory (peak RSS of a child process during the call, minus its RSS after
  imports: the kernel's high-water mark is reset before the call) of openatc, onnxsim and
  onnxoptimizer, file to file (load, optimize, save), next to the model's weight bytes: each tool
  compiles ``--compile-repeats`` times (default 3), the tools taking turns, and the run of median
  time is reported;
* accuracy of the .om against ONNX Runtime on the original (max abs error, cosine similarity);
* latency, interleaved run by run: the original under ORT_ENABLE_ALL (the reference), the .om,
  a second session of the original (``original_again``: what two identical engines differ by,
  the noise floor), and the onnxsim and onnxoptimizer outputs under ORT_ENABLE_ALL; medians and
  ratios to the reference;
* the .om's static memory plan: arena bytes, sum of intermediate bytes, lower bound, arena/bound.

A peer that is not installed (``pip install onnxsim onnxoptimizer``) or fails on a model is
skipped for that model and the reason recorded.

Usage::

    python benchmarks/bench_optimizer.py [--runs 100] [--warmup 10] [--threads 0]
                                         [--models text_encoder,ppocr_det] [--quick]
                                         [--compile-repeats 3]
                                         [--output benchmarks/results/optimizer.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_latency as bl  # noqa: E402 - the shared model list, fetching, feeds and timing

import openatc  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "optimizer.json"

#: Run in a child process: one tool on one model; prints JSON with seconds, nodes and RSS after imports.
_CHILD = r"""
import json, resource, sys, time
tool, src, dst, shape = sys.argv[1:5]
import onnx
def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
def rss_kb():  # also resets the peak (VmHWM) to the current RSS: import-time peaks do not count
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_kb("VmRSS")
if tool == "openatc":
    import os, tempfile, openatc
    from openatc.testing import make_tiny_onnx
    with tempfile.TemporaryDirectory() as tmp:  # a tiny build first (opset 13: the converter runs too):
        # one-time imports and initializations are not part of the measure
        openatc.build(model=str(make_tiny_onnx(__import__("pathlib").Path(tmp), opset=13)), framework=5,
                      output=os.path.join(tmp, "warm"), soc_version="cpu", log="null")
    base = rss_kb(); t = time.perf_counter()
    om = openatc.build(model=src, framework=5, output=dst, soc_version="cpu", input_shape=shape, log="null")
    seconds = time.perf_counter() - t; peak = status_kb("VmHWM")
    nodes = openatc.Session(om).manifest["gears"][0]["nodes"]
elif tool == "onnxsim":
    import onnxsim
    base = rss_kb(); t = time.perf_counter()
    shapes = {k: [int(d) for d in v.split(",")] for k, v in (i.rsplit(":", 1) for i in shape.split(";"))}
    model, ok = onnxsim.simplify(onnx.load(src), overwrite_input_shapes=shapes)
    onnx.save(model, dst)  # file to file, as openatc's build (which also writes, syncs and loads back)
    seconds = time.perf_counter() - t; peak = status_kb("VmHWM"); nodes = len(model.graph.node)
else:
    import onnxoptimizer
    base = rss_kb(); t = time.perf_counter()
    model = onnxoptimizer.optimize(onnx.load(src), onnxoptimizer.get_fuse_and_elimination_passes())
    onnx.save(model, dst)
    seconds = time.perf_counter() - t; peak = status_kb("VmHWM"); nodes = len(model.graph.node)
print(json.dumps({"seconds": seconds, "nodes": nodes, "rss_after_imports_kb": base, "peak_kb": peak}))
"""


def run_tool(tool: str, src: Path, dst: Path, shape: str) -> dict[str, Any]:
    """One tool in a child process; adds its peak RSS (ru_maxrss) and the peak over its RSS after
    imports and warm-up (VmHWM, reset just before the measured call, minus VmRSS then)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, tool, str(src), str(dst), shape],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        return {"status": "failed", "error": lines[-1] if lines else f"exit {proc.returncode}"}
    data = json.loads(out.strip().splitlines()[-1])
    data["peak_rss_bytes"] = usage.ru_maxrss * 1024
    data["peak_over_imports_bytes"] = (data.pop("peak_kb") - data.pop("rss_after_imports_kb")) * 1024
    data["status"] = "ok"
    return data


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's repeated compiles: the first failure, else the run of median seconds, with the
    seconds of every run."""
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        return failed[0]
    ordered = sorted(results, key=lambda r: r["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["seconds_all"] = [r["seconds"] for r in results]
    return median


def weight_bytes(path: Path) -> int:
    """Bytes of the initializers and of the Constant nodes (some exporters keep weights there)."""
    model = onnx.load(str(path))
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    return int(sum(onnx.numpy_helper.to_array(t).nbytes for t in tensors))


def ort_optimized_nodes(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "ort.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)


def accuracy(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    worst, cosine = 0.0, 1.0
    for name, r in ref.items():
        g = np.asarray(got[name], np.float64).ravel()
        r = np.asarray(r, np.float64).ravel()
        worst = max(worst, float(np.abs(g - r).max()) if r.size else 0.0)
        denom = float(np.linalg.norm(g) * np.linalg.norm(r))
        if r.dtype.kind == "f" and denom > 0:
            cosine = min(cosine, float(np.dot(g, r) / denom))
    return {"max_abs_diff": worst, "cosine": cosine}


def bench_model(spec: bl.ModelSpec, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    rec: dict[str, Any] = {"model": spec.name, "input_shape": spec.input_shape, "status": "ok"}
    src, _ = bl.model_path(spec, cache)
    work = cache / "optimizer"
    work.mkdir(parents=True, exist_ok=True)
    rec["weight_bytes"] = weight_bytes(src)
    rec["nodes"] = {"original": len(onnx.load(str(src)).graph.node), "ort_enable_all": ort_optimized_nodes(src)}
    outputs = {
        "openatc": work / spec.name,
        "onnxsim": work / f"{spec.name}.onnxsim.onnx",
        "onnxoptimizer": work / f"{spec.name}.onnxoptimizer.onnx",
    }
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in outputs}
    for _ in range(args.compile_repeats):  # interleaved: no tool gets the page cache the others warmed
        for tool, dst in outputs.items():
            runs[tool].append(run_tool(tool, src, dst, spec.input_shape))
    tools = {tool: _median_run(results) for tool, results in runs.items()}
    rec["tools"] = tools
    for name, result in tools.items():
        rec["nodes"][name] = result.get("nodes")
    if tools["openatc"]["status"] != "ok":
        rec["status"] = "failed"
        return rec
    om = work / f"{spec.name}.om"
    threads = {"intra_op_num_threads": args.threads} if args.threads > 0 else None
    session = openatc.Session(om, backend_options=threads)
    rec["memory"] = session.manifest["gears"][0]["memory"]
    rec["missed_fusions"] = session.manifest["gears"][0].get("missed_fusions", [])
    rec["fusion_hits"] = {
        p["name"]: {k: v for k, v in p["hits"].items() if v}
        for p in session.manifest["gears"][0]["passes"]
        if any(p["hits"].values())
    }
    feeds = bl.make_feeds(spec, bl.describe_inputs(src), args.seed)
    ref = bl.ort_session(src, args.threads)
    names = [o.name for o in ref.get_outputs()]
    control = bl.ort_session(src, args.threads)  # a second session of the original: the noise floor
    engines = {
        "original": lambda: ref.run(names, feeds),
        "openatc": lambda: session.run(feeds),
        "original_again": lambda: control.run(names, feeds),
    }
    for peer in ("onnxsim", "onnxoptimizer"):
        if tools[peer]["status"] == "ok":
            peer_session = bl.ort_session(work / f"{spec.name}.{peer}.onnx", args.threads)
            engines[peer] = lambda s=peer_session: s.run(names, feeds)
    ref_out = dict(zip(names, engines["original"](), strict=True))
    rec["accuracy"] = accuracy(ref_out, session.run(feeds))
    timings = bl.interleaved(list(engines.values()), args.runs, args.warmup)
    medians = {name: float(np.median(ms)) for name, ms in zip(engines, timings, strict=True)}
    rec["latency_median_ms"] = medians
    rec["latency_ratio"] = {name: medians[name] / medians["original"] for name in medians if name != "original"}
    session.close()
    return rec


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<13}{'nodes orig':>11}{'ort':>6}{'onnxsim':>8}{'onnxopt':>8}{'openatc':>8}"
        f"{'t/ort':>7}{'ort2':>7}{'t/sim':>7}{'t/opt':>7}{'build s':>8}{'sim s':>7}{'peak/w':>7}{'arena/lb':>9}"
        f"{'cos':>10}"
    )
    lines = [head]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['model']:<13} failed: {r.get('tools', {}).get('openatc', {}).get('error', '?')}")
            continue
        n, ratio, tools = r["nodes"], r["latency_ratio"], r["tools"]
        peak = tools["openatc"]["peak_over_imports_bytes"] / max(r["weight_bytes"], 1)
        lines.append(
            f"{r['model']:<13}{n['original']:>11}{n['ort_enable_all']:>6}{_fmt(n['onnxsim']):>8}"
            f"{_fmt(n['onnxoptimizer']):>8}{n['openatc']:>8}{ratio['openatc']:>7.3f}"
            f"{_fmt(ratio.get('original_again'), '.3f'):>7}"
            f"{_fmt(ratio.get('onnxsim'), '.3f'):>7}{_fmt(ratio.get('onnxoptimizer'), '.3f'):>7}"
            f"{tools['openatc']['seconds']:>8.2f}{_fmt(tools['onnxsim'].get('seconds'), '.2f'):>7}{peak:>7.2f}"
            f"{r['memory']['arena_over_lower_bound']:>9.3f}{r['accuracy']['cosine']:>10.7f}"
        )
    ok = [r["latency_ratio"]["openatc"] for r in results if r["status"] == "ok"]
    if ok:
        lines.append(f"geometric mean of .om/original latency: {math.exp(np.mean(np.log(ok))):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(m.name for m in bl.MODELS))
    parser.add_argument(
        "--compile-repeats", type=int, default=3, help="compiles per tool, interleaved; the median is reported"
    )
    parser.add_argument("--quick", action="store_true", help="20 runs, 3 warm-up")
    parser.add_argument("--cache-dir", type=Path, default=bl.CACHE_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 20, 3
    results = []
    for name in args.models.split(","):
        spec = bl.MODELS_BY_NAME[name]
        try:
            results.append(bench_model(spec, args, args.cache_dir))
        except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
            results.append({"model": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "settings": {
            "runs": args.runs,
            "warmup": args.warmup,
            "threads": args.threads,
            "compile_repeats": args.compile_repeats,
        },
    }
    args.output.write_text(json.dumps({"machine": machine, "results": results}, indent=1, sort_keys=True))
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
