#!/usr/bin/env python3
"""INT8 and FP16 vs FP32, and openatc's INT8 vs ONNX Runtime's ``quantize_static``, side by side.

For every model, in one process and one run:

* builds the FP32 ``.om`` (default precision), the FP16 ``.om`` (``--precision_mode=force_fp16``)
  and the INT8 ``.om`` (``--calibration_config``: ``--algorithm``, per-channel INT8 weights,
  UINT8 activations, ``accuracy_target`` 0.99 unless ``--no-target``), and ONNX Runtime's
  ``quantize_static`` model from the same calibration samples and the same algorithm (QDQ,
  per-channel, QUInt8 activations / QInt8 weights, after ``quant_pre_process``);
* runs each on held-out inputs the calibration never saw and reports, for the worst output, the
  cosine vs ONNX Runtime on the original FP32 model over all held-out samples together;
* times every engine interleaved run by run (median of ``--runs``, same ``--threads``), and
  reports latency and file size as ratios to the FP32 original in ONNX Runtime.

Calibration inputs: for the PP-OCR models, crops of scikit-image's sample photos (3 in 4 from
its two text images, the rest people and objects) preprocessed as PP-OCR does
((x/255 - 0.5) / 0.5, NCHW); for the encoder, random token ids. Models come from
``bench_latency.py``'s cache (the RapidOCR wheel).

Usage::

    python benchmarks/bench_int8.py [--models text_encoder,ppocr_det,ppocr_rec,ppocr_cls]
        [--samples 24] [--runs 30] [--threads 1] [--algorithm minmax] [--output results/int8.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import openatc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: openatc algorithm -> ONNX Runtime CalibrationMethod name.
ORT_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _photos() -> list[np.ndarray]:
    import skimage.data as d

    images = []
    for name in ("text", "page", "astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field"):
        try:
            image = getattr(d, name)()
        except Exception:  # noqa: BLE001 - a sample image that needs a download is skipped
            continue
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        images.append(image[:, :, :3].astype(np.uint8))
    return images


def _image_samples(shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    """``count`` PP-OCR-preprocessed batches cut from random crops of the sample photos."""
    import cv2

    rng = np.random.default_rng(seed)
    photos = _photos()
    text = photos[:2]  # skimage's "text" and "page": what OCR models are for
    batch, _, height, width = shape
    samples = []
    for _ in range(count):
        items = []
        for _ in range(batch):
            pool = text if rng.random() < 0.75 else photos
            photo = pool[rng.integers(len(pool))]
            h, w = photo.shape[:2]
            ch = int(rng.integers(max(8, h // 8), h + 1))
            cw = min(w, max(8, int(ch * width / height * rng.uniform(0.6, 1.4))))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = cv2.resize(photo[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
            items.append(((crop.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
        samples.append(np.stack(items).astype(np.float32))
    return samples


def _cases(names: list[str], cache: Path, samples: int) -> list[dict[str, Any]]:
    latency = _module(HERE / "bench_latency.py", "bench_latency")
    cases = []
    for name in names:
        spec = latency.MODELS_BY_NAME[name]
        path, origin = latency.model_path(spec, cache)
        shapes = spec.shapes()
        (input_name, shape), *_ = shapes.items()
        if name == "text_encoder":
            rng = np.random.default_rng(0)
            data = [rng.integers(0, 4096, shape).astype(np.int64) for _ in range(samples + 4)]
        else:
            data = _image_samples(shape, samples + 4, seed=0)
        cases.append(
            {"name": name, "path": path, "origin": origin, "input_shape": spec.input_shape, "input": input_name,
             "calib": data[:samples], "held_out": data[samples:]}
        )  # fmt: skip
    return cases


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_quantize(case: dict[str, Any], work: Path, algorithm: str) -> Path | None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if algorithm not in ORT_METHODS:
        return None

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(case["calib"])

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {case["input"]: item}

    fixed = work / f"{case['name']}_fixed.onnx"
    _fix_input_shape(case, fixed)
    pre = work / f"{case['name']}_pre.onnx"
    try:
        quant_pre_process(str(fixed), str(pre), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - ONNX Runtime's pre-processing is optional
        pre = fixed
    out = work / f"{case['name']}_ort_int8.onnx"
    quantize_static(
        str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, ORT_METHODS[algorithm]),
    )  # fmt: skip
    return out


def _fix_input_shape(case: dict[str, Any], target: Path) -> None:
    import onnx

    model = onnx.load(str(case["path"]))
    if model.opset_import[0].version < 13:  # per-channel QDQ needs opset 13; ORT's quantizer bumps to 11 only
        model = onnx.version_converter.convert_version(model, 13)
    dims = case["calib"][0].shape
    for value in model.graph.input:
        if value.name == case["input"]:
            for dim, size in zip(value.type.tensor_type.shape.dim, dims, strict=True):
                dim.Clear()
                dim.dim_value = size
    onnx.save(model, str(target))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-30))


def _worst_cosine(wanted: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    """Per output, the cosine over all held-out samples together (as openatc's accuracy check); the lowest.

    Per-sample cosines mislead on outputs that are all but zero for some inputs (a detection map
    of a crop without text).
    """
    worst = 1.0
    for index in range(len(wanted[0])):
        a = np.concatenate([np.asarray(w[index], np.float64).ravel() for w in wanted])
        b = np.concatenate([np.asarray(g[index], np.float64).ravel() for g in got])
        worst = min(worst, _cosine(a, b))
    return worst


def _bench_case(case: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    name, threads = case["name"], args.threads
    calib_dir = work / f"{name}_calib"
    calib_dir.mkdir()
    for i, sample in enumerate(case["calib"]):
        np.save(calib_dir / f"{i}.npy", sample)
    config: dict[str, Any] = {"data_dir": str(calib_dir), "algorithm": args.algorithm, "holdout_fraction": 0.2}
    if args.algorithm == "percentile":  # ONNX Runtime's default percentile, for a like-for-like comparison
        config["algorithm_options"] = {"percentile": 99.999}
    if args.op_types:
        config["op_types"] = args.op_types.split(",")
    if not args.no_target:
        config["accuracy_target"] = 0.99
    (work / f"{name}_calib.json").write_text(json.dumps(config))
    common = {"model": str(case["path"]), "framework": 5, "soc_version": "cpu", "input_shape": case["input_shape"]}
    builds: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for label, flags in (
        ("fp32", {}),
        ("fp16", {"precision_mode": "force_fp16"}),
        ("int8", {"calibration_config": str(work / f"{name}_calib.json")}),
    ):
        start = time.perf_counter()
        builds[label] = openatc.build(output=str(work / f"{name}_{label}"), log="error", **common, **flags)
        seconds[label] = time.perf_counter() - start
    start = time.perf_counter()
    ort_int8 = _ort_quantize(case, work, args.algorithm)
    seconds["ort_int8"] = time.perf_counter() - start
    reference = _session(case["path"], threads)
    engines: dict[str, Any] = {}
    for label, path in builds.items():
        session = openatc.Session(path, backend_options={"intra_op_num_threads": threads})
        engines[label] = lambda feeds, s=session: list(s.run(feeds).values())
    if ort_int8 is not None:
        ort_session = _session(ort_int8, threads)
        engines["ort_int8"] = lambda feeds, s=ort_session: s.run(None, feeds)
    result: dict[str, Any] = {"model": name, "origin": case["origin"], "input_shape": case["input_shape"]}
    wanted = [reference.run(None, {case["input"]: x}) for x in case["held_out"]]
    for label, run in engines.items():
        got = [run({case["input"]: x}) for x in case["held_out"]]
        result[label] = {"cosine_vs_fp32": _worst_cosine(wanted, got)}
    feeds = {case["input"]: case["held_out"][0]}
    times: dict[str, list[float]] = {k: [] for k in ["ort_fp32", *engines]}
    runners = {"ort_fp32": lambda f: reference.run(None, f), **engines}
    for _ in range(args.warmup):
        for run in runners.values():
            run(feeds)
    for _ in range(args.runs):
        for label, run in runners.items():
            start = time.perf_counter()
            run(feeds)
            times[label].append(time.perf_counter() - start)
    base_ms = 1e3 * float(np.median(times["ort_fp32"]))
    base_bytes = Path(case["path"]).stat().st_size
    result["ort_fp32_ms"] = base_ms
    result["ort_fp32_bytes"] = base_bytes
    for label in engines:
        ms = 1e3 * float(np.median(times[label]))
        size = builds.get(label, ort_int8).stat().st_size  # type: ignore[union-attr]
        result[label].update(
            ms=ms, latency_ratio=ms / base_ms, bytes=size, size_ratio=size / base_bytes, build_s=seconds[label]
        )
    if "int8" in builds:
        with openatc.Session(builds["int8"]) as sess:
            result["int8"]["quantization"] = sess.manifest["gears"][0].get("quantization", {})
    return result


def _table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'model':13} {'engine':9} {'lat ms':>8} {'lat/fp32':>9} {'size/fp32':>10} {'cosine':>10} {'build s':>8}"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['model']:13} error: {r['error']}")
            continue
        lines.append(f"{r['model']:13} {'ort_fp32':9} {r['ort_fp32_ms']:>8.2f} {1.0:>9.2f} {1.0:>10.2f} {1.0:>10.6f}")
        for label in ("fp32", "fp16", "int8", "ort_int8"):
            if label in r:
                e = r[label]
                lines.append(
                    f"{'':13} {label:9} {e['ms']:>8.2f} {e['latency_ratio']:>9.2f} {e['size_ratio']:>10.2f} "
                    f"{e['cosine_vs_fp32']:>10.6f} {e['build_s']:>8.1f}"
                )
        quant = r.get("int8", {}).get("quantization", {})
        if quant:
            lines.append(
                f"{'':13} int8: {quant.get('int8_layers')} INT8 layers, {quant.get('float_layers')} float; accuracy "
                f"before fallback {quant.get('accuracy_before')}, after {quant.get('accuracy')}; fallback "
                f"{quant.get('fallback_layers')}"
            )
    return "\n".join(lines)


def markdown(path: Path) -> str:
    """The results of one run (a JSON this script wrote) as a markdown table, for docs/precision.md."""
    data = json.loads(path.read_text())
    lines = [
        f"`--algorithm {data['algorithm']}`, {data['samples']} calibration samples, {data['threads']} thread(s), "
        f"median of {data['runs']} runs",
        "",
        "| model | engine | latency / FP32 | size / FP32 | cosine vs FP32 | INT8 notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error | | | | {r['error'][:80]} |")
            continue
        lines.append(f"| {r['model']} ({r['input_shape']}) | ORT FP32: {r['ort_fp32_ms']:.2f} ms | 1.00 | 1.00 | 1 | |")
        for label, title in (("fp32", "openatc FP32"), ("fp16", "openatc FP16"), ("int8", "openatc INT8"),
                             ("ort_int8", "ORT quantize_static")):  # fmt: skip
            if label not in r:
                continue
            e = r[label]
            note = ""
            quant = e.get("quantization", {})
            if quant:
                fallback = len(quant.get("fallback_layers") or [])
                note = (
                    f"{quant['int8_layers']} INT8 / {quant['float_layers']} float layers; check score "
                    f"{quant.get('accuracy_before')} -> {quant.get('accuracy')}, {fallback} layer(s) back to float"
                )
            lines.append(
                f"| | {title} | {e['latency_ratio']:.2f} | {e['size_ratio']:.2f} | {e['cosine_vs_fp32']:.4f} | {note} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="text_encoder,ppocr_det,ppocr_rec,ppocr_cls")
    parser.add_argument("--samples", type=int, default=24, help="calibration samples (4 more are held out)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--algorithm", default="minmax")
    parser.add_argument("--no-target", action="store_true", help="no accuracy_target (no fallback)")
    parser.add_argument("--op-types", default="", help="comma-separated op types to quantize (default: openatc's)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "int8.json")
    parser.add_argument("--markdown", type=Path, help="print a results JSON as a markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in _cases([m.strip() for m in args.models.split(",") if m.strip()], args.cache, args.samples):
            try:
                results.append(_bench_case(case, args, Path(tmp)))
            except Exception as exc:  # noqa: BLE001 - one model's failure is reported, not fatal
                results.append({"model": case["name"], "error": f"{type(exc).__name__}: {exc}"})
            print(_table(results[-1:]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "runs": args.runs, "samples": args.samples, "algorithm": args.algorithm}
    args.output.write_text(json.dumps({**meta, "results": results}, indent=1, default=str))
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
