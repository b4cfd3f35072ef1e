"""The canonical `Sample`: what every reader produces and every stage consumes.

Images are paths relative to the owning manifest's image root (0..n per sample); the root itself is
not part of the record, so a data set can be moved without rewriting it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

ANSWER_TYPES = ("choice", "number", "expression", "text", "bbox", "boxes", "label")
IMAGE_PLACEHOLDER = "<image>"


@dataclass(slots=True)
class Sample:
    """One question about 0..n images with its ground-truth answer.

    `answer` is always a string; for `bbox` it is a JSON list `[x1, y1, x2, y2]`, for `boxes` a JSON list of
    `{"bbox_2d": [...], "label": ...}` objects. The coordinate frame of boxes is `meta["coord_frame"]`
    (`abs_original`: pixels of the original image; `grid1000`: a 0-1000 grid; `normalized`: 0-1).
    """

    id: str
    source: str
    question: str
    answer: str
    answer_type: str
    images: list[str] = field(default_factory=list)
    choices: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(
            id=d["id"],
            source=d["source"],
            question=d["question"],
            answer=d["answer"],
            answer_type=d["answer_type"],
            images=list(d.get("images") or []),
            choices=list(d["choices"]) if d.get("choices") is not None else None,
            meta=dict(d.get("meta") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)


def strip_image_placeholders(text: str) -> str:
    return text.replace(IMAGE_PLACEHOLDER, "").strip()
