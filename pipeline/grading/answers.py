"""Is this answer right? Strict parsing of final answers by type (numbers, labels, text; choice letters and
expressions through their own modules) and matching against the gold, shared by rewards, filters and checks.

Every parser takes the text of an answer block and returns the parsed value or None. None means "not a single,
unambiguous answer of this type": hedges ("A or B"), lists, empty strings and junk all parse to None and so
score 0. Overlong inputs are refused (`pipeline.grading.normalize.MAX_ANSWER_CHARS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction

from pipeline.grading.choices import parse_choice
from pipeline.grading.normalize import alternatives, balanced, clean_answer, normalize_text

# ---------------------------------------------------------------- numbers

_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+"
_NUMBER = re.compile(rf"^(?:{_NUM})$")
_FRACTION = re.compile(rf"^({_NUM})\s*/\s*({_NUM})$")
_LATEX_FRAC = re.compile(r"^(-?)\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_ASSIGN = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*")
_UNIT = re.compile(
    r"\s*(?:\^\s*\{?\\circ\}?|°|\\%|%|\\text\{\s*[a-zA-Z ]{1,20}\}|\\mathrm\{\s*[a-zA-Z ]{1,20}\}|"
    r"(?<=\d)\s*[a-zA-Z]{1,12}(?:\^?[23])?)$"
)


def parse_number(text: str) -> float | None:
    """A single real number: `12`, `-3.5`, `1,234`, `1e-3`, `3/4`, `\\frac{3}{4}`, with an optional leading
    `x =` and a trailing unit (`cm`, `°`, `\\%`, `\\text{cm}`). Two numbers ("3 or 4", "3, 4") are None."""
    t = clean_answer(text)
    if t is None:
        return None
    t = _ASSIGN.sub("", t)
    for _ in range(2):
        t = _UNIT.sub("", t).strip()
    t = t.replace("−", "-").replace("\\!", "").replace("{,}", ",")
    try:
        if _NUMBER.match(t):
            value = float(t.replace(",", ""))
        elif m := _FRACTION.match(t):
            den = float(m.group(2).replace(",", ""))
            value = float(m.group(1).replace(",", "")) / den if den else math.nan
        elif m := _LATEX_FRAC.match(t):
            value = float(Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1))
        else:
            return None
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def numbers_match(pred: float, gold: float, rel_tol: float = 1e-4, abs_tol: float = 1e-8) -> bool:
    return abs(pred - gold) <= max(abs_tol, rel_tol * abs(gold))


# ---------------------------------------------------------------- free text and labels


def parse_text(text: str) -> str | None:
    t = clean_answer(text)
    if t is None:
        return None
    norm = normalize_text(t)
    return norm or None


# ---------------------------------------------------------------- matching a prediction to the gold


def _choices(info: Mapping) -> list[str] | None:
    c = info.get("choices")
    return list(c) if isinstance(c, (list, tuple)) and c else None


def choice_accuracy(pred: str, info: Mapping) -> float:
    """1 iff the predicted answer is exactly one option letter (strict forms only; see `parse_choice`) equal to
    the gold letter. Hedges, two letters and free text score 0."""
    gold = parse_choice(str(info["ground_truth"]), _choices(info))
    return float(gold is not None and parse_choice(pred, _choices(info)) == gold)


def number_accuracy(pred: str, info: Mapping) -> float:
    """1 iff the prediction is a single number within `number_rel_tol` (default 1e-4, relative) of the gold (of
    one of its alternatives, for a gold written as `$a$ or $b$`)."""
    value = parse_number(pred)
    if value is None:
        return 0.0
    rel_tol = float(info.get("number_rel_tol", 1e-4))
    golds = (parse_number(g) for g in alternatives(str(info["ground_truth"])))
    return float(any(g is not None and numbers_match(value, g, rel_tol=rel_tol) for g in golds))


def _squash(text: str) -> str:
    return "".join(text.split())


def expression_pairs(pred: str, gold: str) -> float | list[tuple[str, str]]:
    """Decide without sympy when possible (the same text up to spacing; both plain numbers; an explosive side),
    else the (gold, prediction) pairs math-verify must check, one per alternative of the gold."""
    from pipeline.grading.mathverify import looks_explosive

    p = clean_answer(pred)
    if p is None:
        return 0.0
    pairs = []
    for alternative in alternatives(gold):
        g = clean_answer(alternative)
        if g is None or looks_explosive(g):  # an explosive gold is a data error: never rewarded
            continue
        if _squash(p) == _squash(g):
            return 1.0
        if looks_explosive(p):
            continue
        pn, gn = parse_number(p), parse_number(g)
        if pn is not None and gn is not None:
            if numbers_match(pn, gn):
                return 1.0
            continue
        pairs.append((g, p))
    return pairs or 0.0


def expression_accuracy(pred: str, info: Mapping) -> float:
    """1 iff math-verify finds the prediction equivalent to the gold expression (`2\\sqrt{5}` = `\\sqrt{20}`),
    decided within a time bound in a worker process; explosive inputs (power towers, huge factorials) score 0."""
    decided = expression_pairs(pred, str(info["ground_truth"]))
    if isinstance(decided, float):
        return decided
    from pipeline.grading.mathverify import default_pool

    return max(default_pool().verify_many(decided))


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


def answer_matches(pred: str, info: Mapping) -> float:
    """1.0 iff `pred` (the text of a final answer) is right for `info["ground_truth"]` under the rule of
    `info["answer_type"]`; 0.0 otherwise, including for answer types without a rule here."""
    fn = ACCURACY.get(info.get("answer_type"))
    return fn(pred, info) if fn is not None and isinstance(pred, str) else 0.0


# ---------------------------------------------------------------- gold answers


def gold_answer_problem(gold: str, answer_type: str, choices: Sequence[str] | None = None) -> str | None:
    """Why a gold answer cannot be scored for its type (None when it can). Such samples are never rewarded:
    `vr1 check-data` reports them before training and every reward scores them 0."""
    if not isinstance(gold, str) or not gold.strip():
        return "empty gold answer"
    if answer_type == "choice":
        letter = parse_choice(gold, list(choices) if choices else None)
        if letter is None:
            return f"choice gold '{gold[:40]}' is not a single option letter"
    elif answer_type == "number":
        if parse_number(gold) is None:
            return f"number gold '{gold[:40]}' does not parse as a number"
    elif answer_type == "expression":
        cleaned = clean_answer(gold)
        if cleaned is None:
            return f"expression gold '{gold[:40]}' is empty or too long"
        from pipeline.grading.mathverify import default_pool, looks_explosive

        if not balanced(cleaned):
            return f"expression gold '{gold[:40]}' does not parse (unbalanced braces)"
        if looks_explosive(cleaned):
            return f"expression gold '{gold[:40]}' is too large to evaluate safely"
        if parse_number(cleaned) is None and not default_pool().parses(cleaned):
            return f"expression gold '{gold[:40]}' does not parse as LaTeX/math"
    elif answer_type in ("text", "label"):
        if parse_text(gold) is None:
            return f"{answer_type} gold '{gold[:40]}' is empty after normalisation"
    elif answer_type in ("bbox", "boxes"):
        from pipeline.grading.boxes import BoxParseError, parse_bbox, parse_boxes

        try:
            parse_bbox(gold) if answer_type == "bbox" else parse_boxes(gold)
        except BoxParseError as e:
            return f"{answer_type} gold does not parse: {e}"
    else:
        return f"unknown answer_type '{answer_type}'"
    return None
