"""Rule filters for cold-start samples. Each rule is named, switchable, and returns the reason it drops a sample
(None to keep it); every rule runs on every sample so a dropped sample keeps all its reasons. Coherence is an
edit, not a drop: the reasoner read a description, the student will see an image.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from pipeline.config import check_ranges
from pipeline.grading.answers import answer_matches, grade_answer
from pipeline.grading.blocks import ANSWER_CLOSE, ANSWER_OPEN, TAGS, format_response
from pipeline.grading.normalize import normalize_text

RULES = (
    "answer_match",
    "format",
    "consistency",
    "truncated",
    "repetition",
    "mixed_language",
    "length",
    "near_duplicate",
)


@dataclass
class FilterConfig:
    """Which rules run and their thresholds."""

    rules: dict[str, bool] = field(default_factory=lambda: {r: True for r in RULES})
    coherence_rewrite: bool = True
    number_rel_tol: float = 1e-4
    text_fuzzy: float = 90.0  # rapidfuzz ratio for text answers
    min_thinking_chars: int = 40
    max_thinking_chars: int = 60_000
    repetition_ngram: int = 8
    max_repeated_ngram_share: float = 0.35
    max_repeated_lines: int = 4
    max_foreign_run: int = 6  # longest run of another script's letters allowed (e.g. CJK inside English)
    near_duplicate_jaccard: float = 0.9

    def __post_init__(self):
        check_ranges(
            self,
            number_rel_tol=(0, 1),
            text_fuzzy=(0, 100),
            min_thinking_chars=(0, None),
            max_thinking_chars=(1, None),
            repetition_ngram=(1, None),
            max_repeated_ngram_share=(0, 1),
            max_repeated_lines=(2, None),
            max_foreign_run=(1, None),
            near_duplicate_jaccard=(0, 1),
        )
        unknown = set(self.rules) - set(RULES)
        if unknown:
            raise ValueError(f"rules: unknown rule(s) {sorted(unknown)}; known: {list(RULES)}")
        self.rules = {r: self.rules.get(r, True) for r in RULES}


@dataclass
class Candidate:
    """A sample whose three steps succeeded, as the filter sees it."""

    id: str
    source: str
    answer_type: str
    gold: str
    choices: list[str] | None
    question: str
    thinking: str  # the reasoner's thinking (separate field or inline <think>)
    answer_text: str  # the reasoner's visible output (after the thinking)
    final_answer: str | None
    finish_reasons: dict[str, str]
    reasons: list[dict] = field(default_factory=list)
    edits: list[dict] = field(default_factory=list)

    def response(self, layout: str = "vr1") -> str:
        """The cold-start target: `<think>…</think><answer>…</answer>` (`layout`: see ANSWER_LAYOUTS)."""
        return format_response(self.thinking, self.final_answer or "", layout)


# ---------------------------------------------------------------- drop rules: (candidate, cfg) -> reason | None

_CONCLUSION = re.compile(
    r"(?:final answer\s*(?:is)?\s*[:：]?|the (?:correct )?answer is|answer\s*[:：]|\\boxed\{)\s*([^\n]{1,80}?)"
    r"(?:\}|\.|\n|$)",
    re.I,
)


def _info(c: Candidate, cfg: FilterConfig) -> dict:
    return {
        "ground_truth": c.gold,
        "answer_type": c.answer_type,
        "choices": c.choices,
        "number_rel_tol": cfg.number_rel_tol,
        "text_fuzzy": cfg.text_fuzzy,
    }


def rule_answer_match(c: Candidate, cfg: FilterConfig) -> str | None:
    if c.final_answer is None:
        return "the reasoner gave no final answer"
    verdict = grade_answer(c.final_answer, _info(c, cfg), explain=True)
    if verdict.accuracy < 1.0:  # the same explanation `vr1 grade` prints
        read = f"; read as {verdict.pred_form!r} vs {verdict.gold_form!r}" if verdict.gold_form is not None else ""
        return (
            f"final answer {c.final_answer[:60]!r} does not match the ground truth {c.gold[:60]!r}: "
            f"{verdict.rule}{read}"
        )
    return None


def rule_format(c: Candidate, cfg: FilterConfig) -> str | None:
    n_answer = c.answer_text.count(ANSWER_OPEN)
    if n_answer != 1 or c.answer_text.count(ANSWER_CLOSE) != 1:
        return f"expected exactly one <answer> block in the output, found {n_answer}"
    if any(t in c.thinking for t in TAGS):
        return "the thinking contains think/answer tags"
    if not c.thinking.strip():
        return "no thinking"
    return None


def rule_consistency(c: Candidate, cfg: FilterConfig) -> str | None:
    """The thinking's own last stated conclusion must agree with the answer tag."""
    if c.final_answer is None:
        return None
    found = _CONCLUSION.findall(c.thinking[-3000:])
    if not found:
        return None
    stated = found[-1].strip().strip("$*").strip()
    info = {**_info(c, cfg), "ground_truth": c.final_answer}
    if stated and answer_matches(stated, info) < 1.0 and normalize_text(stated) != normalize_text(c.final_answer):
        return f"the thinking concludes {stated[:40]!r} but the answer tag says {c.final_answer[:40]!r}"
    return None


def rule_truncated(c: Candidate, cfg: FilterConfig) -> str | None:
    cut = [step for step, reason in c.finish_reasons.items() if reason == "length"]
    return f"truncated at max_tokens in step(s) {', '.join(cut)}" if cut else None


def rule_repetition(c: Candidate, cfg: FilterConfig) -> str | None:
    lines = [ln.strip() for ln in c.thinking.splitlines() if ln.strip()]
    run = best = 1
    for a, b in pairwise(lines):
        run = run + 1 if a == b else 1
        best = max(best, run)
    if len(lines) > 1 and best >= cfg.max_repeated_lines:
        return f"the same line repeats {best} times in a row"
    words = c.thinking.split()[:50_000]
    n = cfg.repetition_ngram
    if len(words) >= 4 * n:
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        repeated = sum(v for v in grams.values() if v > 1) / max(1, sum(grams.values()))
        if repeated > cfg.max_repeated_ngram_share:
            return f"{repeated:.0%} of {n}-word spans are repeats (loop)"
    return None


def _script(ch: str) -> str | None:
    if ch.isascii():  # most characters: no Unicode name lookup (3/4 of the filter's time at 200K records)
        return "latin" if ch.isalpha() else None
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")):
        return "cjk"
    if name.startswith("CYRILLIC"):
        return "cyrillic"
    if name.startswith(("LATIN",)) or ch.isascii():
        return "latin"
    return "other"


def _main_script(text: str) -> str:
    counts = Counter(s for s in map(_script, text) if s)
    return counts.most_common(1)[0][0] if counts else "latin"


def rule_mixed_language(c: Candidate, cfg: FilterConfig) -> str | None:
    """A run of letters from another script than the question's (R1 drifts into Chinese mid-thought)."""
    main = _main_script(c.question)
    if main == "latin" and c.thinking.isascii():  # no letter of another script can be in it
        return None
    run, start = 0, 0
    for i, ch in enumerate(c.thinking):
        s = _script(ch)
        if s is not None and s != main and s != "other":
            if run == 0:
                start = i
            run += 1
            if run > cfg.max_foreign_run:
                return f"mixed-language run in the thinking: {c.thinking[start : start + 20]!r}"
        elif s is not None or not ch.isspace():
            run = 0
    return None


def rule_length(c: Candidate, cfg: FilterConfig) -> str | None:
    n = len(c.thinking)
    if n < cfg.min_thinking_chars:
        return f"thinking too short ({n} < {cfg.min_thinking_chars} characters)"
    if n > cfg.max_thinking_chars:
        return f"thinking too long ({n} > {cfg.max_thinking_chars} characters)"
    return None


DROP_RULES: dict[str, Callable[[Candidate, FilterConfig], str | None]] = {
    "answer_match": rule_answer_match,
    "format": rule_format,
    "consistency": rule_consistency,
    "truncated": rule_truncated,
    "repetition": rule_repetition,
    "mixed_language": rule_mixed_language,
    "length": rule_length,
}


# ---------------------------------------------------------------- near duplicates (MinHash + LSH)

_BANDS, _ROWS = 16, 4  # 64 hashes; candidates share one band: ~0.9 Jaccard found with high probability


_PERM = np.random.default_rng(20250306).integers(1, 2**63 - 1, size=(2, _BANDS * _ROWS), dtype=np.uint64)


def _shingles(text: str, k: int = 5) -> set[str]:
    words = normalize_text(text).split()
    return {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}


def _minhash(text: str) -> np.ndarray:
    """64 MinHash values: one 64-bit hash per shingle, 64 universal-hash permutations (uint64 wrap-around)."""
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in _shingles(text)),
        dtype=np.uint64,
    )
    with np.errstate(over="ignore"):
        return (hashes[:, None] * _PERM[0] + _PERM[1]).min(axis=0)


def _jaccard(a: str, b: str) -> float:
    x, y = _shingles(a), _shingles(b)
    return len(x & y) / max(1, len(x | y))


def mark_near_duplicates(cands: list[Candidate], cfg: FilterConfig) -> None:
    """Among candidates still kept, drop each one whose thinking nearly repeats an earlier kept one's."""
    buckets: dict[tuple[int, tuple[int, ...]], list[Candidate]] = {}
    for c in cands:
        if c.reasons:
            continue
        sig = _minhash(c.thinking)
        keys = [(b, tuple(sig[b * _ROWS : (b + 1) * _ROWS].tolist())) for b in range(_BANDS)]
        seen: set[str] = set()
        for key in keys:
            for other in buckets.get(key, []):
                if other.id in seen:
                    continue
                seen.add(other.id)
                j = _jaccard(c.thinking, other.thinking)
                if j >= cfg.near_duplicate_jaccard:
                    c.reasons.append(
                        {"rule": "near_duplicate", "reason": f"near-duplicate of {other.id} (Jaccard {j:.2f})"}
                    )
                    break
            if c.reasons:
                break
        if not c.reasons:
            for key in keys:
                buckets.setdefault(key, []).append(c)


# ---------------------------------------------------------------- coherence rewriting (an edit, not a drop)

COHERENCE = [
    (
        re.compile(r"\b(?:the|this) (?:image )?description (?:says|states|mentions|notes|indicates|shows)\b", re.I),
        "the image shows",
    ),
    (re.compile(r"\b(according to|based on|from|in) the (?:image )?description\b", re.I), r"\1 the image"),
    (re.compile(r"\bas described\b", re.I), "as shown"),
    (re.compile(r"\bthe (?:image )?description\b", re.I), "the image"),
    (re.compile(r"\b(?:is|are|was|were) described\b", re.I), lambda m: m.group(0).split()[0] + " shown"),
]


def rewrite_coherence(c: Candidate) -> None:
    for pattern, repl in COHERENCE:
        new, n = pattern.subn(repl, c.thinking)
        if n:
            c.edits.append({"rule": "coherence", "pattern": pattern.pattern, "count": n})
            c.thinking = new


def apply_filters(cands: list[Candidate], cfg: FilterConfig) -> None:
    """Fill each candidate's `reasons` (empty = kept) and `edits`, in place."""
    for c in cands:
        if cfg.coherence_rewrite:
            rewrite_coherence(c)
        for name, rule in DROP_RULES.items():
            if cfg.rules.get(name):
                reason = rule(c, cfg)
                if reason:
                    c.reasons.append({"rule": name, "reason": reason})
    if cfg.rules.get("near_duplicate"):
        mark_near_duplicates(cands, cfg)
