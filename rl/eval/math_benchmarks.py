"""The four multimodal math benchmarks of the paper, each read from its published layout and scored by its own
official rule: MathVista, MathVerse, MM-Math and DynaMath.

The official scripts end in an LLM (answer extraction for MathVista and MathVerse, a 0/1 judge for MathVerse).
Here the model's `<answer>` block takes the extractor's place (`rl.eval.benchmark.extract`); where a response has
no such block, each benchmark applies the deterministic part of its own extraction and reports the item as
"fallback". No LLM is called. Each class's docstring lists where it departs from the official script.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.grading.answers import grade_answer, numbers_match, parse_number
from pipeline.grading.blocks import final_answer
from pipeline.grading.choices import extract_choices, parse_choice
from pipeline.grading.normalize import BOXED_OPEN, boxed_answer, boxed_spans, clean_answer
from pipeline.io import atomic_write_bytes
from rl.eval.benchmark import Benchmark, EvalItem, extract

# ---------------------------------------------------------------- shared helpers


def _read_records(path: Path) -> list[dict] | dict:
    """A JSON document (object or list), JSON Lines, or a parquet file as a list of rows."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # a .json file written as JSON Lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", str(text)) or "item"


def _image_path(cell: Any, item_id: str, root: Path, cache_dir: Path) -> str | None:
    """An absolute image path for an image cell: a relative path (under `root`), or an HF image struct
    `{bytes, path}` whose bytes are written once, atomically, to `cache_dir/<id><suffix>`."""
    if cell is None or cell == "":
        return None
    if isinstance(cell, dict):
        data, rel = cell.get("bytes"), cell.get("path")
        if data:
            suffix = Path(rel).suffix if rel and Path(rel).suffix else ".png"
            target = cache_dir / f"{_safe_name(item_id)}{suffix}"
            if not (target.is_file() and target.read_bytes() == data):
                atomic_write_bytes(target, data)
            return str(target.resolve())
        cell = rel
        if not cell:
            return None
    p = Path(str(cell))
    return str((p if p.is_absolute() else root / p).resolve())


def _cache_dir(path: Path) -> Path:
    """Where images embedded in a parquet file are written: `<parquet stem>_images/` beside it."""
    return path.with_name(f"{path.stem}_images")


def _breakdown(items: Sequence[EvalItem], scores: Sequence[dict], key: str) -> dict[str, dict]:
    """Accuracy per value of `item.meta[key]` (a list-valued field counts the item under each of its values)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item, score in zip(items, scores, strict=True):
        value = item.meta.get(key)
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            groups[str(v)].append(float(score["correct"]))
    return {v: {"n": len(c), "correct": sum(c), "accuracy": sum(c) / len(c)} for v, c in sorted(groups.items()) if c}


def _limited(items: list[EvalItem], limit: int | None) -> list[EvalItem]:
    return items[:limit] if limit is not None and limit >= 0 else items


# ---------------------------------------------------------------- MathVista

_MV_HINTS = {
    "multi_choice": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
    "at the end.",
    "float1": "Please answer the question requiring a floating-point number with one decimal place and provide the "
    "final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Please answer the question requiring a floating-point number with two decimal places and provide the "
    "final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
    "[1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}
_MV_QUICK = re.compile(r'The answer is "(.*)"\.')
_MV_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")


def _mathvista_query(rec: dict) -> str:
    """The zero-shot query as the published `data/query.json` words it (hint, question with its unit, choices),
    for a testmini.json given without its query.json (evaluation/build_query.py, `create_one_query`)."""
    qtype, atype = rec.get("question_type"), rec.get("answer_type")
    if qtype == "multi_choice":
        hint = _MV_HINTS["multi_choice"]
    elif atype == "float":
        hint = _MV_HINTS["float2" if _precision(rec.get("precision")) == 2 else "float1"]
    else:
        hint = _MV_HINTS.get(atype or "", _MV_HINTS["integer"])
    question = f"Question: {rec['question']}" + (f" (Unit: {rec['unit']})" if rec.get("unit") else "")
    lines = [f"Hint: {hint}", question]
    if rec.get("choices"):
        lines += ["Choices:"] + [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(rec["choices"])]
    return "\n".join(lines)


def _precision(value) -> int | None:
    try:
        return int(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None
    except (TypeError, ValueError):
        return None


def _edit_distance(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b)


def mathvista_normalize(extraction: str, gold: dict) -> str | None:
    """The official `normalize_extracted_answer` (lupantech/MathVista evaluation/calculate_score.py), restated:
    multi_choice: the first `(X)` anywhere → X upper-cased; a bare in-range upper-case letter → that choice's text;
    any other text → the choice nearest by Levenshtein distance (first wins ties). integer: str(int(float(x)))
    (truncates); float: str(round(float(x), precision)); list: str(x). None when the conversion fails."""
    choices = gold.get("choices") or []
    if gold["question_type"] == "multi_choice":
        text = extraction.strip()
        m = _MV_PAREN_LETTER.findall(text)
        if m:
            text = m[0].upper()
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        if text in letters:
            return choices[letters.index(text)]
        if not choices:
            return None
        distances = [_edit_distance(text, c) for c in choices]
        return choices[distances.index(min(distances))]
    atype = gold["answer_type"]
    try:
        if atype == "integer":
            return str(int(float(extraction)))
        if atype == "float":
            return str(round(float(extraction), int(gold["precision"])))
    except (TypeError, ValueError, OverflowError):
        return None
    return str(extraction)  # list (and, outside testmini, free-form text): compared as a string


def mathvista_quick_extract(response: str, gold: dict) -> str | None:
    """The deterministic part of the official `extract_answer` (evaluation/extract_answer.py), before its LLM step:
    a response that already is one of the choices; for integer/float answers, a response that parses as one; the
    pattern `The answer is "…".`. None where only the LLM extractor would have found an answer."""
    text = response.strip()
    if not text:
        return None
    if gold["question_type"] == "multi_choice" and text in (gold.get("choices") or []):
        return text
    if gold["answer_type"] == "integer":
        try:
            return str(int(text))
        except ValueError:
            pass
    if gold["answer_type"] == "float":
        try:
            return str(float(text))
        except ValueError:
            pass
    m = _MV_QUICK.search(response)
    return m.group(1) if m else None


class MathVista(Benchmark):
    """MathVista testmini (lupantech/MathVista; HF AI4Math/MathVista).

    Layouts: `testmini.json`, one object keyed by `pid` (images relative to `image_root`, default the file's
    folder; the prompt from the item's `query`, else from `query.json` beside it, else rebuilt the way
    evaluation/build_query.py writes the zero-shot query); or the HF parquet (`data/testmini-*.parquet`) with `query`
    and the image embedded in `decoded_image` (written once to `<parquet stem>_images/`). id = `pid`.

    Prompt: the item's `query` (what evaluation/generate_response.py feeds the model).

    Score (evaluation/extract_answer.py + evaluation/calculate_score.py): the extraction is the `<answer>` block's
    text (its `Final Answer:` part), stripped of `$…$`/`\\boxed{}`/a final period as the LLM extractor would; a
    response without the block goes through the script's deterministic extraction (`mathvista_quick_extract`,
    source "fallback"). The extraction is normalised exactly as calculate_score.py does (`mathvista_normalize`) and
    compared by string equality with the stored `answer`.

    Departures: no LLM extractor (a response the rules cannot read scores 0 with source "none"; the official script
    would ask GPT and, with an empty extraction on a multiple-choice item, still map "" to the nearest choice);
    free-form `text` answers (absent from testmini; the official normaliser has no branch for them and crashes)
    are compared as strings.
    """

    name = "mathvista"

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        raw = _read_records(path)
        cache = _cache_dir(path)
        root = Path(image_root) if image_root else path.parent
        if isinstance(raw, dict):  # testmini.json: keyed by pid
            records = [{"pid": str(k), **v} for k, v in raw.items()]
            qfile = path.with_name("query.json")
            queries = json.loads(qfile.read_text(encoding="utf-8")) if qfile.is_file() else {}
        else:
            records, queries = list(raw), {}
        items = []
        for rec in records:
            pid = str(rec["pid"])
            query = rec.get("query") or queries.get(pid) or _mathvista_query(rec)
            image = _image_path(rec.get("decoded_image") or rec.get("image"), pid, root, cache)
            meta = dict(rec.get("metadata") or {})
            meta.update(question_type=rec.get("question_type"), answer_type=rec.get("answer_type"))
            gold = {
                "answer": str(rec["answer"]),
                "choices": list(rec["choices"]) if rec.get("choices") is not None else None,
                "question_type": rec["question_type"],
                "answer_type": rec["answer_type"],
                "precision": _precision(rec.get("precision")),
                "unit": rec.get("unit"),
            }
            items.append(EvalItem(id=pid, question=query, images=[image] if image else [], gold=gold, meta=meta))
        return _limited(items, limit)

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response, lambda r: mathvista_quick_extract(r, item.gold))
        if source == "answer_block":
            text = clean_answer(text) or text
        if text is None:
            return {"correct": 0.0, "extracted": None, "source": "none", "prediction": None}
        prediction = mathvista_normalize(text, item.gold)
        correct = prediction is not None and prediction == item.gold["answer"]
        return {"correct": float(correct), "extracted": text, "source": source, "prediction": prediction}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        # the breakdowns calculate_score.py prints (its `target_keys`)
        for key in ("category", "task", "context", "grade", "language", "source", "skills", "question_type"):
            out[f"by_{key}"] = _breakdown(items, scores, key)
        out["by_answer_type"] = _breakdown(items, scores, "answer_type")
        return out


# ---------------------------------------------------------------- MathVerse

_MVERSE_OPTION = re.compile(r"^\s*\(?([A-H])\)?\s*[:.：)]\s*(.*?)\s*$")
_MVERSE_LETTERS = re.compile(r"^\(?([A-H])\)?(?:\s*(?:,|;|\band\b|\n|\s)\s*\(?([A-H])\)?)+$")
_INTERVAL = re.compile(r"[(\[][^()\[\]]*,[^()\[\]]*[)\]]")
_LATEX_NOISE = re.compile(r"\\left|\\right|\\[()\[\]]|\$|\\!|\\,|\\;|~")
_DEGREE = re.compile(r"\^\s*\{?\\circ\}?|°")
_WRAPPED_UNIT = re.compile(r"\\(?:mathrm|text|mbox)\s*\{\s*([^{}]*)\}")
_NUMBER_WITH_UNIT = re.compile(
    r"^([-+−]?(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s*(?:\\%|%)?\s*(?:[a-zA-Z][a-zA-Z .]{0,20}(?:\^\s*\{?[23]\}?)?)?$"
)
_LABEL = re.compile(r"^[A-Za-z][A-Za-z .]{0,30}=\s*")


def mathverse_options(question: str) -> list[str] | None:
    """The options a MathVerse question writes inside its text, in order A, B, C…: the `A. 3` / `(B) 4` lines
    `pipeline.grading.choices.extract_choices` reads, else the `Choices:` (or `Choice:`) block MathVerse itself
    writes (`A:40°`, `A.1`: no space after the label, which extract_choices does not accept)."""
    found = extract_choices(question)
    if found:
        return found
    lines = question.splitlines()
    for i, line in enumerate(lines):
        if line.strip().rstrip(":").lower() in ("choices", "choice"):
            options = []
            for opt in lines[i + 1 :]:
                m = _MVERSE_OPTION.match(opt)
                if not m or m.group(1) != chr(ord("A") + len(options)):
                    break
                options.append(m.group(2))
            if len(options) >= 2:
                return options
    return None


def _squash_math(text: str) -> str:
    """Compare-ready text: no `$`, `\\left`/`\\right`, `\\(`…`\\)`, thin spaces, degrees, whitespace; lower case."""
    t = _LATEX_NOISE.sub("", text)
    t = _DEGREE.sub("", t)
    return "".join(t.split()).lower().rstrip(".")


def _letters(text: str, options: list[str] | None) -> set[str] | None:
    """The option letter(s) an answer names: one letter in any form parse_choice reads, several bare letters
    (`C, D`, `A and C`), or an option's content written instead of its letter."""
    letter = parse_choice(text, options)
    if letter is not None:
        return {letter}
    t = (clean_answer(text) or "").strip()
    m = _MVERSE_LETTERS.match(t)
    if m:
        return set(re.findall(r"[A-H]", t))
    if options and t:
        squashed = _squash_math(t)
        hits = [chr(ord("A") + i) for i, o in enumerate(options) if _squash_math(o) == squashed]
        if len(hits) == 1:
            return set(hits)
    return None


def _mathverse_number(text: str) -> float | None:
    """A number written with a label and a unit the way MathVerse golds are (`Volume $=169.6 \\mathrm{~cm}^{3}$`,
    `56.55 units $^{3}$`, `319 ^\\circ T`, `$r=7.00$`)."""
    t = _WRAPPED_UNIT.sub(r" \1", text.replace("\\$", ""))
    t = _LATEX_NOISE.sub(" ", t)
    t = _DEGREE.sub(" ", t).strip().rstrip(".").strip()
    t = _LABEL.sub("", t).strip()
    value = parse_number(t)
    if value is not None:
        return value
    m = _NUMBER_WITH_UNIT.match(t.replace("{}", ""))
    if m:
        try:
            return float(m.group(1).replace(",", "").replace("−", "-"))
        except ValueError:
            return None
    return None


def mathverse_judge(pred: str, gold: dict) -> tuple[bool, str]:
    """(consistent?, the rule that decided) for an extracted answer, by the judge prompt's stated rule
    (ZrrSkywalker/MathVerse evaluation/prompts.py `demo_prompt_score`)."""
    answer = gold["answer"].strip()
    if gold["question_type"] == "multi-choice":
        options = gold.get("options")
        want = _letters(answer, options)
        if want is None:  # a gold that is neither letters nor an option's content: exact text
            return _squash_math(pred) == _squash_math(answer), "choice gold as text"
        got = _letters(pred, options)
        return got == want, "option letters" if got is not None else "no option letter"
    if _squash_math(pred) == _squash_math(answer):
        return True, "same text"
    if _INTERVAL.search(answer):  # intervals / tuples: exact, as the judge's (-2,1] vs (-2, 1) example
        return False, "interval or tuple: exact match only"
    g, p = _mathverse_number(answer), _mathverse_number(pred)
    if g is not None and p is not None:
        return numbers_match(p, g), "numbers (relative tolerance 1e-4)"
    cleaned_gold = _WRAPPED_UNIT.sub(r"\1", answer)
    verdict = grade_answer(_WRAPPED_UNIT.sub(r"\1", pred), {"answer_type": "expression", "ground_truth": cleaned_gold})
    return verdict.accuracy == 1.0, verdict.rule


_FALLBACK_ANSWER_IS = re.compile(r"answer\s+is\s*[:：]?\s*(.+?)\s*$", re.I | re.M)


def generic_fallback(response: str) -> str | None:
    """What a response without an `<answer>` block committed to: its last `\\boxed{}` (a list when boxes stand
    side by side), a `Final Answer:` line, or the last `… answer is X` line."""
    if BOXED_OPEN in response and (boxed := boxed_answer(response)) is not None:
        return boxed
    text = final_answer(response)
    if text is not None:
        return text
    found = _FALLBACK_ANSWER_IS.findall(response)
    return found[-1].strip().rstrip(".") or None if found else None


class MathVerse(Benchmark):
    """MathVerse testmini (ZrrSkywalker/MathVerse; HF AI4Math/MathVerse).

    Layouts: `testmini.json` (also `testmini_text_only.json`), a JSON list with `sample_index`, `problem_index`,
    `problem_version`, `question`, `image` (relative to `image_root`, default the file's folder; empty for Text
    Only), `answer`, `question_type` (`multi-choice` | `free-form`), `metadata`, `query_wo`, `query_cot`; or the HF
    parquet (`testmini.parquet`) whose `image` is an embedded image (written once to `<parquet stem>_images/`) and
    which adds `question_for_eval`. id = `sample_index`.

    Prompt: `query_cot` ("Please first conduct reasoning, and then answer …"), the README's CoT evaluation prompt:
    Vision-R1 is a reasoning model; the README's primary leaderboard metric uses `query_wo` instead.

    Score: the official scoring is a GPT judge (evaluation/score_answer_s2.py with prompts.py `demo_prompt_score`);
    its stated rule is applied deterministically (`mathverse_judge`) to the `<answer>` text (no `<answer>` block:
    `generic_fallback`, source "fallback"):
    - multi-choice: the option letter(s) must match completely; the option's content written instead of its
      letter counts (the judge's example 5), a letter with the other option's content does not (example 2).
      Options are read from the question text (`question_for_eval` when present, as VLMEvalKit and lmms-eval
      judge on it), by `extract_choices` or MathVerse's own `Choices:` block. Golds written as `(C)`, as an
      option's content (`False`, `090^\\circ T`) or as several letters (`C\\nD`) are read as letters.
    - free-form: the same text (up to spacing, `$`, `\\left`/`\\right`, degree signs) counts; intervals and tuples
      need that exact match (example 1: `(-2,1]` vs `(-2, 1)` is 0); numbers (labels such as `Volume =` and
      trailing units dropped) match within relative 1e-4; anything else is decided by math-verify
      (`grade_answer`, answer_type "expression"), which also reads equations (`y=5-2x` = `y=-2x+5`).

    Differences from the GPT judge: no unit conversion (its `0.5m` vs `50cm` example scores 0 here); no reading
    of answers in prose ("the domain is …") beyond exact text; a wrong option text after the right letter
    (`C. 7` when C is `8`) scores 0 (the judge may look at the letter only); a Vision Only item, whose options
    are only in the image, is judged on letters alone; the judge's own failure modes (retries, a `category` field
    the data lacks, an empty question for Vision Only) do not exist here.
    """

    name = "mathverse"
    prompt_field = "query_cot"

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        records = _read_records(path)
        if isinstance(records, dict):
            records = list(records.values())
        root = Path(image_root) if image_root else path.parent
        cache = _cache_dir(path)
        items = []
        for rec in records:
            sid = str(rec["sample_index"])
            question_text = rec.get("question_for_eval") or rec.get("question") or ""
            image = _image_path(rec.get("image"), sid, root, cache)
            gold = {
                "answer": str(rec["answer"]),
                "question_type": rec["question_type"],
                "options": mathverse_options(question_text) if rec["question_type"] == "multi-choice" else None,
            }
            meta = dict(rec.get("metadata") or {})
            meta.update(problem_version=rec.get("problem_version"), problem_index=str(rec.get("problem_index")))
            meta["question_type"] = rec["question_type"]
            query = rec.get(self.prompt_field) or rec.get("query_cot") or rec.get("question") or ""
            items.append(EvalItem(id=sid, question=query, images=[image] if image else [], gold=gold, meta=meta))
        return _limited(items, limit)

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response, generic_fallback)
        if text is None:
            return {"correct": 0.0, "extracted": None, "source": "none", "rule": "no answer"}
        ok, rule = mathverse_judge(text, item.gold)
        return {"correct": float(ok), "extracted": text, "source": source, "rule": rule}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        out["by_problem_version"] = _breakdown(items, scores, "problem_version")
        out["by_subject"] = _breakdown(items, scores, "subject")
        out["by_question_type"] = _breakdown(items, scores, "question_type")
        return out


# ---------------------------------------------------------------- MM-Math

_MM_UNITS = (
    "\\text{cm}^2",
    "\\text{cm}",
    "\\,cm",
    "\\text{ cm}",
    "cm",
    "\\text{分米}^2",
    "cm^{2}",
    "\\ \\text{m}",
    "\\text{米}",
)
_MM_SYMBOLS = (
    ("\\left", ""),
    ("\\right", ""),
    ("厘米", ""),
    ("，", ","),
    ("$", ""),
    ("（", "("),
    ("）", ")"),
    ("\\infty", "oo"),
    ("\\colon ", ":"),
    ("＋", "+"),
    ("\\, ", ""),
    ("\\,", ""),
    ("^\\circ", ""),
    ("^{\\circ}", ""),
)
_MM_STRIP = "\n,.:;^_=+`!@#%^&*~，。"
_MM_TRIG_DEG = re.compile(r"(\\sin|\\cos|\\tan)(\d+)")
_MM_MATHRM = re.compile(r"\\(?:mathrm|mathbf)\{~?([^}]*)\}")
_HAN = re.compile(r"[\u4e00-\u9fff]+")


def _mm_boxed(text: str) -> str | None:
    """Every top-level `\\boxed{…}` content joined by commas (eval.py `extract_boxed_content`); None when a box
    is left open (the official script raises there, and the item scores 0)."""
    spans = boxed_spans(text)
    rest = text[spans[-1][1] :] if spans else text
    if not spans or BOXED_OPEN in rest:
        return None
    return "".join(text[s + len(BOXED_OPEN) : e - 1] + "," for s, e in spans)


def _mm_clean(expr: str) -> str:
    """eval.py `sepcial_symbol_replace`, restated: units (cm, 米, a trailing m), `\\in` prefix, the symbol map
    (degree signs, `\\left`/`\\right`, full-width punctuation, `\\infty`→`oo`), `\\sin30`→`\\sin((30/180)\\pi)`,
    surrounding punctuation, `\\mathrm{~x}`→`x`."""
    for unit in _MM_UNITS:
        expr = expr.replace(unit, "")
    expr = expr.strip()
    expr = re.sub(r"(.+)m$", r"\1", expr)
    if "\\in " in expr:
        expr = expr.split("\\in ")[1]
    for old, new in _MM_SYMBOLS:
        expr = expr.replace(old, new)
    expr = _MM_TRIG_DEG.sub(r"\1((\2/180)\\pi)", expr)
    expr = expr.strip(_MM_STRIP)
    return _MM_MATHRM.sub(r"\1", expr)


def _mm_split(expr: str) -> list[str]:
    """Split on commas outside `()` and `[]` (eval.py `split_by_comma`)."""
    depth, parts, start = 0, [], 0
    for i, ch in enumerate(expr):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(expr[start:i].strip())
            start = i + 1
    if start < len(expr):
        parts.append(expr[start:].strip())
    return parts


def _mm_plus_minus(parts: list[str]) -> list[str]:
    out = []
    for p in parts:
        out += [p.replace("\\pm", "+"), p.replace("\\pm", "-")] if "\\pm" in p else [p]
    return out


def _mm_is_interval(expr: str) -> bool:
    return expr.startswith(("(", "[")) and expr.endswith((")", "]"))


def _mm_value_equal(gold: str, pred: str, precision: float) -> bool:
    """eval.py `expression_equal` (an `=` on one side: compare its right-hand side): two numeric values within
    the absolute precision; otherwise math-verify in place of sympy's `parse_latex` + `simplify`."""
    gold = gold.split("=")[1].strip() if "=" in gold else gold.strip()
    pred = pred.split("=")[1].strip() if "=" in pred else pred.strip()
    g, p = parse_number(gold), parse_number(pred)
    if g is not None and p is not None:
        return abs(g - p) <= precision * 1.01
    return grade_answer(pred, {"answer_type": "expression", "ground_truth": gold}).accuracy == 1.0


def _mm_interval_equal(gold: str, pred: str, precision: float) -> bool:
    if gold == pred:
        return True
    g_parts, p_parts = gold.split("\\cup"), pred.split("\\cup")
    if len(g_parts) != len(p_parts):
        return False
    for g, p in zip(g_parts, p_parts, strict=True):
        g, p = g.strip(), p.strip()
        if not g or not p or g[0] != p[0] or g[-1] != p[-1]:
            return False
        g_ends, p_ends = g.strip("[]()").split(","), p.strip("[]()").split(",")
        if len(g_ends) != len(p_ends):
            return False
        if not all(_mm_value_equal(a, b, precision) for a, b in zip(g_ends, p_ends, strict=True)):
            return False
    return True


def _mm_is_equal(gold: str, pred: str, precision: float) -> bool:
    """eval.py `is_equal`, in its order: the same text; two intervals; two plain numbers within the absolute
    precision, the gold also taken ×100 and ÷100 (percentages); values/expressions (not when both are equations);
    equations (math-verify reads `2x+2y=4` = `x+y=2`, where eval.py accepts an integer multiple)."""
    if gold == pred and gold:
        return True
    if _mm_is_interval(gold) and _mm_is_interval(pred):
        try:
            if _mm_interval_equal(gold, pred, precision):
                return True
        except Exception:  # noqa: BLE001 - eval.py: an error in the interval check means "not equal"
            return False
    try:
        ref, val = float(gold), float(pred)
        if any(abs(x - val) <= precision * 1.01 for x in (ref / 100, ref, ref * 100)):
            return True
    except (ValueError, OverflowError):
        pass
    both_equations = "=" in gold and "=" in pred
    if not both_equations and _mm_value_equal(gold, pred, precision):
        return True
    if both_equations:
        return grade_answer(pred, {"answer_type": "expression", "ground_truth": gold}).accuracy == 1.0
    return False


def mm_math_judge(gold_solution: str, model_solution: str, precision: float = 1e-2) -> bool:
    """eval.py `AutoScoringJudge.judge` on two texts that both contain `\\boxed{` (the caller checks that)."""
    g, p = _mm_boxed(gold_solution), _mm_boxed(model_solution)
    if g is None or p is None:
        return False
    g, p = _mm_clean(g), _mm_clean(p)
    if g == p:
        return True
    g = g if _HAN.fullmatch(g) else _HAN.sub("", g)
    p = p if _HAN.fullmatch(p) else _HAN.sub("", p)
    if g.count("<") == 2:
        g = "(" + g.split("<")[0] + ", " + g.split("<")[-1] + ")"
    if p.count("<") == 2:
        p = "(" + p.split("<")[0] + ", " + p.split("<")[-1] + ")"
    golds, preds = _mm_plus_minus(_mm_split(g)), _mm_plus_minus(_mm_split(p))
    if len(golds) != len(preds):
        return False
    for item in golds:  # each gold part must pair with a distinct predicted part
        match = next((q for q in preds if _mm_is_equal(item, q, precision)), None)
        if match is None:
            return False
        preds.remove(match)
    return True


class MMMath(Benchmark):
    """MM-Math (kge-sun/MM-Math; HF THU-KEG/MM_Math: `MM_Math.jsonl` + `Image.zip`).

    Layout: JSON Lines (or a JSON list) of `question`, `file_name` (the image, relative to `image_root`, default
    the file's folder), `solution` (LaTeX, final answer in `\\boxed{}`), `year`, `difficult` (容易 / 普通 / 困难),
    `knowledge`. The release has no id field: id = the record's `id` when there is one, else the `file_name` stem
    (a repeated stem gets `_2`, `_3`… in file order).

    Prompt: the question, followed by `instruction` (empty by default: the README asks for the final answer in
    `\\boxed{}`; Vision-R1 writes it in its `<answer>` block).

    Score: kge-sun/MM-Math eval.py (`AutoScoringJudge`), restated in `mm_math_judge`: it counts only when both
    solutions contain `\\boxed{`. The model's side is the `<answer>` text; when that text has no `\\boxed{` it is
    wrapped as `\\boxed{…}` (Vision-R1 writes a bare `Final Answer:` text). A response without an `<answer>` block
    is scored by eval.py's own rule on the whole response (it must contain `\\boxed{`; source "fallback").
    Both sides: all boxed contents joined by commas, units and degree signs stripped (eval.py's list), split on
    top-level commas, `\\pm` expanded, then matched one-for-one in any order; plain numbers within the absolute
    precision 1e-2 (×1.01), the gold also at ×100 and ÷100; intervals by brackets and endpoints; values and
    expressions (right-hand side of a lone `=`) numerically within the same absolute precision when both are
    numbers, else by math-verify; two equations by math-verify.

    Differences from eval.py: math-verify stands in for sympy's `parse_latex` (which needs antlr) and `simplify`,
    so a numeric expression against a rounded decimal (`2\\sqrt{3}` vs `3.46`, equal within 1e-2 there) scores 0
    unless both parse as plain numbers or fractions; equations match when math-verify finds them equivalent rather
    than when their differences are integer multiples. The published script reads misspelt flags
    (`--ground_soluation` defined, `args.ground_solution` read), swallows the error and scores every item wrong;
    that defect is not reproduced. The precision is absolute in eval.py (`abs(a - b) <= precision * 1.01`), not
    relative.
    """

    name = "mm_math"
    precision = 1e-2

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        records = _read_records(path)
        if isinstance(records, dict):
            records = list(records.values())
        root = Path(image_root) if image_root else path.parent
        cache = _cache_dir(path)
        items, seen = [], defaultdict(int)
        for rec in records:
            base = str(rec["id"]) if rec.get("id") is not None else Path(str(rec["file_name"])).stem
            seen[base] += 1
            item_id = base if seen[base] == 1 else f"{base}_{seen[base]}"
            image = _image_path(rec.get("image") or rec.get("file_name"), item_id, root, cache)
            knowledge = rec.get("knowledge")
            meta = {"difficulty": rec.get("difficult"), "year": rec.get("year"), "knowledge": knowledge}
            gold = {"solution": str(rec["solution"])}
            items.append(
                EvalItem(id=item_id, question=rec["question"], images=[image] if image else [], gold=gold, meta=meta)
            )
        return _limited(items, limit)

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response)
        if text is not None:
            model = text if BOXED_OPEN in text else f"\\boxed{{{text}}}"
        elif BOXED_OPEN in response:
            text, model, source = boxed_answer(response), response, "fallback"
        else:
            return {"correct": 0.0, "extracted": None, "source": "none"}
        gold = item.gold["solution"]
        precision = float(options.get("precision", self.precision))
        try:
            ok = BOXED_OPEN in gold and BOXED_OPEN in model and mm_math_judge(gold, model, precision)
        except Exception:  # noqa: BLE001 - eval.py: any error in judging scores the item wrong
            ok = False
        return {"correct": float(ok), "extracted": text, "source": source}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        out["by_difficulty"] = _breakdown(items, scores, "difficulty")
        out["by_year"] = _breakdown(items, scores, "year")
        return out


# ---------------------------------------------------------------- DynaMath

_VARIANT = re.compile(r"(?:trial|sample_variant|sample)(\d+)", re.I)


def dynamath_match(short: str, gold: str, answer_type: str) -> bool:
    """The official rule on a short answer (DynaMath/DynaMath evaluation/opensource_json_eval.py and
    evaluation/gpt4o/gpt_4o_json_eval.py, the same code in both), restated; any error counts as wrong.
    float: the answer as is when it is all digits, else its first space-separated token, where a `π` multiplies
    the number before it by pi; correct within 0.001 (absolute). multiple choice: a one-character answer must equal
    the letter (case-sensitive); a longer one must contain the letter in its first three characters. Any other
    type: the gold must be a substring of the answer."""
    try:
        if answer_type == "float":
            value: Any = short
            if not short.isdigit():
                token = short.split(" ")[0]
                value = float(token.split("π")[0]) * math.pi if "π" in token else float(token)
            return abs(float(value) - float(gold)) <= 0.001
        if answer_type == "multiple choice":
            return short == gold if len(short) == 1 else gold in short[0:3]
        return gold in short
    except Exception:  # noqa: BLE001 - the official scripts count any exception as a failure
        return False


def dynamath_fallback(response: str) -> str | None:
    """The short answer the official scripts read from a response: the JSON object's `short answer` (from the
    first `{` to the last `}`, backslashes removed), else the last line without its last character
    (opensource_json_eval.py)."""
    start, end = response.find("{"), response.rfind("}")
    if 0 <= start < end:
        try:
            obj = json.loads(response[start : end + 1].replace("\\", ""), strict=False)
            if isinstance(obj, dict) and "short answer" in obj:
                return str(obj["short answer"])
        except json.JSONDecodeError:
            pass
    lines = response.strip().split("\n")
    last = lines[-1][:-1] if lines and lines[-1] else ""
    return last or None


class DynaMath(Benchmark):
    """DynaMath (DynaMath/DynaMath; HF DynaMath/DynaMath_Sample).

    Layouts: the GitHub `10trials/` folder (`trialK/dataset.json`, one object keyed by seed id with `question`,
    `answer`, `image` relative to the trial folder, `answer_type` `float` | `multiple choice` | other text,
    `subject`, `level`), one `trialK/dataset.json`, or the HF parquet files, one per split `sample_variantK`
    (`id`, `question`, `image`, `decoded_image`, `ground_truth`, `answer_type`, `subject`, `knowledge_level`;
    embedded images are written once to `<parquet stem>_images/`), given as a file or a folder of them. An item is
    (seed id, variant K): id = the seed id, variant = K (from `trialK` / `sample_variantK` in the path).

    Prompt: the question, plus "Please answer in a floating-point number." for float answers, as the official
    scripts add (their JSON answer format is left out: Vision-R1 answers in its `<answer>` block).

    Score: `dynamath_match` on the `<answer>` text; without the block, the short answer the official scripts read
    (`dynamath_fallback`, source "fallback"). aggregate: "accuracy" is the average case (correct / items),
    "worst_case_accuracy" the share of seeds whose every loaded variant is correct, "n" the items, "seeds" the
    seed count.
    """

    name = "dynamath"

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("trial*/dataset.json")) or sorted(
                p for p in path.rglob("*.parquet") if "sample_all" not in str(p.relative_to(path))
            )
            if not files and (path / "dataset.json").is_file():
                files = [path / "dataset.json"]
            if not files:
                raise FileNotFoundError(f"no trial*/dataset.json or *.parquet under {path}")
        else:
            files = [path]
        files.sort(key=lambda p: (int(v) if (v := self._variant(p)) else 0, str(p)))
        items = []
        for f in files:
            variant = self._variant(f)
            records = _read_records(f)
            if isinstance(records, dict):
                records = [{"id": k, **v} for k, v in records.items()]
            root = Path(image_root) if image_root else f.parent
            cache = _cache_dir(f)
            for rec in records:
                seed = str(rec["id"])
                gold = {
                    "answer": str(rec["ground_truth"] if "ground_truth" in rec else rec["answer"]),
                    "answer_type": rec["answer_type"],
                }
                cell = rec.get("decoded_image") or rec.get("image")
                image = _image_path(cell, f"{seed}_v{variant}" if variant else seed, root, cache)
                level = rec.get("knowledge_level", rec.get("level"))
                meta = {"subject": rec.get("subject"), "level": level, "answer_type": rec["answer_type"]}
                question = rec["question"]
                if rec["answer_type"] == "float":
                    question += "Please answer in a floating-point number."
                items.append(
                    EvalItem(
                        id=seed,
                        question=question,
                        images=[image] if image else [],
                        gold=gold,
                        variant=variant,
                        meta=meta,
                    )
                )
        return _limited(items, limit)

    @staticmethod
    def _variant(path: Path) -> str | None:
        for part in (path.stem, path.parent.name):
            m = _VARIANT.search(part)
            if m:
                return m.group(1)
        return None

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response, dynamath_fallback)
        if text is None:
            return {"correct": 0.0, "extracted": None, "source": "none"}
        ok = dynamath_match(text, item.gold["answer"], item.gold["answer_type"])
        return {"correct": float(ok), "extracted": text, "source": source}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        per_seed: dict[str, list[float]] = defaultdict(list)
        for item, score in zip(items, scores, strict=True):
            per_seed[item.id].append(float(score["correct"]))
        out["seeds"] = len(per_seed)
        out["worst_case_accuracy"] = (
            sum(all(c == 1.0 for c in v) for v in per_seed.values()) / len(per_seed) if per_seed else 0.0
        )
        out["by_subject"] = _breakdown(items, scores, "subject")
        out["by_level"] = _breakdown(items, scores, "level")
        out["by_answer_type"] = _breakdown(items, scores, "answer_type")
        return out


MATH_BENCHMARKS: dict[str, type[Benchmark]] = {cls.name: cls for cls in (MathVista, MathVerse, MMMath, DynaMath)}
