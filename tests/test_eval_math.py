"""The four math benchmarks (rl/eval/math_benchmarks.py): each reader on its published layout (fixtures under
tests/fixtures/eval/<benchmark>/) and each scorer against answers computed by hand from the official rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rl.eval.benchmark import Benchmark, EvalItem
from rl.eval.math_benchmarks import (
    MATH_BENCHMARKS,
    DynaMath,
    MathVerse,
    MathVista,
    MMMath,
    dynamath_fallback,
    dynamath_match,
    mathverse_options,
    mathvista_normalize,
    mm_math_judge,
)


def vr1(answer: str) -> str:
    """A response in Vision-R1's published layout."""
    return f"<think>\nreasoning\n</think>\n<answer> Final Answer:{answer} </answer>"


def by_id(items: list[EvalItem]) -> dict[str, EvalItem]:
    return {it.key: it for it in items}


def test_registry():
    assert set(MATH_BENCHMARKS) == {"mathvista", "mathverse", "mm_math", "dynamath"}
    for name, cls in MATH_BENCHMARKS.items():
        assert issubclass(cls, Benchmark) and cls.name == name


# ---------------------------------------------------------------- MathVista


@pytest.fixture
def mathvista(fixtures) -> dict[str, EvalItem]:
    return by_id(MathVista().load(fixtures / "eval" / "mathvista" / "testmini.json"))


def test_mathvista_reads_json_layout(mathvista, fixtures):
    assert list(mathvista) == ["1", "2", "3", "4", "5", "6"]
    item = mathvista["4"]
    published = json.loads((fixtures / "eval" / "mathvista" / "query.json").read_text())
    assert item.question == published["4"]  # the prompt is the official query
    assert MathVista().prompt(item) == published["4"]
    assert item.images == [str((fixtures / "eval" / "mathvista" / "images" / "4.png").resolve())]
    assert Path(item.images[0]).is_file()
    assert item.gold["choices"] == ["97", "102", "107", "122"] and item.gold["answer"] == "102"
    assert item.meta["category"] == "math-targeted-vqa"
    assert mathvista["1"].gold["precision"] == 1 and mathvista["2"].gold["precision"] == 2


def test_mathvista_rebuilds_the_query_without_query_json(fixtures):
    folder = fixtures / "eval" / "mathvista"
    published = json.loads((folder / "query.json").read_text())
    (folder / "query.json").unlink()
    items = by_id(MathVista().load(folder / "testmini.json"))
    assert {pid: it.question for pid, it in items.items()} == published


def test_mathvista_reads_hf_parquet(fixtures):
    path = fixtures / "eval" / "mathvista" / "data" / "testmini-00000-of-00001.parquet"
    items = by_id(MathVista().load(path))
    assert list(items) == ["1", "4"]
    image = Path(items["1"].images[0])
    assert image.parent == path.with_name("testmini-00000-of-00001_images") and image.is_file()
    assert items["1"].gold["precision"] == 1  # float64 1.0 in the parquet
    assert items["4"].gold["choices"] == ["97", "102", "107", "122"]
    assert items["4"].question.startswith("Hint: Please answer the question and provide the correct option letter")
    mtime = image.stat().st_mtime_ns
    MathVista().load(path)  # a second read reuses the written image
    assert image.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob(".*tmp*"))  # no temp files left behind


@pytest.mark.parametrize(
    ("pid", "answer", "correct", "prediction"),
    [
        ("4", "B", 1.0, "102"),  # letter → choices[1]
        ("4", "(B)", 1.0, "102"),
        ("4", "The answer is (B) 102", 1.0, "102"),  # the first (X) anywhere
        ("4", "102", 1.0, "102"),  # the choice text itself
        ("4", "103", 1.0, "102"),  # other text → nearest choice by edit distance (102 and 107 tie: first wins)
        ("4", "C", 0.0, "107"),
        ("4", "b", 0.0, "97"),  # a bare lower-case letter is not a letter: nearest choice text
        ("6", "D", 1.0, "tokyo"),
        ("6", "Tokyo", 1.0, "tokyo"),
        ("1", "1.24", 1.0, "1.2"),  # precision 1: rounds
        ("1", "1.26", 0.0, "1.3"),
        ("2", "0.214", 1.0, "0.21"),  # precision 2
        ("2", "0.2", 0.0, "0.2"),
        ("3", "3.9", 1.0, "3"),  # integer: str(int(float(x))) truncates
        ("3", "3", 1.0, "3"),
        ("3", "4", 0.0, "4"),
        ("3", "three", 0.0, None),
        ("5", "[2014, 2016]", 1.0, "[2014, 2016]"),  # list: as a string
        ("5", "[2014,2016]", 0.0, "[2014,2016]"),
    ],
)
def test_mathvista_scores_by_the_official_normalisation(mathvista, pid, answer, correct, prediction):
    s = MathVista().score(mathvista[pid], vr1(answer))
    assert (s["correct"], s["prediction"], s["source"]) == (correct, prediction, "answer_block")


def test_mathvista_reads_vision_r1_layout_and_wrappers(mathvista):
    bench = MathVista()
    assert bench.score(mathvista["4"], "<think>x</think>\n<answer> Final Answer:B </answer>")["extracted"] == "B"
    assert bench.score(mathvista["4"], "<think>x</think><answer>$\\boxed{B}$.</answer>")["correct"] == 1.0
    assert bench.score(mathvista["1"], "<think>x</think><answer>1.2</answer>")["correct"] == 1.0


def test_mathvista_fallback_is_the_official_quick_extraction(mathvista):
    bench = MathVista()
    s = bench.score(mathvista["3"], "3")  # a response that parses as an integer
    assert (s["correct"], s["source"]) == (1.0, "fallback")
    s = bench.score(mathvista["6"], "tokyo")  # a response that is one of the choices
    assert (s["correct"], s["source"]) == (1.0, "fallback")
    s = bench.score(mathvista["1"], 'So the distance is 1.2 m. The answer is "1.2".')
    assert (s["correct"], s["source"], s["extracted"]) == (1.0, "fallback", "1.2")
    s = bench.score(mathvista["1"], "The spring is compressed by about 1.2 m.")  # only GPT would read this
    assert (s["correct"], s["source"], s["extracted"]) == (0.0, "none", None)


def test_mathvista_aggregate(mathvista):
    bench = MathVista()
    items = list(mathvista.values())
    responses = [vr1("1.2"), vr1("0.3"), "3", vr1("B"), "no idea", vr1("A")]
    scores = [bench.score(it, r) for it, r in zip(items, responses, strict=True)]
    out = bench.aggregate(items, scores)
    assert out["n"] == 6 and out["accuracy"] == pytest.approx(3 / 6)
    assert out["fallback_rate"] == pytest.approx(1 / 6) and out["no_answer_rate"] == pytest.approx(1 / 6)
    assert out["by_category"]["math-targeted-vqa"] == {"n": 3, "correct": 2.0, "accuracy": pytest.approx(2 / 3)}
    assert out["by_category"]["general-vqa"]["accuracy"] == pytest.approx(1 / 3)
    assert out["by_skills"]["arithmetic reasoning"]["n"] == 2  # list-valued skills count under each skill
    assert out["by_answer_type"]["integer"]["accuracy"] == 1.0


def test_mathvista_normalize_direct():
    gold = {"question_type": "multi_choice", "answer_type": "text", "choices": ["3/11", "8/11", "6/11", "3/5"]}
    assert mathvista_normalize("(b) 8/11", gold) == "8/11"  # (x) is upper-cased
    assert mathvista_normalize("E", gold) == "3/5"  # out of range: nearest text (3 edits against 4)
    tie = {"question_type": "multi_choice", "answer_type": "text", "choices": ["ab", "cd"]}
    assert mathvista_normalize("x", tie) == "ab"  # a tie: the first choice


# ---------------------------------------------------------------- MathVerse


@pytest.fixture
def mathverse(fixtures) -> dict[str, EvalItem]:
    return by_id(MathVerse().load(fixtures / "eval" / "mathverse" / "testmini.json"))


def test_mathverse_reads_json_layout(mathverse, fixtures):
    assert list(mathverse) == ["1", "2", "3", "4", "5", "6", "7"]
    item = mathverse["1"]
    raw = json.loads((fixtures / "eval" / "mathverse" / "testmini.json").read_text())[0]
    assert MathVerse().prompt(item) == raw["query_cot"]
    assert item.images == [str((fixtures / "eval" / "mathverse" / "images_version_1-4" / "image_1.png").resolve())]
    assert item.gold["options"] == ["40°", "60°", "120°", "140°"]  # `A:40°` lines, no space after the label
    assert item.meta["problem_version"] == "Text Dominant" and item.meta["problem_index"] == "1"
    assert mathverse["3"].gold["options"] is None  # Vision Only: the options are in the image
    assert mathverse["7"].gold["options"] == ["True", "False"]  # `Choice:` and `A. True`


def test_mathverse_reads_hf_parquet(fixtures):
    path = fixtures / "eval" / "mathverse" / "testmini.parquet"
    items = by_id(MathVerse().load(path))
    assert list(items) == ["1", "2", "4"]
    image = Path(items["1"].images[0])
    assert image.parent == path.with_name("testmini_images") and image.is_file()
    assert image.read_bytes() != Path(items["2"].images[0]).read_bytes()  # one file per sample
    assert items["1"].gold["options"] == ["40°", "60°", "120°", "140°"]  # from question_for_eval


@pytest.mark.parametrize(
    ("sid", "answer", "correct"),
    [
        ("1", "D", 1.0),
        ("1", "(D)", 1.0),
        ("1", "D:140°", 1.0),
        ("1", "140°", 1.0),  # the option's content instead of its letter (the judge's example 5)
        ("1", "140", 1.0),
        ("1", "C:140°", 0.0),  # the judge's example 2: a wrong letter, whatever the text
        ("1", "B", 0.0),
        ("1", "120°", 0.0),
        ("3", "D", 1.0),  # Vision Only: letters only
        ("3", "140°", 0.0),
        ("7", "B", 1.0),  # a gold written as the option's content ("False")
        ("7", "False", 1.0),
        ("7", "A", 0.0),
        ("4", "(-2,1]", 1.0),
        ("4", "(-2, 1]", 1.0),
        ("4", "\\((-2, 1)\\)", 0.0),  # the judge's example 1
        ("5", "169.6", 1.0),  # `Volume $=169.6 \mathrm{~cm}^{3}$`
        ("5", "169.6 \\text{cm}^3", 1.0),
        ("5", "169.7", 0.0),
        ("6", "y=5-2x", 1.0),  # equations through math-verify
        ("6", "y=2x+5", 0.0),
    ],
)
def test_mathverse_judges_by_the_stated_rule(mathverse, sid, answer, correct):
    s = MathVerse().score(mathverse[sid], vr1(answer))
    assert (s["correct"], s["source"]) == (correct, "answer_block"), s


def test_mathverse_several_letters():
    item = EvalItem(
        id="x", question="", images=[], gold={"answer": "C\nD", "question_type": "multi-choice", "options": None}
    )
    assert MathVerse().score(item, vr1("C, D"))["correct"] == 1.0
    assert MathVerse().score(item, vr1("D and C"))["correct"] == 1.0
    assert MathVerse().score(item, vr1("C"))["correct"] == 0.0


def test_mathverse_fallback(mathverse):
    s = MathVerse().score(mathverse["1"], "Angle CED is supplementary to 40°, so it is 140°. The answer is D.")
    assert (s["correct"], s["source"], s["extracted"]) == (1.0, "fallback", "D")
    s = MathVerse().score(mathverse["5"], "V = \\pi r^2 h, so \\boxed{169.6}")
    assert (s["correct"], s["source"]) == (1.0, "fallback")
    s = MathVerse().score(mathverse["5"], "I cannot tell.")
    assert (s["correct"], s["source"]) == (0.0, "none")


def test_mathverse_aggregate_per_version(mathverse):
    bench = MathVerse()
    items = list(mathverse.values())
    responses = {"1": vr1("D"), "2": vr1("A"), "3": vr1("D"), "4": vr1("(-2,1)"), "5": vr1("169.6"), "6": "x"}
    responses["7"] = vr1("False")
    scores = [bench.score(it, responses[it.id]) for it in items]
    out = bench.aggregate(items, scores)
    assert out["n"] == 7 and out["accuracy"] == pytest.approx(4 / 7)
    versions = out["by_problem_version"]
    assert versions["Text Dominant"] == {"n": 3, "correct": 2.0, "accuracy": pytest.approx(2 / 3)}
    assert versions["Text Lite"] == {"n": 2, "correct": 0.0, "accuracy": 0.0}
    assert versions["Vision Intensive"]["accuracy"] == 1.0 and versions["Vision Only"]["accuracy"] == 1.0
    assert out["no_answer_rate"] == pytest.approx(1 / 7)


def test_mathverse_options_via_extract_choices():
    assert mathverse_options("Q?\nA. 3\nB. 4") == ["3", "4"]
    assert mathverse_options("Q? no options") is None


# ---------------------------------------------------------------- MM-Math


@pytest.fixture
def mm_math(fixtures) -> list[EvalItem]:
    return MMMath().load(fixtures / "eval" / "mm_math" / "MM_Math.jsonl")


def test_mm_math_reads_release_layout(mm_math, fixtures):
    assert [it.id for it in mm_math] == ["2021_0001", "2021_0002", "2021_0003", "2021_0004", "2021_0005"]
    first = mm_math[0]
    assert first.images == [str((fixtures / "eval" / "mm_math" / "2021_0001.png").resolve())]
    assert first.meta["difficulty"] == "容易" and first.question == "解方程 $x^2 = 4$。"
    assert MMMath().prompt(first) == first.question


def test_mm_math_duplicate_file_names_get_distinct_ids(tmp_path):
    rec = {"question": "q", "file_name": "a.png", "solution": "\\boxed{1}", "year": "y", "difficult": "容易"}
    (tmp_path / "MM_Math.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    assert [it.id for it in MMMath().load(tmp_path / "MM_Math.jsonl")] == ["a", "a_2"]


@pytest.mark.parametrize(
    ("index", "answer", "correct"),
    [
        (0, "x=\\pm 2", 1.0),  # ± expanded on both sides
        (0, "x=2, x=-2", 1.0),  # a comma list matched one-for-one
        (0, "\\boxed{x=-2}, \\boxed{x=2}", 1.0),  # several boxes: one list, any order
        (0, "x=2", 0.0),  # one of two
        (0, "2, -2", 1.0),  # `x=` dropped: the right-hand side is compared
        (1, "3, 4", 1.0),
        (1, "4, 3", 1.0),
        (1, "3, 5", 0.0),
        (1, "3, 4, 5", 0.0),
        (2, "5", 1.0),  # gold `5cm`: units stripped
        (2, "5 \\text{cm}", 1.0),
        (2, "5.009", 1.0),  # absolute precision 1e-2 (×1.01)
        (2, "5.02", 0.0),
        (3, "0.25", 1.0),  # gold 25: ÷100 (a percentage)
        (3, "2500", 1.0),  # ×100
        (3, "26", 0.0),
        (4, "60", 1.0),  # degree signs stripped
        (4, "60^\\circ", 1.0),
    ],
)
def test_mm_math_judge_by_eval_py(mm_math, index, answer, correct):
    s = MMMath().score(mm_math[index], vr1(answer))
    assert (s["correct"], s["source"]) == (correct, "answer_block"), s


def test_mm_math_wraps_a_bare_answer_and_falls_back_to_boxed(mm_math):
    s = MMMath().score(mm_math[1], "<answer>\\boxed{3, 4}</answer>")
    assert (s["correct"], s["extracted"]) == (1.0, "\\boxed{3, 4}")
    s = MMMath().score(mm_math[1], "So a = 3 and b = 4, i.e. $\\boxed{3, 4}$.")  # no <answer>: eval.py's own rule
    assert (s["correct"], s["source"]) == (1.0, "fallback")
    s = MMMath().score(mm_math[1], "So a = 3 and b = 4.")
    assert (s["correct"], s["source"]) == (0.0, "none")


def test_mm_math_rules_direct():
    assert mm_math_judge("\\boxed{\\frac{1}{3}}", "\\boxed{0.33}")  # numeric within the absolute 1e-2
    assert not mm_math_judge("\\boxed{1}", "\\boxed{2")  # an unclosed box: eval.py raises, scores 0
    assert mm_math_judge("\\boxed{(1, 2]}", "\\boxed{(1,2]}")
    assert not mm_math_judge("\\boxed{(1, 2]}", "\\boxed{(1, 2)}")
    assert mm_math_judge("\\boxed{1<x<3}", "\\boxed{(1, 3)}")  # two `<`: an interval
    assert mm_math_judge("\\boxed{y=2x+1}", "\\boxed{y=1+2x}")


def test_mm_math_aggregate_per_difficulty(mm_math):
    bench = MMMath()
    responses = [vr1("x=\\pm 2"), vr1("3, 5"), vr1("5"), "no box", vr1("60")]
    scores = [bench.score(it, r) for it, r in zip(mm_math, responses, strict=True)]
    out = bench.aggregate(mm_math, scores)
    assert out["n"] == 5 and out["accuracy"] == pytest.approx(3 / 5)
    assert out["by_difficulty"]["容易"]["accuracy"] == 1.0
    assert out["by_difficulty"]["普通"] == {"n": 2, "correct": 1.0, "accuracy": 0.5}
    assert out["by_difficulty"]["困难"] == {"n": 2, "correct": 1.0, "accuracy": 0.5}


# ---------------------------------------------------------------- DynaMath


@pytest.fixture
def dynamath(fixtures) -> list[EvalItem]:
    return DynaMath().load(fixtures / "eval" / "dynamath" / "10trials")


def test_dynamath_reads_trial_folders(dynamath, fixtures):
    assert [it.key for it in dynamath] == ["1#1", "2#1", "3#1", "1#2", "2#2", "3#2"]
    first = dynamath[0]
    assert first.images == [
        str((fixtures / "eval" / "dynamath" / "10trials" / "trial1" / "image" / "image1.png").resolve())
    ]
    assert first.gold == {"answer": "6.2832", "answer_type": "float"}
    assert first.question.endswith("Please answer in a floating-point number.")
    assert dynamath[4].gold["answer"] == "C" and dynamath[4].variant == "2"
    one = DynaMath().load(fixtures / "eval" / "dynamath" / "10trials" / "trial2" / "dataset.json")
    assert [it.key for it in one] == ["1#2", "2#2", "3#2"]


def test_dynamath_reads_hf_parquet(fixtures):
    folder = fixtures / "eval" / "dynamath" / "hf" / "data"
    items = DynaMath().load(folder)
    assert [it.key for it in items] == ["1#1", "2#1", "3#1", "1#2", "2#2", "3#2"]
    assert items[3].gold == {"answer": "3.1416", "answer_type": "float"}
    assert items[1].meta["level"] == "elementary school"
    image = Path(items[0].images[0])
    assert image.parent == folder / "sample_variant1-00000-of-00001_images" and image.is_file()
    single = DynaMath().load(folder / "sample_variant2-00000-of-00001.parquet")
    assert [it.key for it in single] == ["1#2", "2#2", "3#2"]


@pytest.mark.parametrize(
    ("short", "gold", "atype", "correct"),
    [
        ("6.2832", "6.2832", "float", True),
        ("6.283", "6.2832", "float", True),  # within 0.001
        ("6.28", "6.2832", "float", False),
        ("2π", "6.2832", "float", True),  # π multiplies the number before it
        ("π", "3.1416", "float", False),  # float("") raises: wrong
        ("6.2832 seconds", "6.2832", "float", True),  # first space-separated token
        ("about 6.2832", "6.2832", "float", False),
        ("12", "12", "float", True),  # all digits: taken as is
        ("B", "B", "multiple choice", True),
        ("b", "B", "multiple choice", False),  # one character: case-sensitive
        ("B. 2", "B", "multiple choice", True),  # the letter in the first three characters
        ("(B)", "B", "multiple choice", True),
        ("The answer is B", "B", "multiple choice", False),
        ("It is May", "May", "text", True),  # the gold as a substring
        ("may", "May", "text", False),
    ],
)
def test_dynamath_rules(short, gold, atype, correct):
    assert dynamath_match(short, gold, atype) is correct


def test_dynamath_fallback_reads_the_official_json():
    assert dynamath_fallback('{"solution": "…", "short answer": "B"}') == "B"
    assert dynamath_fallback("The answer is B.\nB.") == "B"  # last line, last character dropped


def test_dynamath_worst_case(dynamath):
    bench = DynaMath()
    # seed 1 right in both variants; seed 2 wrong in variant 2; seed 3 right in both
    responses = {
        "1#1": vr1("2π"),
        "2#1": vr1("B"),
        "3#1": vr1("May"),
        "1#2": vr1("3.1416"),
        "2#2": vr1("B"),
        "3#2": '{"solution": "The peak is in Sep.", "short answer": "Sep"}',
    }
    scores = [bench.score(it, responses[it.key]) for it in dynamath]
    assert [s["correct"] for s in scores] == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert scores[-1]["source"] == "fallback"
    out = bench.aggregate(dynamath, scores)
    assert out["n"] == 6 and out["seeds"] == 3
    assert out["accuracy"] == pytest.approx(5 / 6)
    assert out["worst_case_accuracy"] == pytest.approx(2 / 3)
    assert out["fallback_rate"] == pytest.approx(1 / 6)


def test_limit(fixtures):
    assert len(MathVista().load(fixtures / "eval" / "mathvista" / "testmini.json", limit=2)) == 2


def test_image_root_override(fixtures, tmp_path):
    shutil.copytree(fixtures / "eval" / "mathvista" / "images", tmp_path / "images")
    items = MathVista().load(fixtures / "eval" / "mathvista" / "testmini.json", image_root=tmp_path)
    assert items[0].images == [str((tmp_path / "images" / "1.png").resolve())]
