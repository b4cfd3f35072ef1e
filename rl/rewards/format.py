"""The format rule and the answer-block extractor, both linear-time (no backtracking regexes on model output)."""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def split_response(response: str) -> tuple[str, str] | None:
    """(think text, answer text) when `response` is exactly `<think>…</think><answer>…</answer>`, else None.

    Exactly one of each tag, in that order; only whitespace before `<think>`, between `</think>` and `<answer>`,
    and after `</answer>`; no tag inside another block (no nesting, no repeats). The answer must be non-empty.
    """
    if not isinstance(response, str):
        return None
    positions = []
    for tag in TAGS:
        first = response.find(tag)
        if first < 0 or response.find(tag, first + 1) >= 0:
            return None
        positions.append(first)
    t_open, t_close, a_open, a_close = positions
    if not (t_open < t_close < a_open < a_close):
        return None
    if response[:t_open].strip() or response[t_close + len(THINK_CLOSE):a_open].strip():
        return None
    if response[a_close + len(ANSWER_CLOSE):].strip():
        return None
    think = response[t_open + len(THINK_OPEN):t_close]
    answer = response[a_open + len(ANSWER_OPEN):a_close]
    if not answer.strip():
        return None
    return think, answer


def format_reward(response: str) -> float:
    """1.0 iff the response is exactly one `<think>…</think>` followed by exactly one non-empty
    `<answer>…</answer>`, with nothing but whitespace outside them and no nested or repeated tags; else 0.0."""
    return 1.0 if split_response(response) is not None else 0.0


def answer_block(response: str) -> str | None:
    """The content of the response's only `<answer>…</answer>` block, whatever surrounds it; None when there is
    not exactly one such block. Used for the accuracy metric, which is logged apart from the format metric."""
    if not isinstance(response, str):
        return None
    a_open = response.find(ANSWER_OPEN)
    a_close = response.find(ANSWER_CLOSE)
    if a_open < 0 or a_close < a_open:
        return None
    if response.find(ANSWER_OPEN, a_open + 1) >= 0 or response.find(ANSWER_CLOSE, a_close + 1) >= 0:
        return None
    return response[a_open + len(ANSWER_OPEN):a_close].strip()
