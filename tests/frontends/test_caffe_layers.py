"""Every supported Caffe layer type, converted and compared with a reference.

Layers OpenCV's DNN implements are checked against it (one net holding them all); the rest
(Bias, ArgMax, Reduction, Threshold, Tile) and the parameters OpenCV ignores (LRN's ``k``, Log's
base/scale/shift) against numpy written from Caffe's layer definitions.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from openatc.frontends.caffe import write_caffemodel

from ._caffe_util import MIN_COSINE, build_caffe, cosine, run_om, run_opencv

pytest.importorskip("cv2")

DATA = Path(__file__).resolve().parents[1] / "data" / "caffe"
ZOO_OPENCV = (DATA / "layers_opencv.prototxt").read_text()
#: Tops OpenCV can fetch by name (its forward() takes layer names: a layer's first top).
ZOO_TOPS = [t for t in re.findall(r'top: "([^"]+)"', ZOO_OPENCV) if t not in ("data", "s2", "s3", "sp1", "sp2")]


def _rand(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_every_opencv_layer_matches(tmp_path: Path) -> None:
    prototxt = DATA / "layers_opencv.prototxt"
    caffemodel = tmp_path / "zoo.caffemodel"
    write_caffemodel(prototxt, caffemodel, seed=1)
    om = build_caffe(prototxt, caffemodel, tmp_path / "zoo", out_nodes=";".join(ZOO_TOPS))
    x = _rand((2, 4, 13, 11))
    got = run_om(om, {"data": x})
    want = run_opencv(prototxt, caffemodel, {"data": x}, ZOO_TOPS)
    bad = {}
    for top in ZOO_TOPS:
        assert got[top].shape == want[top].shape, top
        cos = cosine(got[top], want[top])
        if cos < MIN_COSINE:
            bad[top] = cos
    assert not bad, bad


def _lrn_across(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    sq, half = x**2, (size - 1) // 2
    total = np.stack([sq[:, max(0, c - half) : c + half + 1].sum(1) for c in range(x.shape[1])], axis=1)
    return x / (k + alpha / size * total) ** beta


def test_layers_without_opencv_match_numpy(tmp_path: Path) -> None:
    prototxt = DATA / "layers_numpy.prototxt"
    caffemodel = tmp_path / "numpy_zoo.caffemodel"
    blobs = write_caffemodel(prototxt, caffemodel, seed=2)
    om = build_caffe(prototxt, caffemodel, tmp_path / "numpy_zoo")
    x = _rand((2, 3, 5, 4))
    got = run_om(om, {"data": x})
    flat = x.reshape(2, -1)
    top3 = np.argsort(-flat, axis=1, kind="stable")[:, :3]
    want = {
        "bias": x + blobs["bias"][0].reshape(1, 3, 1, 1),
        "argmax": np.argmax(x, axis=1)[:, None].astype(np.float32),
        "argmax_flat": np.stack([top3, np.take_along_axis(flat, top3, 1)], axis=1).astype(np.float32),
        "reduction": 0.5 * (x**2).sum(axis=(2, 3)),
        "asum": np.abs(x).sum(axis=(1, 2, 3)),
        "threshold": (x > 0.3).astype(np.float32),
        "tile": np.tile(x, (1, 1, 2, 1)),
        "log": np.log10(1 + 2 * np.abs(x)),
        "lrn": _lrn_across(x, 3, 0.5, 0.75, 2.0),
    }
    assert set(want) <= set(got)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
