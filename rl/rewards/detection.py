"""Perception rewards: REC IoU (VLM-R1), OVD mAP with the redundancy factor (VLM-R1), detection IoU and
confidence (Visual-RFT). Coordinate frames, IoU and mAP are grading's (`pipeline.grading.geometry`); these
functions read the answer block, parse the boxes and turn the geometry into a reward."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.grading.blocks import answer_block
from pipeline.grading.boxes import BoxParseError, parse_bbox, parse_boxes
from pipeline.grading.geometry import MAX_BOXES, coco_map, frames_of, greedy_matches, iou, to_normalized


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
    gold_frame, pred_frame = frames_of(info)
    return iou(to_normalized(box, pred_frame, info), to_normalized(gold, gold_frame, info))


def _parse_pred_boxes(response: str, info: Mapping) -> list[dict] | None:
    pred = answer_block(response)
    if pred is None:
        return None
    try:
        boxes = parse_boxes(pred)
    except BoxParseError:
        return None
    _, pred_frame = frames_of(info)
    return [{**b, "bbox_2d": to_normalized(b["bbox_2d"], pred_frame, info)} for b in boxes]


def _gold_boxes(info: Mapping) -> list[dict]:
    gold_frame, _ = frames_of(info)
    return [
        {**b, "bbox_2d": to_normalized(b["bbox_2d"], gold_frame, info)} for b in parse_boxes(str(info["ground_truth"]))
    ]


def _without_duplicates(boxes: list[dict]) -> list[dict]:
    """The first of each set of identical boxes (same coordinates and label), as Visual-RFT removes duplicate
    predictions before matching: a repeated right box would otherwise halve the IoU reward and be rewarded again
    by the confidence reward."""
    seen, out = set(), []
    for b in boxes:
        key = (tuple(round(float(v), 6) for v in b["bbox_2d"]), b.get("label"))
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out


def _gold_and_pred(response: str, info: Mapping, dedupe: bool = False) -> tuple[list[dict], list[dict]] | None:
    """Both box lists in normalised coordinates; None when the output does not parse or floods (> 100 boxes)."""
    pred = _parse_pred_boxes(response, info)
    if pred is None or len(pred) > MAX_BOXES:
        return None
    return _gold_boxes(info), _without_duplicates(pred) if dedupe else pred


def _matched_boxes(response: str, info: Mapping, measure, dedupe: bool = False) -> float:
    """`measure(gold, pred)` when both lists have boxes; 1 when both are empty, 0 when one is or the output does
    not parse."""
    boxes = _gold_and_pred(response, info, dedupe)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    if not gold or not pred:
        return float(not gold and not pred)
    return measure(gold, pred)


def ovd_reward(response: str, info: Mapping) -> float:
    """OVD: min(1, n_gold / n_pred) x COCO mAP@[.5:.95] of the labelled predicted boxes (the factor stops
    duplicate-box flooding). No gold boxes: 1 iff no boxes are predicted. Unparseable output or more than 100
    boxes: 0."""
    return _matched_boxes(response, info, lambda gold, pred: min(1.0, len(gold) / len(pred)) * coco_map(gold, pred))


def det_iou_reward(response: str, info: Mapping) -> float:
    """Visual-RFT IoU reward: sum of the IoUs of greedily matched predictions (IoU > 0.5) divided by
    max(n_gold, n_pred), identical predicted boxes counted once. Both empty: 1; exactly one empty or unparseable
    output: 0."""

    def matched_iou(gold: list[dict], pred: list[dict]) -> float:
        return sum(v for _, v in greedy_matches(gold, pred) if v > 0) / max(len(gold), len(pred))

    return _matched_boxes(response, info, matched_iou, dedupe=True)


def det_confidence_reward(response: str, info: Mapping) -> float:
    """Visual-RFT confidence reward: mean over predictions of c when matched (IoU > 0.5), 1 - c when not.
    A prediction without a confidence counts as c = 1. No predictions: 1 iff there are no gold boxes."""
    boxes = _gold_and_pred(response, info, dedupe=True)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    if not pred:
        return float(not gold)
    scores = []
    for pi, v in greedy_matches(gold, pred):
        c = float(pred[pi].get("confidence", 1.0))
        scores.append(c if v > 0 else 1.0 - c)
    return float(np.mean(scores))
