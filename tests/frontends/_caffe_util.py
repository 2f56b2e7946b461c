"""Helpers for the Caffe frontend tests: build through openatc, run the reference (OpenCV's DNN)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

import openatc

MIN_COSINE = 0.9999


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    denom = np.linalg.norm(x) * np.linalg.norm(y)
    return 1.0 if denom == 0 and np.allclose(x, y) else float(x @ y / denom)


def build_caffe(prototxt: Path, caffemodel: Path, out: Path, **flags: object) -> Path:
    return openatc.build(
        model=str(prototxt), weight=str(caffemodel), framework=0, output=str(out), soc_version="cpu", **flags
    )


def run_om(om: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with openatc.Session(om) as sess:
        return sess.run(feeds)


def run_opencv(
    prototxt: Path, caffemodel: Path, feeds: dict[str, np.ndarray], names: Sequence[str]
) -> dict[str, np.ndarray]:
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    for name, value in feeds.items():
        net.setInput(value, name)
    outs = net.forward(list(names))
    return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}
