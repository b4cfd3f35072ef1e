"""The format reward: Vision-R1's format verdict (`pipeline.grading.blocks.split_response`) as a number."""

from __future__ import annotations

from pipeline.grading.blocks import is_well_formed


def format_reward(response: str) -> float:
    """1.0 iff the response is exactly one `<think>…</think>` followed by exactly one non-empty
    `<answer>…</answer>`, with nothing but whitespace outside them and no nested or repeated tags; else 0.0."""
    return 1.0 if is_well_formed(response) else 0.0
