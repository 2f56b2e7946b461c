"""Real Caffe networks (tests/data/caffe, the public deploy definitions) against OpenCV's DNN.

Each net gets random weights from our own caffemodel writer (AlexNet in the V1 ``layers`` format,
the rest in the current one); the .om's outputs must match OpenCV reading the same two files with
cosine similarity >= 0.9999. The logits are compared as well as the softmax, which random weights
saturate. The SSD is cut before DetectionOutput (not converted) with --out_nodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openatc.frontends.caffe import write_caffemodel

from ._caffe_util import MIN_COSINE, build_caffe, cosine, run_om, run_opencv

pytest.importorskip("cv2")

DATA = Path(__file__).resolve().parents[1] / "data" / "caffe"

# (prototxt stem, --out_nodes (top names) compared, V1 caffemodel)
NETS = {
    "alexnet_v1": ("fc8;prob", True),
    "googlenet": ("loss3/classifier;prob", False),
    "vgg16": ("fc8;prob", False),
    "resnet50": ("fc1000;prob", False),
    "squeezenet_v1.1": ("pool10;prob", False),
    "mobilenet_v1": ("fc7;prob", False),
    "mobilenet_v2": ("fc7;prob", False),
    "mobilenet_ssd": ("mbox_loc;mbox_conf_flatten;mbox_priorbox", False),
}


@pytest.mark.parametrize("stem", list(NETS))
def test_network_matches_opencv(stem: str, tmp_path: Path) -> None:
    out_nodes, v1 = NETS[stem]
    prototxt = DATA / f"{stem}.prototxt"
    caffemodel = tmp_path / f"{stem}.caffemodel"
    write_caffemodel(prototxt, caffemodel, seed=7, v1=v1, out_nodes=tuple(out_nodes.split(";")))
    om = build_caffe(prototxt, caffemodel, tmp_path / stem, out_nodes=out_nodes)
    import openatc

    with openatc.Session(om) as sess:
        [spec] = sess.inputs
        assert spec.name == "data"
        assert [o.name for o in sess.outputs] == out_nodes.split(";")
    x = np.random.default_rng(3).standard_normal(spec.shape).astype(np.float32)
    got = run_om(om, {"data": x})
    want = run_opencv(prototxt, caffemodel, {"data": x}, out_nodes.split(";"))
    for name in out_nodes.split(";"):
        assert got[name].shape == want[name].shape, name
        cos = cosine(got[name], want[name])
        print(f"{stem} {name} cosine={cos:.7f}")
        assert cos >= MIN_COSINE, (name, cos)


def _rows_in_order(detections: np.ndarray) -> np.ndarray:
    """Detections ``[1, 1, N, 7]`` as rows sorted by (label, score, box): Caffe writes them by label, OpenCV
    by score, and equal scores (random weights saturate the softmax) may come in either order."""
    rows = detections.reshape(-1, 7).astype(np.float64)
    keys = np.round(rows, 4)
    return rows[np.lexsort(keys[:, ::-1].T)]


def test_ssd_detection_output_matches_opencv(tmp_path: Path) -> None:
    prototxt = DATA / "mobilenet_ssd.prototxt"
    caffemodel = tmp_path / "ssd.caffemodel"
    write_caffemodel(prototxt, caffemodel, seed=7)
    om = build_caffe(prototxt, caffemodel, tmp_path / "ssd")  # the whole net, DetectionOutput included
    x = np.random.default_rng(3).standard_normal((1, 3, 300, 300)).astype(np.float32)
    got = run_om(om, {"data": x})["detection_out"]
    want = run_opencv(prototxt, caffemodel, {"data": x}, ["detection_out"])["detection_out"]
    assert got.shape == want.shape and got.shape[2] > 10  # keep_top_k: 100
    got_rows, want_rows = _rows_in_order(got), _rows_in_order(want)
    np.testing.assert_array_equal(got_rows[:, :2], want_rows[:, :2])  # image ids and labels
    cos = cosine(got_rows, want_rows)
    print(f"mobilenet_ssd detection_out cosine={cos:.7f}")
    assert cos >= MIN_COSINE
    np.testing.assert_allclose(got_rows, want_rows, rtol=1e-3, atol=1e-3)
