"""Optional shaping terms. Each returns a PENALTY in [0, 1] (0 = none); configs give them negative weights."""

from __future__ import annotations

from collections.abc import Mapping

MAX_WORDS = 50_000  # bound the work on a flood; beyond this the response is maximally repetitive anyway


def length_penalty(response: str, info: Mapping) -> float:
    """0 up to `length_soft` characters (default 8000), rising linearly to 1 at `length_hard` (default 16000)."""
    soft = float(info.get("length_soft", 8000))
    hard = max(soft + 1.0, float(info.get("length_hard", 16000)))
    n = len(response)
    return 0.0 if n <= soft else min(1.0, (n - soft) / (hard - soft))


def repetition_penalty(response: str, info: Mapping) -> float:
    """Share of repeated word n-grams (n = `repetition_ngram`, default 4): 1 - distinct / total. A response
    stuck in a loop approaches 1; ordinary prose stays near 0."""
    n = int(info.get("repetition_ngram", 4))
    words = response.split()[:MAX_WORDS]
    if len(words) < n + 1:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)
