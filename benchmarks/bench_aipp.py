#!/usr/bin/env python3
"""Raw image bytes -> result: AIPP compiled into the .om vs OpenCV + numpy pre-processing + ONNX Runtime.

For each scenario, in one process: a small convolutional classifier (224 x 224, random weights) is
built twice from the same ONNX file: as an .om with ``--insert_op_conf`` (the application feeds
raw NV12 bytes) and, for the host path, loaded as is in ONNX Runtime (CPUExecutionProvider,
ORT_ENABLE_ALL) behind OpenCV's NV12 -> RGB conversion and numpy's ImageNet normalization. The
frame is a real photo (scikit-image's ``chelsea``) resized with OpenCV. Both paths are timed from
the raw bytes to the logits, interleaved run by run; the table shows median and p99 (ms), the
ratio AIPP / host, and the cosine between the two results.

Scenarios: ``nv12_224`` (a 224 x 224 NV12 frame), ``nv12_1080p_crop`` (a 1920 x 1080 frame, the
centre 224 x 224 cropped: AIPP's crop; the host crops the NV12 planes before converting),
``rgb_256_crop`` (a 256 x 256 RGB888 image, centre 224 x 224 crop, ImageNet normalization, no
CSC: ModelZoo-PyTorch's ResNet-50 configuration; the host slices and normalizes with numpy).

Usage::

    python benchmarks/bench_aipp.py [--runs 200] [--warmup 20] [--threads 1] [--quick]
                                    [--output benchmarks/results/aipp.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skimage import data as skimage_data

import openatc

SIZE = 224
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
SCALE = np.array([1 / 58.395, 1 / 57.12, 1 / 57.375], np.float32)


def classifier(path: Path) -> Path:
    rng = np.random.default_rng(0)
    shapes = {"w1": (32, 3, 3, 3), "w2": (64, 32, 3, 3), "w3": (128, 64, 3, 3), "fc": (1000, 128)}
    weights = {k: (rng.standard_normal(s) * (2 / np.prod(s[1:])) ** 0.5).astype(np.float32) for k, s in shapes.items()}
    nodes = []
    prev = "x"
    for i, w in enumerate(("w1", "w2", "w3")):
        nodes.append(helper.make_node("Conv", [prev, w], [f"c{i}"], strides=[2, 2], pads=[1, 1, 1, 1], name=f"conv{i}"))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def nv12(height: int, width: int) -> np.ndarray:
    bgr = cv2.resize(cv2.cvtColor(skimage_data.chelsea(), cv2.COLOR_RGB2BGR), (width, height))
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    quarter = height * width // 4
    chroma = i420[height:].reshape(-1)
    uv = np.stack([chroma[:quarter], chroma[quarter:]], axis=-1).reshape(height // 2, width)
    return np.ascontiguousarray(np.concatenate([i420[:height], uv]))


def rgb_config() -> str:
    return (
        "aipp_op { aipp_mode: static input_format: RGB888_U8 src_image_size_w: 256 src_image_size_h: 256"
        " crop: true load_start_pos_h: 16 load_start_pos_w: 16 crop_size_w: 224 crop_size_h: 224"
        " min_chn_0: 123.675 min_chn_1: 116.28 min_chn_2: 103.53 var_reci_chn_0: 0.0171247538316637"
        " var_reci_chn_1: 0.0175070028011204 var_reci_chn_2: 0.0174291938997821 }"
    )


def rgb_host_path(session: ort.InferenceSession) -> Callable[[np.ndarray], np.ndarray]:
    def run(image: np.ndarray) -> np.ndarray:
        x = ((image[16:240, 16:240].astype(np.float32) - MEAN) * SCALE).transpose(2, 0, 1)[None]
        return session.run(None, {"x": np.ascontiguousarray(x)})[0]

    return run


def config(src_h: int, src_w: int) -> str:
    crop = ""
    if (src_h, src_w) != (SIZE, SIZE):
        top, left = (src_h - SIZE) // 2 // 2 * 2, (src_w - SIZE) // 2 // 2 * 2
        crop = f" crop: true load_start_pos_w: {left} load_start_pos_h: {top} crop_size_w: {SIZE} crop_size_h: {SIZE}"
    return (
        "aipp_op { aipp_mode: static input_format: YUV420SP_U8 csc_switch: true"
        " matrix_r0c0: 298 matrix_r0c1: 0 matrix_r0c2: 409 matrix_r1c0: 298 matrix_r1c1: -100 matrix_r1c2: -208"
        " matrix_r2c0: 298 matrix_r2c1: 516 matrix_r2c2: 0 input_bias_0: 16 input_bias_1: 128 input_bias_2: 128"
        " min_chn_0: 123.675 min_chn_1: 116.28 min_chn_2: 103.53 var_reci_chn_0: 0.0171247538316637"
        f" var_reci_chn_1: 0.0175070028011204 var_reci_chn_2: 0.0174291938997821"
        f" src_image_size_w: {src_w} src_image_size_h: {src_h}{crop} }}"
    )


def host_path(session: ort.InferenceSession, src_h: int, src_w: int) -> Callable[[np.ndarray], np.ndarray]:
    top, left = (src_h - SIZE) // 2 // 2 * 2, (src_w - SIZE) // 2 // 2 * 2

    def run(frame: np.ndarray) -> np.ndarray:
        if (src_h, src_w) != (SIZE, SIZE):  # crop the NV12 planes first (cheaper than converting the whole frame)
            y = frame[top : top + SIZE, left : left + SIZE]
            uv = frame[src_h + top // 2 : src_h + (top + SIZE) // 2, left : left + SIZE]
            frame = np.concatenate([y, uv])
        rgb = cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_NV12)
        x = ((rgb.astype(np.float32) - MEAN) * SCALE).transpose(2, 0, 1)[None]
        return session.run(None, {"x": np.ascontiguousarray(x)})[0]

    return run


def interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int) -> list[np.ndarray]:
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [np.empty(runs) for _ in fns]
    for r in range(runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i][r] = (time.perf_counter() - start) * 1e3
    return times


def bench(name: str, src_h: int, src_w: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    model = classifier(tmp / "classifier.onnx")
    conf = tmp / f"{name}.cfg"
    rgb = name.startswith("rgb")
    conf.write_text(rgb_config() if rgb else config(src_h, src_w))
    om = openatc.build(
        model=str(model), framework=5, output=str(tmp / name), soc_version="cpu", insert_op_conf=str(conf)
    )
    frame = nv12(src_h, src_w)
    if rgb:  # packed RGB888 bytes of the photo
        frame = cv2.resize(skimage_data.chelsea(), (src_w, src_h), interpolation=cv2.INTER_AREA)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = args.threads
    original = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    host = rgb_host_path(original) if rgb else host_path(original, src_h, src_w)
    backend_options = {"intra_op_num_threads": args.threads} if args.threads else {}
    with openatc.Session(om, backend_options=backend_options) as sess:
        feeds = {"x": frame[None] if rgb else frame[None, :, :, None]}

        def aipp() -> np.ndarray:
            return sess.run(feeds)["logits"]

        a, h = aipp(), host(frame)
        cosine = float((a.ravel() @ h.ravel()) / (np.linalg.norm(a) * np.linalg.norm(h)))
        t_aipp, t_host = interleaved([aipp, lambda: host(frame)], args.runs, args.warmup)
    med_a, med_h = float(np.median(t_aipp)), float(np.median(t_host))
    return {
        "scenario": name,
        "frame": f"{src_w}x{src_h} {'RGB' if rgb else 'NV12'}",
        "aipp_ms": {"median": med_a, "p99": float(np.percentile(t_aipp, 99))},
        "host_ms": {"median": med_h, "p99": float(np.percentile(t_host, 99))},
        "ratio_aipp_over_host": med_a / med_h,
        "cosine": cosine,
        "top1_equal": bool(a.argmax() == h.argmax()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="20 runs, 3 warm-up")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines (0: default)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "aipp.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 20, 3
    with tempfile.TemporaryDirectory() as tmp:
        results = [
            bench("nv12_224", SIZE, SIZE, args, Path(tmp)),
            bench("nv12_1080p_crop", 1080, 1920, args, Path(tmp)),
            bench("rgb_256_crop", 256, 256, args, Path(tmp)),
        ]
    print(
        f"{'scenario':<18} {'frame':<16} {'AIPP ms (med/p99)':>18} {'host ms (med/p99)':>18}"
        f" {'AIPP/host':>9} {'cosine':>9}"
    )
    for r in results:
        a, h = r["aipp_ms"], r["host_ms"]
        print(
            f"{r['scenario']:<18} {r['frame']:<16} {a['median']:>8.3f}/{a['p99']:<9.3f}"
            f" {h['median']:>8.3f}/{h['p99']:<9.3f} {r['ratio_aipp_over_host']:>9.2f} {r['cosine']:>9.6f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "loadavg": os.getloadavg()[0],
    }
    args.output.write_text(json.dumps({"meta": meta, "runs": args.runs, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
