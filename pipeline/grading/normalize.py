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
_MATH_PIECE = re.compile(r"\$([^$]*)\$")
_LONE_CURRENCY = re.compile(r"^(?:US)?\$\s*(?=[-+]?\.?\d)")  # "$10": a price, when no closing "$" follows
_CURRENCY = re.compile(r"^(?:€|£|¥)\s*(?=[-+]?\.?\d)")
# what may stand between the boxed answers of a list (`\boxed{1} and \boxed{2}`); anything else makes the text a
# solution, whose last box is its answer
_LIST_GLUE = re.compile(r"^[\s,;.$()\\]*(?:and|or)?[\s,;.$()\\]*$", re.I)
BOXED_OPEN = "\\boxed{"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every top-level balanced `\\boxed{…}` in `text`, in order."""
    spans, start = [], text.find(BOXED_OPEN)
    while start >= 0:
        depth, i = 1, start + len(BOXED_OPEN)
        while i < len(text) and depth:
            depth += (text[i] == "{") - (text[i] == "}")
            i += 1
        if depth:
            break
        spans.append((start, i))
        start = text.find(BOXED_OPEN, i)
    return spans


def boxed_answer(text: str) -> str | None:
    """What a text with boxed answers commits to: one list when the boxes stand side by side (`\\boxed{1} and
    \\boxed{2}`), else the last box (a solution that boxed a step and then its result). None without a box."""
    spans = boxed_spans(text)
    if not spans:
        return None
    inner = [text[s + len(BOXED_OPEN) : e - 1].strip() for s, e in spans]
    glue = [text[e:s] for (_, e), (s, _) in zip(spans, spans[1:], strict=False)]
    if len(spans) > 1 and all(_LIST_GLUE.match(g) for g in glue):
        return ", ".join(inner)
    return inner[-1]


def math_pieces(text: str) -> list[str] | None:
    """The `$…$` pieces of an answer written as several of them (`$1$ and $2$`), or None for 0 or 1 pieces."""
    pieces = _MATH_PIECE.findall(text)
    return pieces if len(pieces) >= 2 and text.count("$") == 2 * len(pieces) else None


def clean_answer(text: str) -> str | None:
    """Strip the wrappers models put around a final answer: `Final Answer:`, `$…$`, `\\boxed{…}`, a final period.

    Boxed answers side by side are one list, and a whole solution counts by its last `\\boxed{…}`; an escaped
    dollar (`\\$10`) or a lone leading one (`$10`) is a currency sign, not math; several `$…$` pieces (`$1$ and
    $2$`, `$21,16$ or $11$`) become one comma-separated list, as in "x = 1 or x = 2"."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    t = text.strip()
    if "$" in t:  # the checks below are for rare forms; most answers skip them (rewards score 10^4/s)
        t = t.replace("\\$", "").replace("$$", "$")
        dollars = t.count("$")
        if dollars >= 4 and (pieces := math_pieces(t)):
            t = ", ".join(p.strip() for p in pieces)
        elif dollars == 1:
            t = _LONE_CURRENCY.sub("", t)
    if BOXED_OPEN in t and (boxed := boxed_answer(t)) is not None:
        t = boxed
    if t and t[0] in "€£¥":
        t = _CURRENCY.sub("", t)
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
