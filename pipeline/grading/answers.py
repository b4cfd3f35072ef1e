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
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from pipeline.grading.choices import parse_choice
from pipeline.grading.exact import exact_equal
from pipeline.grading.normalize import balanced, clean_answer, normalize_text

# ---------------------------------------------------------------- numbers

_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+"
_NUMBER = re.compile(rf"^(?:{_NUM})$")
_FRACTION = re.compile(rf"^({_NUM})\s*/\s*({_NUM})$")
_LATEX_FRAC = re.compile(r"^(-?)\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_ASSIGN = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*")
_UNIT = re.compile(
    r"\s*(?:\^\s*\{?\\circ\}?|°|\\%|%|\\(?:text|mathrm)\{\s*[a-zA-Z ]{1,20}\}(?:\^\s*\{?[23]\}?)?|"
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


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an answer is right, and why: the rule that decided and the forms both sides were read as."""

    accuracy: float
    rule: str
    gold_form: str | None = None
    pred_form: str | None = None


def _choices(info: Mapping) -> list[str] | None:
    c = info.get("choices")
    return list(c) if isinstance(c, (list, tuple)) and c else None


def choice_verdict(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """1 iff the predicted answer is exactly one option letter (strict forms only; see `parse_choice`) equal to
    the gold letter. Hedges, two letters and free text score 0."""
    choices = _choices(info)
    gold = parse_choice(str(info["ground_truth"]), choices)
    if gold is None:
        return Verdict(0.0, "the gold is not a single option letter")
    letter = parse_choice(pred, choices)
    if letter is None:
        return Verdict(0.0, "not exactly one option letter (hedges, two letters, extra words score 0)", gold)
    if letter != gold:
        return Verdict(0.0, "another option letter", gold, letter)
    return Verdict(1.0, "the same option letter", gold, letter)


def number_verdict(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """1 iff the prediction is a single number within `number_rel_tol` (default 1e-4, relative) of the gold."""
    gold = parse_number(str(info["ground_truth"]))
    if gold is None:
        return Verdict(0.0, "the gold is not a number")
    gold_form = f"{gold:g}" if explain else None
    value = parse_number(pred)
    if value is None:
        return Verdict(0.0, "not a single number (units, `x =` and thousands commas are allowed)", gold_form)
    rel_tol = float(info.get("number_rel_tol", 1e-4))
    ok = numbers_match(value, gold, rel_tol=rel_tol)
    return Verdict(float(ok), _tolerance_rule(ok, rel_tol), gold_form, f"{value:g}" if explain else None)


@lru_cache(maxsize=64)
def _tolerance_rule(equal: bool, rel_tol: float) -> str:
    return f"{'equal' if equal else 'different'} numbers (relative tolerance {rel_tol:g})"


def _squash(text: str) -> str:
    return "".join(text.split())


def expression_pair(pred: str, gold: str, exact: bool = True) -> Verdict | tuple[str, str]:
    """Decide without sympy when possible (the same text up to spacing; both plain numbers; an explosive side;
    with `exact`, simple expressions whose verdict exact arithmetic gives as math-verify would: see
    `pipeline.grading.exact`), else the cleaned (gold, prediction) pair math-verify must check."""
    from pipeline.grading.mathverify import looks_explosive

    p, g = clean_answer(pred), clean_answer(gold)
    if p is None:
        return Verdict(0.0, "no answer (empty, or longer than an answer can be)")
    if g is None or looks_explosive(g):  # an explosive gold is a data error: never rewarded
        return Verdict(0.0, "the gold is refused (empty, power tower, huge factorial)", g, p)
    if _squash(p) == _squash(g):
        return Verdict(1.0, "the same expression up to spacing", g, p)
    if looks_explosive(p):
        return Verdict(0.0, "the prediction is refused (power tower, huge factorial, too long)", g, p)
    pn, gn = parse_number(p), parse_number(g)
    if pn is not None and gn is not None:
        ok = numbers_match(pn, gn)
        return Verdict(float(ok), _tolerance_rule(ok, 1e-4), f"{gn:g}", f"{pn:g}")
    if exact:
        same = exact_equal(g, p)
        if same is not None:
            return Verdict(float(same), _EXACT_RULES[same], g, p)
    return g, p


_EXACT_RULES = {
    True: "exact arithmetic: equal (rationals, roots, pi, polynomials)",
    False: "exact arithmetic: different (rationals, roots, pi, polynomials)",
}


def expression_verdict(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """1 iff math-verify finds the prediction equivalent to the gold expression (`2\\sqrt{5}` = `\\sqrt{20}`),
    decided within a time bound in a worker process; explosive inputs (power towers, huge factorials) score 0.
    With `explain`, the forms are math-verify's own readings of both sides."""
    # an explanation shows math-verify's own reading of both sides, so it skips the exact fast path
    decided = expression_pair(pred, str(info["ground_truth"]), exact=not explain)
    if isinstance(decided, Verdict):
        return decided
    from pipeline.grading.mathverify import default_pool

    gold, pred_text = decided
    if explain:  # the explain call decides too: one comparison, not two
        value, gold, pred_text = default_pool().explain(gold, pred_text)
    else:
        value = default_pool().verify(gold, pred_text)
    rule = "math-verify: equivalent" if value == 1.0 else "math-verify: not equivalent (or not parsed in time)"
    return Verdict(value, rule, gold, pred_text)


def text_verdict(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """1 iff the normalised prediction (lower case, no punctuation or articles) equals the normalised gold, or,
    when `text_fuzzy` is set, their rapidfuzz ratio reaches it. No substring matching (that was hacked)."""
    gold, value = parse_text(str(info["ground_truth"])), parse_text(pred)
    if gold is None:
        return Verdict(0.0, "the gold is empty after normalisation")
    if value is None:
        return Verdict(0.0, "no answer after normalisation", gold)
    if value == gold:
        return Verdict(1.0, "the same text after normalisation (case, punctuation, articles)", gold, value)
    threshold = info.get("text_fuzzy")
    if threshold:
        from rapidfuzz import fuzz

        ratio = fuzz.ratio(value, gold)
        ok = ratio >= float(threshold)
        return Verdict(float(ok), f"fuzzy ratio {ratio:.0f} {'>=' if ok else '<'} {float(threshold):g}", gold, value)
    return Verdict(0.0, "different text after normalisation", gold, value)


def label_verdict(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """Classification: 1 iff the prediction is exactly one label equal to the gold after normalisation (a
    list of labels, "X or Y", or a label with extra words scores 0). An underscore reads as a space: published
    label sets name classes `american_bulldog` (Pets37) and a model writes "American Bulldog"."""
    gold, value = (parse_text(str(x).replace("_", " ")) for x in (info["ground_truth"], pred))
    if gold is None:
        return Verdict(0.0, "the gold is empty after normalisation")
    if value != gold:
        return Verdict(0.0, "not exactly the gold label (lists, hedges and extra words score 0)", gold, value)
    return Verdict(1.0, "the gold label", gold, value)


VERDICTS = {
    "choice": choice_verdict,
    "number": number_verdict,
    "expression": expression_verdict,
    "text": text_verdict,
    "label": label_verdict,
}


def grade_answer(pred: str, info: Mapping, explain: bool = False) -> Verdict:
    """The verdict on `pred` (the text of a final answer) for `info["ground_truth"]` under the rule of
    `info["answer_type"]`."""
    fn = VERDICTS.get(info.get("answer_type"))
    if fn is None:
        return Verdict(0.0, f"no answer rule for answer type {info.get('answer_type')!r} (boxes: see the rewards)")
    if not isinstance(pred, str):
        return Verdict(0.0, "no answer")
    return fn(pred, info, explain)


def answer_matches(pred: str, info: Mapping) -> float:
    """1.0 iff `pred` (the text of a final answer) is right for `info["ground_truth"]` under the rule of
    `info["answer_type"]`; 0.0 otherwise, including for answer types without a rule here."""
    return grade_answer(pred, info).accuracy


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
