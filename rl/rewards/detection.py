"""Perception rewards: REC IoU (VLM-R1), OVD mAP with the redundancy factor (VLM-R1), detection IoU and
confidence (Visual-RFT). Coordinate frames, IoU and mAP are grading's (`pipeline.grading.geometry`); these
functions read the answer block, parse the boxes and turn the geometry into a reward."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.grading.blocks import answer_block
from pipeline.grading.boxes import BoxParseError, parse_bbox, parse_boxes
from pipeline.grading.geometry import MAX_BOXES, coco_map, frames_of, greedy_matches, iou, to_frame
from rl.rewards.format import format_reward


def _rec_boxes(response: str, info: Mapping) -> tuple[list[float], list[float]] | None:
    """(predicted box mapped into the gold's frame, gold box), or None when the answer is not exactly one box."""
    pred = answer_block(response)
    if pred is None:
        return None
    try:
        box = parse_bbox(pred)
        gold = parse_bbox(str(info["ground_truth"]))
    except BoxParseError:
        return None
    gold_frame, pred_frame = frames_of(info)
    return to_frame(box, pred_frame, gold_frame, info), gold


def rec_iou_reward(response: str, info: Mapping) -> float:
    """REC: IoU between the single predicted box in the `<answer>` block, mapped into the gold's frame, and the
    gold box. Not exactly one parseable box (none, several, junk): 0."""
    boxes = _rec_boxes(response, info)
    return 0.0 if boxes is None else iou(*boxes)


def giou_reward(response: str, info: Mapping) -> float:
    """Grounding (Visual-RFT's LISA setting): generalised IoU of the single predicted box with the gold, rescaled
    from [-1, 1] to [0, 1] (Visual-RFT adds 1 and rewards in [0, 2]). Unlike IoU it still ranks boxes that miss:
    a near miss scores more than a far one. Not exactly one parseable box: 0."""
    boxes = _rec_boxes(response, info)
    if boxes is None:
        return 0.0
    a, b = boxes
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if union <= 0 or hull <= 0:
        return 0.0
    return (inter / union - (hull - union) / hull + 1) / 2


def _parse_pred_boxes(response: str, info: Mapping) -> list[dict] | None:
    """The predicted boxes mapped into the gold's frame; None when the answer does not parse."""
    pred = answer_block(response)
    if pred is None:
        return None
    try:
        boxes = parse_boxes(pred)
    except BoxParseError:
        return None
    gold_frame, pred_frame = frames_of(info)
    if gold_frame == pred_frame:
        return boxes
    return [{**b, "bbox_2d": to_frame(b["bbox_2d"], pred_frame, gold_frame, info)} for b in boxes]


def _gold_boxes(info: Mapping) -> list[dict]:
    return parse_boxes(str(info["ground_truth"]))


def box_format_reward(response: str, info: Mapping) -> float:
    """VLM-R1's task format: the `<think>…</think><answer>…</answer>` structure, and an answer in the task's box
    layout: exactly one box for REC (`bbox`), a parseable box list for OVD and detection (`boxes`; "None" / "No
    Objects" is the empty list). Other answer types: the structure alone."""
    if not format_reward(response):
        return 0.0
    answer_type = info.get("answer_type")
    if answer_type == "bbox":
        return float(_rec_boxes(response, info) is not None)
    if answer_type == "boxes":
        pred = _parse_pred_boxes(response, info)
        return float(pred is not None and len(pred) <= MAX_BOXES)
    return 1.0


def boxes_in_answer(response: str, info: Mapping) -> float:
    """How many boxes the answer block holds (0 when it does not parse): a metric, not a reward."""
    pred = answer_block(response)
    if pred is None:
        return 0.0
    for count in (lambda: 1 if parse_bbox(pred) else 0, lambda: len(parse_boxes(pred))):  # one box, or a list
        try:
            return float(count())
        except BoxParseError:
            continue
    return 0.0


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


def ovd_map(response: str, info: Mapping) -> float:
    """OVD's accuracy term: COCO mAP@[.5:.95] of the labelled predicted boxes. No gold boxes: 1 iff no boxes are
    predicted. Unparseable output or more than 100 boxes: 0."""
    return _matched_boxes(response, info, coco_map)


def ovd_redundancy(response: str, info: Mapping) -> float:
    """OVD's redundancy factor min(1, n_gold / n_pred): below 1 when the answer holds more boxes than the image
    has objects. No predicted boxes: 1 (nothing redundant); unparseable or flooded output: 0."""
    boxes = _gold_and_pred(response, info)
    if boxes is None:
        return 0.0
    gold, pred = boxes
    return min(1.0, len(gold) / len(pred)) if pred else 1.0


def ovd_reward(response: str, info: Mapping) -> float:
    """OVD: min(1, n_gold / n_pred) x COCO mAP@[.5:.95] of the labelled predicted boxes (the factor stops
    duplicate-box flooding). No gold boxes: 1 iff no boxes are predicted. Unparseable output or more than 100
    boxes: 0."""
    return ovd_redundancy(response, info) * ovd_map(response, info)


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
