"""SSD's PriorBox: the anchor boxes of one feature map, computed at conversion time (they are constant)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["prior_boxes"]


def _aspect_ratios(p: Any) -> list[float]:
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if p.flip:
            ratios.append(1.0 / ar)
    return ratios


def prior_boxes(p: Any, feature: tuple[int, ...], image: tuple[int, ...]) -> np.ndarray:
    """``[1, 2, H*W*priors*4]``: normalized corner boxes, then their variances (as SSD's layer)."""
    layer_h, layer_w = feature
    img_h = p.img_h or p.img_size or image[0]
    img_w = p.img_w or p.img_size or image[1]
    step_h = p.step_h or p.step or img_h / layer_h
    step_w = p.step_w or p.step or img_w / layer_w
    if len(p.max_size) and len(p.max_size) != len(p.min_size):
        raise ValueError("max_size must be given once per min_size")
    sizes: list[tuple[float, float]] = []  # (box width, box height) per prior at one location
    for i, min_size in enumerate(p.min_size):
        sizes.append((min_size, min_size))
        if len(p.max_size):
            side = math.sqrt(min_size * p.max_size[i])
            sizes.append((side, side))
        for ar in _aspect_ratios(p):
            if abs(ar - 1.0) < 1e-6:
                continue
            sizes.append((min_size * math.sqrt(ar), min_size / math.sqrt(ar)))
    wh = np.asarray(sizes, dtype=np.float64)  # [P, 2]
    cy, cx = np.meshgrid(
        (np.arange(layer_h) + p.offset) * step_h, (np.arange(layer_w) + p.offset) * step_w, indexing="ij"
    )
    centers = np.stack([cx.reshape(-1), cy.reshape(-1)], axis=1)[:, None, :]  # [HW, 1, 2]
    scale = np.array([img_w, img_h], dtype=np.float64)
    low = (centers - wh[None] / 2) / scale
    high = (centers + wh[None] / 2) / scale
    boxes = np.concatenate([low, high], axis=2).reshape(-1).astype(np.float32)
    if p.clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    variance = list(p.variance) or [0.1]
    if len(variance) not in (1, 4):
        raise ValueError("variance must have 1 or 4 values")
    var = np.tile(np.asarray(variance * (4 if len(variance) == 1 else 1), np.float32), boxes.size // 4)
    return np.stack([boxes, var])[None]
