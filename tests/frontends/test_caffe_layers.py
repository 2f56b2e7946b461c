"""Every supported Caffe layer type, converted and compared with a reference.

Layers OpenCV's DNN implements are checked against it (one net holding them all); the rest
(Bias, ArgMax, Reduction, Threshold, Tile, Clip, ReLU6, Swish, Upsample) and the parameters OpenCV
ignores (LRN's ``k``, Log's base/scale/shift) against numpy written from Caffe's layer definitions.
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
        "clip": np.clip(x, -0.5, 0.7),
        "relu6": np.clip(x, 0, 6),
        "swish": x / (1 + np.exp(-1.5 * x)),
        "upsample": x.repeat(2, axis=2).repeat(2, axis=3),
    }
    assert set(want) <= set(got)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _caffe_detection_output(loc, conf, prior, *, classes, top_k, nms, threshold, keep_top_k):  # type: ignore[no-untyped-def]
    """SSD's detection_output_layer.cpp for one image, share_location, CENTER_SIZE, background 0."""
    p = prior[0, 0].reshape(-1, 4).astype(np.float64)
    var = prior[0, 1].reshape(-1, 4)
    d = loc.reshape(-1, 4) * var
    size, center = p[:, 2:] - p[:, :2], (p[:, 2:] + p[:, :2]) / 2
    c, s = d[:, :2] * size + center, np.exp(d[:, 2:]) * size
    boxes = np.concatenate([c - s / 2, c + s / 2], axis=1)
    scores = conf.reshape(-1, classes)
    picked: dict[int, list[int]] = {}
    for label in range(1, classes):
        order = [i for i in np.argsort(-scores[:, label], kind="stable") if scores[i, label] > threshold][:top_k]
        keep: list[int] = []
        for i in order:
            if all(_iou(boxes[i], boxes[k]) <= nms for k in keep):
                keep.append(i)
        picked[label] = keep
    flat = sorted(((scores[i, lab], lab, i) for lab, ids in picked.items() for i in ids), key=lambda t: -t[0])
    flat = flat[:keep_top_k]
    rows = [[0, lab, sc, *boxes[i]] for lab in sorted(picked) for sc, lab2, i in flat if lab2 == lab]
    return np.asarray(rows, np.float32)[None, None]


def test_detection_output_matches_caffe_order(tmp_path: Path) -> None:
    prototxt = DATA / "detection_output.prototxt"
    caffemodel = tmp_path / "none.caffemodel"
    write_caffemodel(prototxt, caffemodel)
    om = build_caffe(prototxt, caffemodel, tmp_path / "det")
    rng = np.random.default_rng(4)
    centers = rng.uniform(0.1, 0.9, (120, 2))
    sizes = rng.uniform(0.05, 0.4, (120, 2))
    prior = np.stack(
        [np.concatenate([centers - sizes / 2, centers + sizes / 2], 1).reshape(-1), np.tile([0.1, 0.1, 0.2, 0.2], 120)]
    )[None].astype(np.float32)
    logits = rng.standard_normal((120, 4)) * 2
    conf = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).reshape(1, -1).astype(np.float32)
    loc = (rng.standard_normal((1, 480)) * 0.5).astype(np.float32)
    got = run_om(om, {"loc": loc, "conf": conf, "prior": prior})["detection_out"]
    want = _caffe_detection_output(loc, conf, prior, classes=4, top_k=30, nms=0.45, threshold=0.3, keep_top_k=25)
    assert got.shape == want.shape == (1, 1, 25, 7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_gears_match_opencv(tmp_path: Path) -> None:
    """--input_shape with -1 as the batch and --dynamic_batch_size: every layer runs at each gear's batch."""
    prototxt = DATA / "layers_opencv.prototxt"
    caffemodel = tmp_path / "zoo.caffemodel"
    write_caffemodel(prototxt, caffemodel, seed=1)
    om = build_caffe(
        prototxt,
        caffemodel,
        tmp_path / "zoo_gears",
        out_nodes=";".join(ZOO_TOPS),
        input_shape="data:-1,4,13,11",
        dynamic_batch_size="1,3",
    )
    for batch in (1, 3):
        x = _rand((batch, 4, 13, 11), seed=batch)
        got = run_om(om, {"data": x})
        want = run_opencv(prototxt, caffemodel, {"data": x}, ZOO_TOPS)
        bad = {t: cosine(got[t], want[t]) for t in ZOO_TOPS if cosine(got[t], want[t]) < MIN_COSINE}
        assert not bad, (batch, bad)
        assert all(got[t].shape == want[t].shape for t in ZOO_TOPS)
