"""The `<think>…</think><answer>…</answer>` layout: the format verdict, reading the answer block, reading the answer
a free-form response committed to, and writing the layout. Model output is scanned with `str.find` and
non-greedy patterns only, so no input can make a check backtrack for long.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.S)
_FINAL_ANSWER_LINE = re.compile(r"final answer\s*[:：]\s*(.+?)\s*$", re.S | re.I)
_LEADING_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)


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
    if response[:t_open].strip() or response[t_close + len(THINK_CLOSE) : a_open].strip():
        return None
    if response[a_close + len(ANSWER_CLOSE) :].strip():
        return None
    think = response[t_open + len(THINK_OPEN) : t_close]
    answer = response[a_open + len(ANSWER_OPEN) : a_close]
    if not answer.strip():
        return None
    return think, answer


def is_well_formed(response: str) -> bool:
    """The format verdict of Vision-R1's hard format-result reward (see `split_response`)."""
    return split_response(response) is not None


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
    return response[a_open + len(ANSWER_OPEN) : a_close].strip()


def final_answer(response: str) -> str | None:
    """The answer a free-form response committed to (a teacher's output, a published reference response): its
    last `<answer>` block, or else the text after its thinking; in either, what follows a `Final Answer:` if
    there is one. None when neither a block nor a `Final Answer:` is there."""
    blocks = _ANSWER_BLOCK.findall(response)
    text = blocks[-1] if blocks else response.rsplit(THINK_CLOSE, 1)[-1]
    m = _FINAL_ANSWER_LINE.search(text)
    if m:
        text = m.group(1)
    elif not blocks:
        return None
    return text.strip() or None


def split_think(text: str, reasoning: str | None) -> tuple[str, str | None]:
    """Servers without a reasoning parser return the thinking inline: move it to the reasoning field. Either
    `<think>…</think>` opens the text, or (R1-style models, whose chat template opens `<think>` in the prompt) the
    text runs up to a `</think>` with no `<think>` before it."""
    if reasoning is None:
        m = _LEADING_THINK.match(text)
        if m:
            return text[m.end() :], m.group(1).strip()
        close = text.find(THINK_CLOSE)
        if close >= 0 and THINK_OPEN not in text[:close]:
            return text[close + len(THINK_CLOSE) :].lstrip(), text[:close].strip()
    return text, reasoning


# What goes inside the answer block. `vision_r1`: the published Vision-R1 layout, the one its evaluation extracts
# with `<answer> Final Answer:(.*?) </answer>` (Osilly/Vision-R1 evaluation/evalscope/vlmeval/inference.py).
ANSWER_LAYOUTS = {"vr1": "{answer}", "vision_r1": " Final Answer:{answer} "}


def format_response(thinking: str, answer: str, layout: str = "vr1") -> str:
    """A response in the layout the format verdict accepts (the cold-start target)."""
    inner = ANSWER_LAYOUTS[layout].format(answer=answer.strip())
    return f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}\n{ANSWER_OPEN}{inner}{ANSWER_CLOSE}"
