"""What every answer parser does first: strip the wrappers models put around a final answer, and normalise text.

Inputs longer than MAX_ANSWER_CHARS are refused outright (a final answer is short; a flood is a hack).
"""

from __future__ import annotations

import re
import unicodedata

MAX_ANSWER_CHARS = 1000

_PREFIX = re.compile(
    r"^(?:final\s+answer|the\s+(?:final\s+|correct\s+)?answer\s+is|answer|so\s+the\s+answer\s+is)\s*[:：]?\s*", re.I
)
_BOXED = re.compile(r"^\\boxed\{(.*)\}$", re.S)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def clean_answer(text: str) -> str | None:
    """Strip the wrappers models put around a final answer: `Final Answer:`, `$…$`, `\\boxed{…}`, a final period."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    t = text.strip()
    for _ in range(3):  # wrappers nest at most a few deep: "Final Answer: $\boxed{C}$."
        before = t
        t = _PREFIX.sub("", t).strip()
        if t.endswith("."):
            t = t[:-1].strip()
        if len(t) >= 2 and t[0] == "$" and t[-1] == "$":
            t = t.strip("$").strip()
        m = _BOXED.match(t)
        if m and balanced(m.group(1)):
            t = m.group(1).strip()
        if t == before:
            break
    return t or None


def balanced(s: str) -> bool:
    """Every `}` closes an earlier `{` and none stays open."""
    depth = 0
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def normalize_text(text: str) -> str:
    """Lower case, NFKC, no punctuation, no articles, single spaces."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = _PUNCT.sub(" ", t)
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())
