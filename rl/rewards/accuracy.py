"""Accuracy by answer type, and Vision-R1's hard format-result reward (HFRRF).

Every reward here has the signature `reward(response: str, info: Mapping) -> float in [0, 1]`, where `info` holds
`ground_truth`, `answer_type` and, as needed, `choices`, `number_rel_tol`, `text_fuzzy` (a rapidfuzz ratio
threshold in 0-100, off by default). The answer is read from the response's only `<answer>` block.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.grading.answers import answer_matches
from pipeline.grading.blocks import answer_block
from rl.rewards.format import format_reward


def accuracy_reward(response: str, info: Mapping) -> float:
    """Accuracy of the single `<answer>` block for `info["answer_type"]`; 0 when there is no single block."""
    pred = answer_block(response)
    return 0.0 if pred is None else answer_matches(pred, info)


def hfrrf_from(format_value: float, accuracy_value: float) -> float:
    return 1.0 if format_value >= 1.0 and accuracy_value >= 1.0 else 0.0


def hfrrf_reward(response: str, info: Mapping) -> float:
    """Vision-R1's hard format-result reward: 1 iff `format_reward` is 1 AND `accuracy_reward` is 1, else 0."""
    if format_reward(response) < 1.0:
        return 0.0
    return hfrrf_from(1.0, accuracy_reward(response, info))
