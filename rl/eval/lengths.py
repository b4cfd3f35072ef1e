"""Length statistics of a benchmark's responses, as the Vision-R1 paper analyses them: thinking and answer tokens
(mean, median, p95), how many responses hit the token limit, how many break the `<think>…</think><answer>…</answer>`
format, and how often the model reflects ("Wait", "Hmm", …) per response."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from pipeline.grading.blocks import THINK_CLOSE, is_well_formed

# the reflective words of the paper's analysis (and the usual companions), counted as whole words, any case
REFLECTIVE = ("wait", "hmm", "however", "alternatively", "but wait", "let me check", "double-check", "re-examine")
_REFLECTIVE = {w: re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])", re.I) for w in REFLECTIVE}


def split_response(response: str) -> tuple[str, str]:
    """(thinking, answer): the text before the last `</think>` and after it; no `</think>`: all answer."""
    if THINK_CLOSE in response:
        thinking, _, answer = response.rpartition(THINK_CLOSE)
        return thinking, answer
    return "", response


def reflective_counts(response: str) -> dict[str, int]:
    return {w: len(p.findall(response)) for w, p in _REFLECTIVE.items()}


def _quantiles(values: Sequence[float]) -> dict:
    if not values:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0}
    ordered = sorted(values)

    def q(p: float) -> float:  # nearest rank
        return float(ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))])

    return {"mean": round(sum(ordered) / len(ordered), 2), "median": q(0.5), "p95": q(0.95)}


def length_stats(rows: Sequence[dict], count: Callable[[str], int] | None = None) -> dict:
    """Over prediction rows ({response, finish_reason?}): `count` turns text into a token count (a tokenizer);
    without one the unit is characters and the keys say so."""
    unit = "tokens" if count else "chars"
    count = count or len
    thinking, answer, reflective = [], [], {w: 0 for w in REFLECTIVE}
    truncated = malformed = 0
    for r in rows:
        t, a = split_response(r["response"])
        thinking.append(count(t))
        answer.append(count(a))
        truncated += r.get("finish_reason") == "length"
        malformed += not is_well_formed(r["response"])
        for w, n in reflective_counts(r["response"]).items():
            reflective[w] += n
    n = len(rows) or 1
    return {
        f"thinking_{unit}": _quantiles(thinking),
        f"answer_{unit}": _quantiles(answer),
        "truncation_rate": round(truncated / n, 4),
        "format_failure_rate": round(malformed / n, 4),
        "reflective_per_response": {w: round(c / n, 3) for w, c in reflective.items()},
    }
