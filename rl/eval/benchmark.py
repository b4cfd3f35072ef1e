"""What every benchmark provides to `vr1 eval`: its items read from the published layout, a verdict on one
response by the benchmark's own rule, and the figures it reports.

A benchmark module defines one `Benchmark` subclass per benchmark and registers it in `rl/eval/benchmarks.py`.
The runner (rl/eval/run.py) generates a response per item (or reads them, in score-only mode), calls `score` on each
and `aggregate` once; it never looks inside `gold` or `meta`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.grading.blocks import answer_block, final_answer


@dataclass
class EvalItem:
    # the benchmark's own id: MathVista `pid`, MathVerse `sample_index`, a VLM-R1 record's `id`, DynaMath's seed id
    id: str
    question: str  # the prompt text as the benchmark poses it (its own query/choices wording)
    images: list[str]  # absolute paths
    gold: Any  # what the scorer needs (answer, choices, precision, boxes …): the benchmark's business
    variant: str | None = None  # DynaMath: the K of trialK/ or sample_variantK; an item is (id, variant)
    meta: dict = field(default_factory=dict)  # what aggregate breaks down by (category, problem_version …)

    @property
    def key(self) -> str:
        """Unique within a benchmark run: the id, with the variant where there is one."""
        return self.id if self.variant is None else f"{self.id}#{self.variant}"


def extract(response: str, fallback: Callable[[str], str | None] | None = None) -> tuple[str | None, str]:
    """(answer text, where it came from): the `<answer>` block (its `Final Answer:` part when present, the layout
    Vision-R1's released models write) → "answer_block"; else the benchmark's own `fallback` on the whole response
    → "fallback"; else (None, "none")."""
    if answer_block(response) is not None or "<answer>" in response:
        text = final_answer(response)
        if text is not None:
            return text, "answer_block"
    text = fallback(response) if fallback else None
    return (text, "fallback") if text is not None else (None, "none")


class Benchmark:
    """One benchmark. `score` returns at least {"correct": 0.0..1.0, "extracted": str | None, "source":
    "answer_block" | "fallback" | "none"}; detection-style benchmarks add what `aggregate` needs (boxes, scores).
    `aggregate` returns at least {"n": int} and "accuracy" (fraction 0-1) or "map", plus any breakdowns."""

    name: str = ""
    # the default instruction appended to each question (the paper's format), after `separator`
    instruction: str = ""
    separator: str = "\n"

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        raise NotImplementedError

    def prompt(self, item: EvalItem) -> str:
        return f"{item.question}{self.separator}{self.instruction}" if self.instruction else item.question

    def score(self, item: EvalItem, response: str, **options) -> dict:
        raise NotImplementedError

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        n = len(scores)
        out = {"n": n, "accuracy": sum(s["correct"] for s in scores) / n if n else 0.0}
        out["fallback_rate"] = sum(s.get("source") == "fallback" for s in scores) / n if n else 0.0
        out["no_answer_rate"] = sum(s.get("source") == "none" for s in scores) / n if n else 0.0
        return out
