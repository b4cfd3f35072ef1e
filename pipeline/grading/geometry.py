"""Geometry of answers: coordinate frames of boxes, image sizes under a pixel budget, IoU and COCO mAP.

Frames (`info["coord_frame"]` for the gold, `info["pred_frame"]` for the model's output):
`abs_original` pixels of the original image; `abs_resized` pixels of the image as the Qwen2-VL / Qwen2.5-VL
processor resized it (`smart_resize` under the `min_pixels`/`max_pixels` budget in info); `grid1000` the 0-1000
grid (Qwen2-VL, InternVL, Visual-RFT); `normalized` 0-1. `info["image_sizes"][0]` is the original (width, height).
Boxes are compared in one frame: both sides are mapped to normalised [0, 1] coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# The Qwen2-VL image processor's own defaults, used when a reward input names no budget.
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 14 * 14 * 4 * 1280


def smart_resize(
    width: int,
    height: int,
    factor: int = 28,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """The (width, height) Qwen2-VL / Qwen2.5-VL resize an image to: sides multiples of `factor`, area within
    [min_pixels, max_pixels], aspect ratio kept as closely as possible (the processors' own rule)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def budget_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) shrunk to at most `max_pixels`, aspect kept: the budget rule without the processors'
    multiple-of-28 sides (what an image is scaled to before it is sent to a server)."""
    return smart_resize(width, height, factor=1, min_pixels=1, max_pixels=max_pixels)


FRAMES = ("abs_original", "abs_resized", "grid1000", "normalized")
MAX_BOXES = 100  # COCO's maxDets; more predicted boxes than this are a flood, not an answer
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def frame_size(frame: str, info: Mapping) -> tuple[float, float]:
    if frame == "normalized":
        return 1.0, 1.0
    if frame == "grid1000":
        return 1000.0, 1000.0
    sizes = info.get("image_sizes") or []
    if not sizes:
        raise ValueError(f"frame '{frame}' needs info['image_sizes']")
    w, h = sizes[0]
    if frame == "abs_original":
        return float(w), float(h)
    if frame == "abs_resized":
        rw, rh = smart_resize(
            int(w),
            int(h),
            28,
            int(info.get("min_pixels") or DEFAULT_MIN_PIXELS),
            int(info.get("max_pixels") or DEFAULT_MAX_PIXELS),
        )
        return float(rw), float(rh)
    raise ValueError(f"unknown coordinate frame '{frame}'; use one of {FRAMES}")


def to_normalized(box, frame: str, info: Mapping) -> list[float]:
    w, h = frame_size(frame, info)
    return [box[0] / w, box[1] / h, box[2] / w, box[3] / h]


def iou(a, b) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (areas without the +1 pixel convention, as pycocotools)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def frames_of(info: Mapping) -> tuple[str, str]:
    gold = info.get("coord_frame") or "abs_original"
    return gold, info.get("pred_frame") or gold


def coco_map(gold: list[dict], pred: list[dict]) -> float:
    """COCO mAP@[.5:.95] of one image, computed as pycocotools' COCOeval does (area range all, maxDets 100):
    per label, detections by descending confidence (stable), greedy match to the best unmatched gold at each IoU
    threshold, 101-point interpolated precision; the mean over labels that have gold boxes."""
    labels = sorted({b.get("label", "") for b in gold})
    aps = []
    for label in labels:
        g = [b["bbox_2d"] for b in gold if b.get("label", "") == label]
        d = [b for b in pred if b.get("label", "") == label]
        order = np.argsort([-float(b.get("confidence", 1.0)) for b in d], kind="mergesort")[:MAX_BOXES]
        d = [d[i]["bbox_2d"] for i in order]
        ious = np.array([[iou(db, gb) for gb in g] for db in d]).reshape(len(d), len(g))
        precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
        for t, thr in enumerate(IOU_THRESHOLDS):
            matched_gold = np.zeros(len(g), dtype=bool)
            tp = np.zeros(len(d), dtype=bool)
            for di in range(len(d)):
                best, m = min(thr, 1 - 1e-10), -1
                for gi in range(len(g)):
                    if matched_gold[gi] or ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m >= 0:
                    matched_gold[m] = True
                    tp[di] = True
            tp_sum = np.cumsum(tp).astype(float)
            fp_sum = np.cumsum(~tp).astype(float)
            rc = tp_sum / len(g)
            pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
            idx = np.searchsorted(rc, RECALL_POINTS, side="left")
            valid = idx < len(pr)  # a prefix: recall points past the last reachable one keep precision 0
            precision[t, valid] = pr[idx[valid]]
        aps.append(precision.mean())
    return float(np.mean(aps)) if aps else 0.0


def greedy_matches(gold: list[dict], pred: list[dict]) -> list[tuple[int, float]]:
    """Predictions by descending confidence (stable), each matched to the unmatched gold box of highest IoU
    when that IoU > 0.5; returns (prediction index, IoU or -1 when unmatched) in that order."""
    order = sorted(range(len(pred)), key=lambda i: -float(pred[i].get("confidence", 1.0)))
    used = [False] * len(gold)
    out = []
    for pi in order:
        best, m = 0.5, -1
        for gi, g in enumerate(gold):
            v = iou(pred[pi]["bbox_2d"], g["bbox_2d"])
            if not used[gi] and v > best:
                best, m = v, gi
        if m >= 0:
            used[m] = True
            out.append((pi, best))
        else:
            out.append((pi, -1.0))
    return out
