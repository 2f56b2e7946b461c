#!/usr/bin/env python3
"""Per-call overhead of ``openatc.Session.run`` over a bare ``onnxruntime.InferenceSession.run`` of
the same loaded graph (the Session's own ONNX Runtime session), on a model small enough that the
Python around the call shows: the tiny MLP of ``openatc.testing`` (default) or any benchmark model
of ``bench_latency.py`` (``--model mtcnn_pnet``).

Both calls run in one process on the same feeds, in ``--rounds`` interleaved rounds of ``--calls``
calls each; the result is the median per-call time of each and their difference (microseconds).

Usage::

    python benchmarks/bench_session_overhead.py [--model tiny|mtcnn_pnet|...] [--calls 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_latency as bl  # noqa: E402

import openatc  # noqa: E402
from openatc.testing import make_tiny_onnx  # noqa: E402


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "tiny":
            src, shape = make_tiny_onnx(Path(tmp)), "x:1,16"
        else:
            spec = bl.MODELS_BY_NAME[args.model]
            src, shape = bl.model_path(spec, bl.CACHE_DIR)[0], spec.input_shape
        om = openatc.build(
            model=str(src), framework=5, output=f"{tmp}/m", soc_version="cpu", input_shape=shape, log="null"
        )
        with openatc.Session(om, backend_options={"intra_op_num_threads": 1}) as sess:
            bare = sess._executors[0].session
            names = [o.name for o in sess.outputs]
            feeds = {s.name: np.zeros([int(d) for d in s.shape], s.dtype) for s in sess.inputs}
            for _ in range(100):
                sess.run(feeds)
                bare.run(names, feeds)
            rounds = [
                (
                    per_call_us(lambda: sess.run(feeds), args.calls),
                    per_call_us(lambda: bare.run(names, feeds), args.calls),
                )
                for _ in range(args.rounds)
            ]
    session_us = float(np.median([r[0] for r in rounds]))
    bare_us = float(np.median([r[1] for r in rounds]))
    diff = float(np.median([r[0] - r[1] for r in rounds]))
    print(
        f"{args.model}: Session.run {session_us:.2f} us, bare InferenceSession.run {bare_us:.2f} us, "
        f"overhead {diff:.2f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
