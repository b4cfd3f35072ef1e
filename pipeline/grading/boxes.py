"""Parsing box answers in the layouts the perception projects publish, into one canonical JSON form.

Canonical: `bbox` answers are `[x1, y1, x2, y2]`; `boxes` answers are a list of `{"bbox_2d": [...], "label": ...}`
(label optional). Parsing is strict: four finite numbers with x1 <= x2 and y1 <= y2, or an error.
"""

from __future__ import annotations

import ast
import json
import math
import re

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_NO_OBJECTS = {"none", "no objects", "no object", "[]", ""}


class BoxParseError(ValueError):
    pass


def _literal(text: str):
    """JSON, or a Python literal (Visual-RFT writes single-quoted dicts). Never evaluates code."""
    text = text.strip()
    fenced = _FENCE.findall(text)
    if fenced:  # several fenced blocks: the last is the answer (VLM-R1 reads the last one too)
        text = fenced[-1].strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or an integer past Python's digit limit
        pass
    if len(text) > 100_000:
        raise BoxParseError("box text too long")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise BoxParseError(f"not a JSON or Python literal: {type(e).__name__}") from None


def check_box(value) -> list[float]:
    if type(value) is list and len(value) == 4:
        x1, y1, x2, y2 = value
        if type(x1) is type(y1) is type(x2) is type(y2) is int and max(abs(x1), abs(y1), abs(x2), abs(y2)) < _EXACT:
            # the common case (JSON integers) decided without the per-coordinate checks below, same result
            if x1 > x2 or y1 > y2:
                raise BoxParseError(f"box corners out of order (need x1<=x2, y1<=y2): {value}")
            return [x1, y1, x2, y2]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise BoxParseError(f"a box must be 4 numbers [x1, y1, x2, y2], got {value!r:.80}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BoxParseError(f"box coordinates must be finite numbers, got {value!r:.80}")
        out.append(int(v) if float(v).is_integer() else float(v))
    if out[0] > out[2] or out[1] > out[3]:
        raise BoxParseError(f"box corners out of order (need x1<=x2, y1<=y2): {out}")
    return out


def parse_bbox(text: str) -> list[float]:
    """One box, e.g. `[10, 20, 110, 220]`, `{"bbox_2d": [...]}` or `(10,20),(110,220)`."""
    value = _literal(text)
    if isinstance(value, dict):
        value = value.get("bbox_2d", value.get("bbox", value.get("Position")))
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (list, dict)):
        return parse_bbox(json.dumps(value[0]))
    if _is_corner_pair(value):  # Visual-RFT's grounding layout: (x1,y1),(x2,y2)
        value = [*value[0], *value[1]]
    return check_box(value)


def _is_corner_pair(value) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value)
    )


def parse_boxes(text: str) -> list[dict]:
    """A list of labelled boxes from VLM-R1 (`bbox_2d`/`label`), Visual-RFT (`Position`/`Confidence`) or plain
    lists of 4 numbers. `None` / `No Objects` is the empty list."""
    # one reward call reads the same gold and answer for several terms (format, mAP, redundancy), and a gold for
    # every response of its group: each text is parsed once, and every caller gets its own copy
    cached = _PARSED.get(text) if isinstance(text, str) else None
    if cached is None:
        cached = _parse_boxes(text)
        if len(text) <= _CACHE_TEXT_CHARS:
            if len(_PARSED) >= _CACHE_ENTRIES:
                _PARSED.clear()
            _PARSED[text] = cached
    return [{**b, "bbox_2d": list(b["bbox_2d"])} for b in cached]


_PARSED: dict[str, list[dict]] = {}
_CACHE_ENTRIES = 4096
_CACHE_TEXT_CHARS = 20_000
_EXACT = 2**53  # integers that floats hold exactly


def _parse_boxes(text: str) -> list[dict]:
    if text.strip().strip(".").lower() in _NO_OBJECTS:
        return []
    value = _literal(text)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise BoxParseError(f"expected a list of boxes, got {type(value).__name__}")
    boxes = []
    for item in value:
        if isinstance(item, dict):
            raw = item.get("bbox_2d", item.get("bbox", item.get("Position")))
            box: dict = {"bbox_2d": check_box(raw)}
            label = item.get("label", item.get("Label"))
            if label is not None:
                box["label"] = str(label)
            conf = item.get("confidence", item.get("Confidence"))
            if conf is not None:
                if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
                    raise BoxParseError(f"confidence must be a number in [0, 1], got {conf!r:.40}")
                box["confidence"] = conf
            boxes.append(box)
        else:
            boxes.append({"bbox_2d": check_box(item)})
    return boxes


def dumps_boxes(boxes: list[dict] | list[float]) -> str:
    return json.dumps(boxes, separators=(", ", ": "))
