"""The published perception rewards as their code behaves, rewritten from reading it (not copied), for the
differential test: om-ai-lab/VLM-R1 at 90052f4 (REC `iou_reward` in src/open-r1-multimodal/src/open_r1/vlm_modules/
qwen_module.py; OVD `odLength_reward` -> `map_reward` -> `calculate_map` in src/open-r1-multimodal/src/open_r1/
grpo_jsonl.py) and Liuziyu77/Visual-RFT at 9486633 (`accuracy_reward_iou`, `accuracy_reward_confidence`,
`extract_bbox`, `remove_duplicates`, `sort_and_calculate_iou` in src/virft/src/open_r1/grpo.py; `accuracy_reward` in
grpo_classification.py). Their math-verify first pass is left out (a quirk listed in the README table)."""

from __future__ import annotations

import json
import re

from coco_reference import pycocotools_map

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def vlm_r1_rec(content: str, gold: list[float], original: tuple[int, int], resized: tuple[int, int]) -> float:
    """The first `[int, int, int, int]` in the first answer block, read in the resized input's pixels and scaled to
    the original; IoU with a -1 pixel convention (an overlap of 1 pixel or less is none)."""
    found = _ANSWER.search(content)
    if not found:
        return 0.0
    box = re.search(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]", found.group(1).strip())
    if not box:
        return 0.0
    (w, h), (rw, rh) = original, resized
    b = [int(v) for v in box.groups()]
    b = [b[0] / rw * w, b[1] / rh * h, b[2] / rw * w, b[3] / rh * h]
    ix1, iy1 = max(b[0], gold[0]), max(b[1], gold[1])
    ix2, iy2 = min(b[2] - 1, gold[2] - 1), min(b[3] - 1, gold[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (b[2] - b[0]) * (b[3] - b[1]) + (gold[2] - gold[0]) * (gold[3] - gold[1]) - inter
    return inter / union


def _last_fence(text: str) -> list | None:
    blocks = re.findall(r"```json(.*?)```", text, re.S)
    if not blocks:
        return None
    try:
        return list(json.loads(blocks[-1].strip()))
    except (json.JSONDecodeError, TypeError):
        return []


def vlm_r1_ovd(content: str, sol: str) -> float:
    """odLength: the last answer block; "None" on both sides is 1; else the last ```json fence of each side, COCO
    mAP (every box scored 1.0, predictions whose label the gold lacks dropped) times min(1, n_gold / n_pred)."""
    answers = _ANSWER.findall(content)
    if not answers:
        return 0.0
    student = answers[-1].strip()
    gold_match = _ANSWER.search(sol)
    truth = gold_match.group(1).strip() if gold_match else None
    if truth == "None" and student == "None":
        return 1.0
    gold = _last_fence(truth or "") or []
    pred = _last_fence(student) or []
    if pred and gold:
        known = {b["label"] for b in gold}
        scored = [b for b in pred if isinstance(b, dict) and b.get("label") in known and "bbox_2d" in b]
        value = pycocotools_map(gold, scored) if scored else 0.0
    else:
        value = float(not pred and not gold)
    return value * (1.0 if len(gold) >= len(pred) else len(gold) / len(pred))


def _extract_bbox(text: str) -> list | None:
    if "<answer>" not in text:
        return None
    start = text.find("<answer>") + len("<answer>")
    end = text.find("</answer>")
    body = text[start : end if end != -1 else len(text)]
    if not body.endswith("]"):  # their repair of a truncated list
        body = body.rsplit("},", 1)[0] + "}]"
    try:
        return json.loads(body.replace("'", '"'))
    except json.JSONDecodeError:
        return None


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return 0.0
    inter = (x2 - x1) * (y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _visual_rft_matches(content: str, sol: str):
    found = re.search(r"<answer>(.*?)</answer>", content)  # no re.S: an answer over several lines is not found
    student = "<answer>" + (found.group(1).strip() if found else content.strip()) + "</answer>"
    student = student.replace("[[", "[").replace("]]", "]").replace("\n", "")
    gold, pred = _extract_bbox(sol.strip()), _extract_bbox(student)
    if pred is None or not isinstance(pred[0], dict):
        return None
    seen, unique = set(), []
    for b in pred:
        if tuple(b["Position"]) not in seen:
            seen.add(tuple(b["Position"]))
            unique.append(b)
    results, used = [], set()
    for b in sorted(unique, key=lambda x: x["Confidence"], reverse=True):
        best, match = 0, -1
        for i, g in enumerate(gold):
            if i not in used and (v := _iou(g["Position"], b["Position"])) > best:
                best, match = v, i
        if best > 0.5:
            results.append((best, b["Confidence"]))
            used.add(match)
        else:
            results.append((0, b["Confidence"]))
    return results, len(gold)


def visual_rft_iou(content: str, sol: str) -> float:
    try:
        got = _visual_rft_matches(content, sol)
    except Exception:  # noqa: BLE001 - their code catches everything and scores 0
        return 0.0
    if got is None:
        return 0.0
    results, n_gold = got
    return min(1.0, sum(v for v, _ in results) / (n_gold if n_gold >= len(results) else len(results)))


def visual_rft_confidence(content: str, sol: str) -> float:
    try:
        got = _visual_rft_matches(content, sol)
    except Exception:  # noqa: BLE001
        return 0.0
    if got is None:
        return 0.0
    results, _ = got
    value = sum(c if v else (1 - c) for v, c in results) / len(results)
    return min(1.0, max(0.0, value))


def visual_rft_classification(content: str, sol: str) -> float:
    """Both labels with spaces and `_` removed, lower-cased; a match when either holds the other (the student's
    first single-line answer block, or the whole response when there is none)."""
    gold = re.search(r"<answer>(.*?)</answer>", sol)
    truth = (gold.group(1) if gold else sol).strip()
    found = re.search(r"<answer>(.*?)</answer>", content)
    student = (found.group(1) if found else content).strip()
    truth, student = (t.replace(" ", "").replace("_", "").lower() for t in (truth, student))
    return 1.0 if truth in student or student in truth else 0.0
