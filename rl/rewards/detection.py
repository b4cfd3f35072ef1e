"""Perception rewards: REC IoU (VLM-R1), OVD mAP with the redundancy factor (VLM-R1), detection IoU and
confidence (Visual-RFT). Boxes are compared in one frame: both sides are mapped to normalised [0, 1] coordinates.

Frames (`info["coord_frame"]` for the gold, `info["pred_frame"]` for the model's output):
`abs_original` pixels of the original image; `abs_resized` pixels of the image as the Qwen2.5-VL processor
resized it (`smart_resize` with `min_pixels`/`max_pixels` from info); `grid1000` the 0-1000 grid (Qwen2-VL,
InternVL, Visual-RFT); `normalized` 0-1. `info["image_sizes"][0]` is the original (width, height).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.grading.boxes import BoxParseError, parse_bbox, parse_boxes
from pipeline.data.images import smart_resize
from rl.rewards.format import answer_block

FRAMES = ("abs_original", "abs_resized", "grid1000", "normalized")
MAX_BOXES = 100  # COCO's maxDets; more predicted boxes than this are a flood, not an answer
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _frame_size(frame: str, info: Mapping) -> tuple[float, float]:
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
        rw, rh = smart_resize(int(w), int(h), 28, int(info.get("min_pixels", 3136)),
                              int(info.get("max_pixels", 12845056)))  # fmt: skip
        return float(rw), float(rh)
    raise ValueError(f"unknown coordinate frame '{frame}'; use one of {FRAMES}")


def to_normalized(box, frame: str, info: Mapping) -> list[float]:
    w, h = _frame_size(frame, info)
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


def _frames(info: Mapping) -> tuple[str, str]:
    gold = info.get("coord_frame") or "abs_original"
    return gold, info.get("pred_frame") or gold


def rec_iou_reward(response: str, info: Mapping) -> float:
    """REC: IoU between the single predicted box in the `<answer>` block and the gold box, both mapped to
    normalised coordinates from their frames. Not exactly one parseable box (none, several, junk): 0."""
    pred = answer_block(response)
    if pred is None:
        return 0.0
    try:
        box = parse_bbox(pred)
        gold = parse_bbox(str(info["ground_truth"]))
    except BoxParseError:
        return 0.0
    gold_frame, pred_frame = _frames(info)
    return iou(to_normalized(box, pred_frame, info), to_normalized(gold, gold_frame, info))


def _parse_pred_boxes(response: str, info: Mapping) -> list[dict] | None:
    pred = answer_block(response)
    if pred is None:
        return None
    try:
        boxes = parse_boxes(pred)
    except BoxParseError:
        return None
    _, pred_frame = _frames(info)
    return [{**b, "bbox_2d": to_normalized(b["bbox_2d"], pred_frame, info)} for b in boxes]


def _gold_boxes(info: Mapping) -> list[dict]:
    gold_frame, _ = _frames(info)
    return [{**b, "bbox_2d": to_normalized(b["bbox_2d"], gold_frame, info)}
            for b in parse_boxes(str(info["ground_truth"]))]  # fmt: skip


def _gold_and_pred(response: str, info: Mapping) -> tuple[list[dict], list[dict]] | None:
    """Both box lists in normalised coordinates; None when the output does not parse or floods (> 100 boxes)."""
    pred = _parse_pred_boxes(response, info)
    if pred is None or len(pred) > MAX_BOXES:
        return None
    return _gold_boxes(info), pred


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


def ovd_reward(response: str, info: Mapping) -> float:
    """OVD: min(1, n_gold / n_pred) x COCO mAP@[.5:.95] of the labelled predicted boxes (the factor stops
    duplicate-box flooding). No gold boxes: 1 iff no boxes are predicted. Unparseable output or more than 100
    boxes: 0."""
    boxes = _gold_and_pred(response, info)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    if not gold or not pred:
        return float(not gold and not pred)
    return min(1.0, len(gold) / len(pred)) * coco_map(gold, pred)


def _greedy_matches(gold: list[dict], pred: list[dict]) -> list[tuple[int, float]]:
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


def det_iou_reward(response: str, info: Mapping) -> float:
    """Visual-RFT IoU reward: sum of the IoUs of greedily matched predictions (IoU > 0.5) divided by
    max(n_gold, n_pred). Both empty: 1; exactly one empty or unparseable output: 0."""
    boxes = _gold_and_pred(response, info)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    if not gold or not pred:
        return float(not gold and not pred)
    total = sum(v for _, v in _greedy_matches(gold, pred) if v > 0)
    return total / max(len(gold), len(pred))


def det_confidence_reward(response: str, info: Mapping) -> float:
    """Visual-RFT confidence reward: mean over predictions of c when matched (IoU > 0.5), 1 - c when not.
    A prediction without a confidence counts as c = 1. No predictions: 1 iff there are no gold boxes."""
    boxes = _gold_and_pred(response, info)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    if not pred:
        return float(not gold)
    scores = []
    for pi, v in _greedy_matches(gold, pred):
        c = float(pred[pi].get("confidence", 1.0))
        scores.append(c if v > 0 else 1.0 - c)
    return float(np.mean(scores))
