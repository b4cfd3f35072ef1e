"""What a reward needs to know about a sample, built once for both engines.

`reward_info` gathers it from a Sample: the gold answer, its type, the options, the coordinate frames of gold and
predicted boxes, the image paths and original sizes, and the pixel budget the policy's processor resizes them under
(so a box in the resized frame means what the model saw). `reward_columns` writes it as flat columns that both
engines carry unchanged (verl parquet `extra_info`, TRL dataset columns); `info_from_columns` reads it back on the
scoring side. Lists travel as JSON strings, so a parquet struct or a datasets column never has to guess a type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline.data.images import image_size
from pipeline.data.schema import Sample

JSON_COLUMNS = ("choices", "image_sizes", "image_paths", "meta")
INT_COLUMNS = ("min_pixels", "max_pixels")
# verl's own math sets carry no answer type: math-verify decides
DEFAULT_ANSWER_TYPE = "expression"


def reward_info(
    sample: Sample,
    image_path: Callable[[str], Path],
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    pred_frame: str | None = None,
) -> dict:
    """The reward input of `sample`; `image_path(rel)` locates each of its images. `pred_frame` is the frame the
    policy writes boxes in (its family's convention); a data set's own `pred_frame` (manifest key) wins."""
    paths = [image_path(rel) for rel in sample.images]
    return {
        "ground_truth": sample.answer,
        "answer_type": sample.answer_type,
        "choices": sample.choices,
        "coord_frame": sample.meta.get("coord_frame"),
        "pred_frame": sample.meta.get("pred_frame") or pred_frame,
        "image_paths": [str(p) for p in paths],
        "image_sizes": [list(image_size(p)) for p in paths],
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
    }


def reward_columns(info: Mapping) -> dict:
    """`info` as flat, fixed-type columns: `answer` (the gold), strings, JSON strings and nullable integers."""
    return {
        "answer": str(info["ground_truth"]),
        "answer_type": info["answer_type"],
        "choices": json.dumps(info.get("choices")),
        "coord_frame": info.get("coord_frame") or "",
        "pred_frame": info.get("pred_frame") or "",
        "image_paths": json.dumps(info.get("image_paths") or []),
        "image_sizes": json.dumps(info.get("image_sizes") or []),
        "min_pixels": info.get("min_pixels"),
        "max_pixels": info.get("max_pixels"),
    }


def _int_or_none(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # pandas reads a null integer as NaN
        return None
    return int(value)


def info_from_columns(ground_truth, columns: Mapping | None) -> dict:
    """The reward input back from its columns (as verl passes `extra_info`, or a TRL row's columns); columns
    written by hand or by other tools may leave any of them out."""
    info = dict(columns or {})
    for key in JSON_COLUMNS:
        if isinstance(info.get(key), str):
            try:
                info[key] = json.loads(info[key])
            except json.JSONDecodeError:
                info[key] = None
    for key in INT_COLUMNS:
        if key in info:
            info[key] = _int_or_none(info[key])
    for key in ("coord_frame", "pred_frame"):  # empty: the frame's default applies
        if not info.get(key):
            info.pop(key, None)
    info["ground_truth"] = ground_truth
    info["answer_type"] = info.get("answer_type") or DEFAULT_ANSWER_TYPE
    return info
