"""Geometry of answers: coordinate frames of boxes, image sizes under a pixel budget, IoU and COCO mAP.

Frames (`info["coord_frame"]` for the gold, `info["pred_frame"]` for the model's output):
`abs_original` pixels of the original image; `abs_resized` pixels of the image as the Qwen2-VL / Qwen2.5-VL
processor resized it (`smart_resize` under the `min_pixels`/`max_pixels` budget in info); `grid1000` the 0-1000
grid (Qwen2-VL, InternVL, Visual-RFT); `normalized` 0-1. `info["image_sizes"][0]` is the original (width, height).
Boxes are compared in the gold's frame: a prediction in another frame is mapped into it (pixels of the original
image for `abs_original` gold), so IoU is computed in pixels whenever the frames agree.
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


def to_frame(box, src: str, dst: str, info: Mapping) -> list[float]:
    """`box` read in frame `src`, written in frame `dst`. The same frame returns the box unchanged, so boxes that
    share a frame are compared in their own units (pixels): going through 0-1 would let float error move an IoU of
    exactly 0.5 below a COCO threshold."""
    if src == dst:
        return list(box)
    sw, sh = frame_size(src, info)
    dw, dh = frame_size(dst, info)
    return [box[0] * dw / sw, box[1] * dh / sh, box[2] * dw / sw, box[3] * dh / sh]


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of `a` (rows) with every box of `b` (columns), the same float operations in the same order
    as `iou`, so each entry equals `iou(a[i], b[j])` exactly."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = iw * ih
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = union - inter
    ok = (iw > 0) & (ih > 0) & (union > 0)
    return np.divide(inter, union, out=np.zeros_like(inter), where=ok)


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
    threshold, 101-point interpolated precision; the mean over labels that have gold boxes.

    All labels are done at once (one IoU matrix, one precision array padded to the longest label), with the same
    float operations per label as the one-label-at-a-time loop, so the value is identical to it."""
    labels = sorted({b.get("label", "") for b in gold})
    if not labels:
        return 0.0
    index = {label: k for k, label in enumerate(labels)}
    gold_label = [index[b.get("label", "")] for b in gold]
    n_gold = np.bincount(gold_label, minlength=len(labels))
    order = sorted(range(len(pred)), key=lambda i: -float(pred[i].get("confidence", 1.0)))  # stable
    per_label: list[list[int]] = [[] for _ in labels]
    for i in order:
        k = index.get(pred[i].get("label", ""))
        if k is not None and len(per_label[k]) < MAX_BOXES:
            per_label[k].append(i)
    dets = [i for ids in per_label for i in ids]
    if not dets:
        return 0.0
    det_label = [k for k, ids in enumerate(per_label) for _ in ids]
    ious = iou_matrix([pred[i]["bbox_2d"] for i in dets], [b["bbox_2d"] for b in gold])
    # a gold below IoU 0.5 or of another label is never matched: each detection keeps its candidates in gold
    # order, and the greedy loop runs over those (pycocotools' loop over the label's golds, minus its skips)
    ok = (ious >= IOU_THRESHOLDS[0]) & (np.asarray(det_label)[:, None] == np.asarray(gold_label)[None, :])
    n_det = np.array([len(ids) for ids in per_label])
    width = int(n_det.max())
    det_k = np.asarray(det_label)
    det_j = np.array([j for ids in per_label for j in range(len(ids))])
    tp = np.zeros((len(labels), len(IOU_THRESHOLDS), width), dtype=bool)
    floors = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    if (ok.sum(axis=0) <= 1).all():
        # no gold is a candidate of two detections: none can take another's match, so a detection is matched at
        # a threshold iff its best candidate reaches it (the greedy loop below gives the same)
        best = np.where(ok, ious, -1.0).max(axis=1)
        tp[det_k, :, det_j] = best[:, None] >= floors[None, :]
    else:
        rows, cols = np.nonzero(ok)
        candidates: list[list[tuple[int, float]]] = [[] for _ in dets]
        for di, gi, v in zip(rows.tolist(), cols.tolist(), ious[rows, cols].tolist(), strict=True):
            candidates[di].append((gi, v))
        slots = list(zip(det_k.tolist(), det_j.tolist(), strict=True))
        for t, floor in enumerate(floors.tolist()):
            matched = set()
            for (k, j), cands in zip(slots, candidates, strict=True):
                best_v, m = floor, -1
                for gi, v in cands:
                    if gi in matched or v < best_v:
                        continue
                    best_v, m = v, gi
                if m >= 0:
                    matched.add(m)
                    tp[k, t, j] = True
    real = np.arange(width)[None, :] < n_det[:, None]
    tp_sum = np.cumsum(tp, axis=2).astype(float)
    fp_sum = np.cumsum(~tp & real[:, None, :], axis=2).astype(float)
    # padding repeats each label's last sums, so its precision and recall past the end repeat the last real ones
    rc = tp_sum / np.maximum(n_gold, 1)[:, None, None]
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
    idx = (rc[:, :, :, None] < RECALL_POINTS).sum(axis=2)  # searchsorted(rc, R, side="left") per label/threshold
    valid = idx < n_det[:, None, None]  # recall points past the last reachable one keep precision 0
    precision = np.where(valid, np.take_along_axis(pr, np.minimum(idx, width - 1), axis=2), 0.0)
    return float(np.mean([precision[k].mean() for k in range(len(labels))]))


def greedy_matches(gold: list[dict], pred: list[dict]) -> list[tuple[int, float]]:
    """Predictions by descending confidence (stable), each matched to the unmatched gold box of highest IoU
    when that IoU > 0.5; returns (prediction index, IoU or -1 when unmatched) in that order."""
    order = sorted(range(len(pred)), key=lambda i: -float(pred[i].get("confidence", 1.0)))
    if not gold:
        return [(pi, -1.0) for pi in order]
    ious = iou_matrix([p["bbox_2d"] for p in pred], [g["bbox_2d"] for g in gold]).tolist()
    used = [False] * len(gold)
    out = []
    for pi in order:
        best, m = 0.5, -1
        for gi, v in enumerate(ious[pi]):
            if not used[gi] and v > best:
                best, m = v, gi
        if m >= 0:
            used[m] = True
            out.append((pi, best))
        else:
            out.append((pi, -1.0))
    return out
