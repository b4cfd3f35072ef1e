"""Accuracy by answer type, and Vision-R1's hard format-result reward (HFRRF).

Every reward here has the signature `reward(response: str, info: Mapping) -> float in [0, 1]`, where `info` holds
`ground_truth`, `answer_type` and, as needed, `choices`, `number_rel_tol`, `text_fuzzy` (a rapidfuzz ratio
threshold in 0-100, off by default). The answer is read from the response's only `<answer>` block.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.answers import (
    clean_answer,
    numbers_match,
    parse_choice,
    parse_number,
    parse_text,
)
from pipeline.mathverify import default_pool, looks_explosive
from rl.rewards.format import answer_block, format_reward

REASONING_TYPES = ("choice", "number", "expression", "text", "label")


def _choices(info: Mapping) -> list[str] | None:
    c = info.get("choices")
    return list(c) if isinstance(c, (list, tuple)) and c else None


def choice_accuracy(pred: str, info: Mapping) -> float:
    """1 iff the predicted answer is exactly one option letter (strict forms only; see `parse_choice`) equal to
    the gold letter. Hedges, two letters and free text score 0."""
    gold = parse_choice(str(info["ground_truth"]), _choices(info))
    return float(gold is not None and parse_choice(pred, _choices(info)) == gold)


def number_accuracy(pred: str, info: Mapping) -> float:
    """1 iff the prediction is a single number within `number_rel_tol` (default 1e-4, relative) of the gold."""
    gold = parse_number(str(info["ground_truth"]))
    value = parse_number(pred)
    if gold is None or value is None:
        return 0.0
    return float(numbers_match(value, gold, rel_tol=float(info.get("number_rel_tol", 1e-4))))


def expression_fast_path(pred: str, gold: str) -> float | None:
    """Decide without sympy when possible: both plain numbers, or the same string up to spacing."""
    p, g = clean_answer(pred), clean_answer(gold)
    if p is None or g is None or looks_explosive(p):
        return 0.0
    pn, gn = parse_number(p), parse_number(g)
    if pn is not None and gn is not None:
        return float(numbers_match(pn, gn))
    if "".join(p.split()) == "".join(g.split()):
        return 1.0
    return None


def expression_accuracy(pred: str, info: Mapping) -> float:
    """1 iff math-verify finds the prediction equivalent to the gold expression (`2\\sqrt{5}` = `\\sqrt{20}`),
    decided within a time bound in a worker process; explosive inputs (power towers, huge factorials) score 0."""
    gold = str(info["ground_truth"])
    fast = expression_fast_path(pred, gold)
    if fast is not None:
        return fast
    return default_pool().verify(clean_answer(gold) or "", clean_answer(pred) or "")


def text_accuracy(pred: str, info: Mapping) -> float:
    """1 iff the normalised prediction (lower case, no punctuation or articles) equals the normalised gold, or,
    when `text_fuzzy` is set, their rapidfuzz ratio reaches it. No substring matching (that was hacked)."""
    gold, value = parse_text(str(info["ground_truth"])), parse_text(pred)
    if gold is None or value is None:
        return 0.0
    if value == gold:
        return 1.0
    threshold = info.get("text_fuzzy")
    if threshold:
        from rapidfuzz import fuzz

        return float(fuzz.ratio(value, gold) >= float(threshold))
    return 0.0


def label_accuracy(pred: str, info: Mapping) -> float:
    """Classification: 1 iff the prediction is exactly one label equal to the gold after normalisation (a
    list of labels, "X or Y", or a label with extra words scores 0)."""
    gold, value = parse_text(str(info["ground_truth"])), parse_text(pred)
    return float(gold is not None and value == gold)


ACCURACY = {
    "choice": choice_accuracy,
    "number": number_accuracy,
    "expression": expression_accuracy,
    "text": text_accuracy,
    "label": label_accuracy,
}


def accuracy_reward(response: str, info: Mapping) -> float:
    """Accuracy of the single `<answer>` block for `info["answer_type"]`; 0 when there is no single block."""
    pred = answer_block(response)
    fn = ACCURACY.get(info.get("answer_type"))
    if pred is None or fn is None:
        return 0.0
    return fn(pred, info)


def hfrrf_from(format_value: float, accuracy_value: float) -> float:
    return 1.0 if format_value >= 1.0 and accuracy_value >= 1.0 else 0.0


def hfrrf_reward(response: str, info: Mapping) -> float:
    """Vision-R1's hard format-result reward: 1 iff `format_reward` is 1 AND `accuracy_reward` is 1, else 0."""
    if format_reward(response) < 1.0:
        return 0.0
    return hfrrf_from(1.0, accuracy_reward(response, info))
