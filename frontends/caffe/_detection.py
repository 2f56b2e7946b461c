"""SSD's DetectionOutput in standard ONNX ops: decode, per-class top_k + NMS, keep_top_k, Caffe's order.

Output ``[1, 1, N, 7]`` rows ``(image, label, score, xmin, ymin, xmax, ymax)`` with N data
dependent, ordered as Caffe writes them: by label ascending, then by score descending. One image
per batch (N = 1), shared locations (``share_location: true``), as in the SSD deploy nets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._convert import Walk

__all__ = ["detection_output"]


def _f(walk: Walk, name: str, value: float | list[float]) -> str:
    return walk.const(name, np.asarray(value, np.float32))


def _decode(walk: Walk, loc: str, priors: str, n_priors: int, code_type: int) -> str:
    """Boxes [P, 4] from the location offsets [P, 4] and the priors + variances [2, P*4]."""
    pv = walk.op("Reshape", [priors, walk.ints("pv_shape", [2, n_priors, 4])])[0]
    prior, var = walk.op("Split", [pv, walk.ints("pv_split", [1, 1])], n_out=2, axis=0)
    prior = walk.op("Squeeze", [prior, walk.ints("ax0", [0])])[0]
    var = walk.op("Squeeze", [var, walk.ints("ax0b", [0])])[0]
    scaled = walk.op("Mul", [loc, var])[0]
    if code_type == 1:  # CORNER
        return walk.op("Add", [prior, scaled])[0]
    lo, hi = walk.op("Split", [prior, walk.ints("half", [2, 2])], n_out=2, axis=1)
    size = walk.op("Sub", [hi, lo])[0]
    center = walk.op("Mul", [walk.op("Add", [lo, hi])[0], _f(walk, "half_f", 0.5)])[0]
    d_center, d_size = walk.op("Split", [scaled, walk.ints("half2", [2, 2])], n_out=2, axis=1)
    c = walk.op("Add", [walk.op("Mul", [d_center, size])[0], center])[0]
    s = walk.op("Mul", [walk.op("Exp", [d_size])[0], size])[0]
    half = walk.op("Mul", [s, _f(walk, "half_s", 0.5)])[0]
    return walk.op("Concat", [walk.op("Sub", [c, half])[0], walk.op("Add", [c, half])[0]], axis=1)[0]


def detection_output(walk: Walk, layer: Any) -> None:
    p = layer.detection_output_param
    loc_b, conf_b, prior_b = walk.bottom(0), walk.bottom(1), walk.bottom(2)
    if not p.share_location or loc_b.shape[0] != 1:
        raise ValueError("only share_location: true and batch 1 are supported")
    n_priors, classes = prior_b.shape[2] // 4, p.num_classes
    loc = walk.op("Reshape", [loc_b.name, walk.ints("loc_shape", [n_priors, 4])])[0]
    boxes = _decode(walk, loc, prior_b.name, n_priors, p.code_type)
    conf = walk.op("Reshape", [conf_b.name, walk.ints("conf_shape", [n_priors, classes])])[0]
    scores = walk.op("Transpose", [conf], perm=[1, 0])[0]  # [C, P]
    keep = [c for c in range(classes) if c != p.background_label_id]
    scores = walk.op("Gather", [scores, walk.ints("fg", keep)], axis=0)[0]  # [C', P]
    # Caffe keeps the top_k best candidates of a class before NMS; NMS then runs per class.
    top_k = min(p.nms_param.top_k if p.nms_param.HasField("top_k") else n_priors, n_priors)
    cand_scores, cand_idx = walk.op("TopK", [scores, walk.ints("topk", [top_k])], n_out=2, axis=1)  # [C', k]
    cand_boxes = walk.op("Gather", [boxes, cand_idx], axis=0)[0]  # [C', k, 4]
    nms_scores = walk.op("Unsqueeze", [cand_scores, walk.ints("ax1", [1])])[0]  # [C', 1, k]
    selected = walk.op(
        "NonMaxSuppression",
        [
            cand_boxes,
            nms_scores,
            walk.ints("max_out", [top_k]),
            _f(walk, "iou", [p.nms_param.nms_threshold]),
            _f(walk, "score_thr", [p.confidence_threshold]),  # strict ">" as Caffe
        ],
    )[0]  # [K, 3]: (class', 0, candidate)
    cls, _, cand = walk.op("Split", [selected, walk.ints("sel_split", [1, 1, 1])], n_out=3, axis=1)
    pair = walk.op("Concat", [cls, cand], axis=1)[0]
    det_scores = walk.op("GatherND", [cand_scores, pair])[0]  # [K]
    det_boxes = walk.op("GatherND", [cand_boxes, pair])[0]  # [K, 4]
    labels = walk.op("Gather", [walk.ints("labels", keep), walk.op("Squeeze", [cls, walk.ints("ax1b", [1])])[0]])[0]
    # keep_top_k best overall, then Caffe's output order: label ascending, score descending
    count = walk.op("Shape", [det_scores])[0]
    if p.keep_top_k > -1:
        count = walk.op("Min", [count, walk.ints("keep_top_k", [p.keep_top_k])])[0]
    _, best = walk.op("TopK", [det_scores, count], n_out=2, axis=0)
    det_scores = walk.op("Gather", [det_scores, best], axis=0)[0]
    det_boxes = walk.op("Gather", [det_boxes, best], axis=0)[0]
    labels_f = walk.op("Cast", [walk.op("Gather", [labels, best], axis=0)[0]], to=1)[0]
    key = walk.op("Sub", [walk.op("Mul", [labels_f, _f(walk, "two", 2.0)])[0], det_scores])[0]
    _, order = walk.op("TopK", [key, count], n_out=2, axis=0, largest=0, sorted=1)
    cols = [
        walk.op("Mul", [walk.op("Gather", [labels_f, order], axis=0)[0], _f(walk, "zero", 0.0)])[0],
        walk.op("Gather", [labels_f, order], axis=0)[0],
        walk.op("Gather", [det_scores, order], axis=0)[0],
    ]
    cols = [walk.op("Unsqueeze", [c, walk.ints("ax1c", [1])])[0] for c in cols]
    rows = walk.op("Concat", [*cols, walk.op("Gather", [det_boxes, order], axis=0)[0]], axis=1)[0]
    walk.final("Reshape", [rows, walk.ints("out_shape", [1, 1, -1, 7])], [(1, 1, -1, 7)])
