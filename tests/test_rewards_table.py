"""Hand-written cases for every reward rule, including every hack in ../shared/reference/rewards-pitfalls.md.
Each row: response, gold, answer_type, extra info, expected (score, format, accuracy) under the default preset."""

import json

import pytest

from rl.rewards.registry import score

T = "<think>Let me look at the image. Wait, check again.</think>"


def ok(answer: str) -> str:
    return f"{T}<answer>{answer}</answer>"


CHOICES = {"choices": ["30", "45", "60", "90"]}
CASES = [
    # ---- format: exactly one think block, then exactly one answer block, only whitespace outside
    ("fmt-ok", ok("C"), "C", "choice", CHOICES, (1, 1, 1)),
    ("fmt-whitespace-around", f"\n  {T}\n\n<answer> C </answer>\n", "C", "choice", CHOICES, (1, 1, 1)),
    ("fmt-no-think", "<answer>C</answer>", "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-no-answer", T + "C", "C", "choice", CHOICES, (0, 0, 0)),
    ("fmt-text-before", "Sure! " + ok("C"), "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-text-after", ok("C") + " Hope that helps", "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-text-between", f"{T} so <answer>C</answer>", "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-answer-first", "<answer>C</answer><think>x</think>", "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-two-answers", ok("A") + "<answer>C</answer>", "C", "choice", CHOICES, (0, 0, 0)),
    ("fmt-two-thinks", T + ok("C"), "C", "choice", CHOICES, (0, 0, 1)),
    (
        "fmt-nested-answer-in-think",
        "<think><answer>A</answer></think><answer>C</answer>",
        "C",
        "choice",
        CHOICES,
        (0, 0, 0),
    ),
    ("fmt-unclosed-think", "<think>x<answer>C</answer>", "C", "choice", CHOICES, (0, 0, 1)),
    ("fmt-unclosed-answer", T + "<answer>C", "C", "choice", CHOICES, (0, 0, 0)),
    ("fmt-empty", "", "C", "choice", CHOICES, (0, 0, 0)),
    ("hack-empty-answer", ok(""), "C", "choice", CHOICES, (0, 0, 0)),
    ("hack-blank-answer", ok("   "), "C", "choice", CHOICES, (0, 0, 0)),
    (
        "fmt-loose-regex-hack",
        "<think>x</think> junk <answer>C</answer> more <answer>D</answer>",
        "C",
        "choice",
        CHOICES,
        (0, 0, 0),
    ),
    # ---- choice: strict extraction
    ("choice-paren", ok("(C)"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-dot", ok("C."), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-final-answer", ok("Final Answer: C"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-final-answer-nospace", ok("Final Answer:C"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-boxed", ok("\\boxed{C}"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-the-answer-is", ok("The answer is C"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-option", ok("option C"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-letter-with-its-text", ok("C. 60"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-letter-with-other-text", ok("C. 45"), "C", "choice", CHOICES, (0, 1, 0)),
    ("choice-wrong", ok("B"), "C", "choice", CHOICES, (0, 1, 0)),
    ("hack-choice-or", ok("A or B or C"), "C", "choice", CHOICES, (0, 1, 0)),
    ("hack-choice-two-letters", ok("C, D"), "C", "choice", CHOICES, (0, 1, 0)),
    ("hack-choice-concat", ok("CD"), "C", "choice", CHOICES, (0, 1, 0)),
    ("hack-choice-hedge", ok("C or maybe D"), "C", "choice", CHOICES, (0, 1, 0)),
    ("hack-choice-all", ok("A, B, C, D"), "C", "choice", CHOICES, (0, 1, 0)),
    ("choice-out-of-range", ok("E"), "E", "choice", CHOICES, (0, 1, 0)),
    ("choice-lowercase-bare", ok("c"), "C", "choice", CHOICES, (0, 1, 0)),
    ("choice-lowercase-paren", ok("(c)"), "C", "choice", CHOICES, (1, 1, 1)),
    ("choice-sentence", ok("I think the answer is probably C"), "C", "choice", CHOICES, (0, 1, 0)),
    # ---- number: tolerance, units, single value only
    ("num-exact", ok("12"), "12", "number", {}, (1, 1, 1)),
    ("num-decimal", ok("12.0"), "12", "number", {}, (1, 1, 1)),
    ("num-comma", ok("1,234"), "1234", "number", {}, (1, 1, 1)),
    ("num-degree", ok("62°"), "62", "number", {}, (1, 1, 1)),
    ("num-latex-degree", ok("62^\\circ"), "62", "number", {}, (1, 1, 1)),
    ("num-unit", ok("12 cm"), "12", "number", {}, (1, 1, 1)),
    ("num-assign", ok("x = 5"), "5", "number", {}, (1, 1, 1)),
    ("num-fraction", ok("3/4"), "0.75", "number", {}, (1, 1, 1)),
    ("num-boxed-dollar", ok("$\\boxed{7}$"), "7", "number", {}, (1, 1, 1)),
    ("num-within-tol", ok("3.14159"), "3.1416", "number", {"number_rel_tol": 1e-4}, (1, 1, 1)),
    ("num-outside-tol", ok("3.2"), "3.1416", "number", {}, (0, 1, 0)),
    ("num-negative", ok("-3"), "-3", "number", {}, (1, 1, 1)),
    ("num-sign-wrong", ok("3"), "-3", "number", {}, (0, 1, 0)),
    ("hack-num-two", ok("3 or 4"), "4", "number", {}, (0, 1, 0)),
    ("hack-num-list", ok("3, 4"), "4", "number", {}, (0, 1, 0)),
    ("hack-num-range", ok("3-4"), "4", "number", {}, (0, 1, 0)),
    ("num-words", ok("four"), "4", "number", {}, (0, 1, 0)),
    ("num-inf", ok("1e999"), "1", "number", {}, (0, 1, 0)),
    ("gold-num-unparseable-is-never-rewarded", ok("seven"), "seven", "number", {}, (0, 1, 0)),
    # ---- expression: math-verify equivalence, bounded
    ("expr-equal-sqrt", ok("\\sqrt{18}"), "3\\sqrt{2}", "expression", {}, (1, 1, 1)),
    ("expr-simplified", ok("2\\sqrt{5}"), "\\sqrt{20}", "expression", {}, (1, 1, 1)),
    ("expr-frac-decimal", ok("0.5"), "\\frac{1}{2}", "expression", {}, (1, 1, 1)),
    ("expr-poly-commute", ok("1+x^2"), "x^2+1", "expression", {}, (1, 1, 1)),
    ("expr-wrong", ok("\\sqrt{19}"), "\\sqrt{20}", "expression", {}, (0, 1, 0)),
    ("expr-boxed", ok("\\boxed{\\frac{3}{4}}"), "0.75", "expression", {}, (1, 1, 1)),
    ("hack-expr-bomb-tower", ok("10^{10^{10^{10}}}"), "5", "expression", {}, (0, 1, 0)),
    ("hack-expr-bomb-factorial", ok("(10^6)!"), "5", "expression", {}, (0, 1, 0)),
    ("hack-expr-huge-power", ok("2^{100000}"), "5", "expression", {}, (0, 1, 0)),
    ("expr-empty-braces", ok("{}"), "5", "expression", {}, (0, 1, 0)),
    # ---- text and labels: normalised exact match, no substring credit
    ("text-case-punct", ok("The Red Circle."), "red circle", "text", {}, (1, 1, 1)),
    ("hack-text-substring", ok("red circle or blue square"), "red circle", "text", {}, (0, 1, 0)),
    ("text-fuzzy-on", ok("red circel"), "red circle", "text", {"text_fuzzy": 85}, (1, 1, 1)),
    ("text-fuzzy-off", ok("red circel"), "red circle", "text", {}, (0, 1, 0)),
    ("label-exact", ok("2012 Volkswagen Golf Hatchback"), "2012 Volkswagen Golf Hatchback", "label", {}, (1, 1, 1)),
    (
        "hack-label-substring",
        ok("2012 Volkswagen Golf Hatchback or 2013 Audi A4"),
        "2012 Volkswagen Golf Hatchback",
        "label",
        {},
        (0, 1, 0),
    ),
    ("hack-label-list", ok("cat, dog"), "cat", "label", {}, (0, 1, 0)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reasoning_rewards(case):
    _, response, gold, answer_type, extra, (want_score, want_format, want_acc) = case
    got = score(response, {"ground_truth": gold, "answer_type": answer_type, **extra})
    assert (got["score"], got["format"], got["accuracy"]) == (want_score, want_format, want_acc), got


def test_at_least_sixty_hand_written_cases():
    assert len(CASES) + len(BOX_CASES) >= 60


IMG = {"image_sizes": [[1000, 500]]}
BOX_CASES = [
    # REC: the gold in original pixels; Qwen2.5-VL answers in pixels of its resized input, Qwen2-VL on 0-1000
    (
        "rec-same-frame",
        ok('{"bbox_2d": [100, 100, 300, 200]}'),
        "[100, 100, 300, 200]",
        "bbox",
        {**IMG, "coord_frame": "abs_original"},
        1.0,
    ),
    # smart_resize(1000x500, max_pixels 980*490) = 980x476: the same box in the resized frame
    (
        "rec-qwen2_5-resized-frame",
        ok("[98.0, 95.2, 294.0, 190.4]"),
        "[100, 100, 300, 200]",
        "bbox",
        {**IMG, "coord_frame": "abs_original", "pred_frame": "abs_resized", "max_pixels": 980 * 490},
        1.0,
    ),
    (
        "rec-qwen2-grid-frame",
        ok("[100, 200, 300, 400]"),
        "[100, 100, 300, 200]",
        "bbox",
        {**IMG, "coord_frame": "abs_original", "pred_frame": "grid1000"},
        1.0,
    ),
    (
        "rec-wrong-frame-costs",
        ok("[100, 100, 300, 200]"),
        "[100, 100, 300, 200]",
        "bbox",
        {**IMG, "coord_frame": "abs_original", "pred_frame": "grid1000"},
        0.5,
    ),  # read in the wrong frame: no overlap
    # the task format (VLM-R1's) needs exactly one box in the answer: a second box, no box, or an inverted one
    # lose the format half too
    ("hack-rec-two-boxes", ok("[[100, 100, 300, 200], [0, 0, 1000, 500]]"), "[100, 100, 300, 200]", "bbox", IMG, 0.0),
    ("rec-no-box", ok("the cat"), "[100, 100, 300, 200]", "bbox", IMG, 0.0),
    ("rec-corners-swapped", ok("[300, 200, 100, 100]"), "[100, 100, 300, 200]", "bbox", IMG, 0.0),
    # OVD: min(1, n_gt/n_pred) x mAP
    (
        "ovd-perfect",
        ok('[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]'),
        '[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]',
        "boxes",
        IMG,
        1.0,
    ),
    (
        "hack-ovd-duplicates",
        ok(json.dumps([{"bbox_2d": [10, 10, 50, 50], "label": "cat"}] * 10)),
        '[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]',
        "boxes",
        IMG,
        0.5 + 0.5 * 0.1,
    ),
    ("ovd-none-right", ok("None"), "[]", "boxes", IMG, 1.0),
    ("ovd-none-wrong", ok("None"), '[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]', "boxes", IMG, 0.5),
    (
        "hack-ovd-flood-over-100",
        ok(json.dumps([{"bbox_2d": [1, 1, 2, 2], "label": "cat"}] * 101)),
        '[{"bbox_2d": [1, 1, 2, 2], "label": "cat"}]',
        "boxes",
        IMG,
        0.0,
    ),
]


@pytest.mark.parametrize("case", BOX_CASES, ids=[c[0] for c in BOX_CASES])
def test_perception_rewards(case):
    _, response, gold, answer_type, extra, want = case
    got = score(response, {"ground_truth": gold, "answer_type": answer_type, **extra})
    assert got["score"] == pytest.approx(want, abs=1e-9), got


def test_visual_rft_detection_and_confidence():
    gold = "[{'Position': [100, 100, 300, 300], 'Confidence': 1}, {'Position': [600, 600, 800, 800], 'Confidence': 1}]"
    info = {"ground_truth": gold, "answer_type": "boxes", "coord_frame": "grid1000"}
    pred = ok(
        "[{'Position': [100, 100, 300, 300], 'Confidence': 0.9}, {'Position': [0, 0, 50, 50], 'Confidence': 0.2}]"
    )
    got = score(pred, info, "visual_rft_det")
    assert got["det_iou"] == pytest.approx(1.0 / 2)  # one exact match over max(2, 2)
    assert got["det_confidence"] == pytest.approx((0.9 + (1 - 0.2)) / 2)
    assert got["score"] == pytest.approx((1 + 0.5 + 0.85) / 3)
    assert score(ok("No Objects"), {**info, "ground_truth": "No Objects"}, "visual_rft_det")["score"] == 1.0


def test_visual_rft_counts_a_repeated_box_once_and_reads_underscores_as_spaces():
    """Visual-RFT removes duplicate predicted boxes before matching: two identical right boxes score as one (not
    IoU 1/2), and the confidence reward is not paid twice. Pets37 labels are `american_bulldog`."""
    gold = "[{'Position': [100, 100, 300, 300], 'Confidence': 1}]"
    info = {"ground_truth": gold, "answer_type": "boxes", "coord_frame": "grid1000"}
    once = score(ok("[{'Position': [100, 100, 300, 300], 'Confidence': 0.8}]"), info, "visual_rft_det")
    repeated = ok(
        "[{'Position': [100, 100, 300, 300], 'Confidence': 0.8}, {'Position': [100, 100, 300, 300], 'Confidence': 0.8}]"
    )
    twice = score(repeated, info, "visual_rft_det")
    assert twice["det_iou"] == once["det_iou"] == 1.0 and twice["det_confidence"] == once["det_confidence"] == 0.8
    other = ok(
        "[{'Position': [100, 100, 300, 300], 'Confidence': 0.8}, {'Position': [0, 0, 50, 50], 'Confidence': 0.8}]"
    )
    assert score(other, info, "visual_rft_det")["det_iou"] == pytest.approx(0.5)  # distinct boxes still count
    pets = {"ground_truth": "american_bulldog", "answer_type": "label"}
    assert score(ok("American Bulldog"), pets, "visual_rft_cls")["accuracy"] == 1.0
    assert score(ok("American Bulldog or Boxer"), pets, "visual_rft_cls")["accuracy"] == 0.0


def test_several_fenced_blocks_are_scored_on_the_last():
    """A model that drafts a box list and then corrects it in a second fenced block is scored on the correction,
    as VLM-R1 reads it (not on the first block)."""
    gold = '[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]'
    info = {"ground_truth": gold, "answer_type": "boxes", "coord_frame": "abs_original", "image_sizes": [[100, 100]]}
    draft = '```json\n[{"bbox_2d": [60, 60, 90, 90], "label": "cat"}]\n```'
    final = '```json\n[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]\n```'
    assert score(ok(f"{draft}\nOn second look:\n{final}"), info, "vlm_r1_ovd")["ovd"] == pytest.approx(1.0)
    assert score(ok(f"{final}\nOn second look:\n{draft}"), info, "vlm_r1_ovd")["ovd"] == 0.0


def test_weighted_terms_shaping_and_clipping():
    info = {"ground_truth": "4", "answer_type": "number", "length_soft": 10, "length_hard": 20}
    long = ok("4")  # well over 20 characters: full length penalty
    got = score(long, info, {"hfrrf": 1.0, "length_penalty": -0.25, "repetition_penalty": -0.25})
    assert got["hfrrf"] == 1.0 and got["length_penalty"] == 1.0 and got["score"] == pytest.approx(0.75)
    loop = "<think>" + "wait let me check " * 200 + "</think><answer>4</answer>"
    assert score(loop, info, {"repetition_penalty": 1.0})["repetition_penalty"] > 0.9
    assert score(ok("4"), info, {"hfrrf": 2.0})["score"] == 1.0  # clipped into [0, 1]


def test_user_reward_from_file(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text("def short_answer(response, info):\n    return 1.0 if len(response) < 80 else 0.0\n")
    got = score(ok("4"), {"ground_truth": "4", "answer_type": "number"}, {f"{f}:short_answer": 1.0})
    assert got["score"] == 1.0
    with pytest.raises(ValueError, match="has no function 'nope'"):
        score(ok("4"), {"ground_truth": "4", "answer_type": "number"}, {f"{f}:nope": 1.0})
    with pytest.raises(ValueError, match="did you mean 'hfrrf'"):
        score(ok("4"), {"ground_truth": "4", "answer_type": "number"}, {"hfrfr": 1.0})


def test_a_raising_user_reward_scores_zero(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text(
        "def boom(response, info):\n    raise RuntimeError('x')\n\ndef nan(response, info):\n    return float('nan')\n"
    )
    info = {"ground_truth": "4", "answer_type": "number"}
    assert score(ok("4"), info, {f"{f}:boom": 1.0})["score"] == 0.0
    assert score(ok("4"), info, {f"{f}:nan": 1.0})["score"] == 0.0


@pytest.mark.parametrize(
    "gold,answer_type,choices,problem",
    [
        ("C", "choice", ["1", "2", "3"], None),
        ("E", "choice", ["1", "2", "3"], "not a single option letter"),
        ("C or D", "choice", None, "not a single option letter"),
        ("12", "number", None, None),
        ("twelve", "number", None, "does not parse as a number"),
        ("3\\sqrt{2}", "expression", None, None),
        ("\\frac{1}{", "expression", None, "does not parse"),
        ("10^{10^{10}}", "expression", None, "too large"),
        ("red circle", "text", None, None),
        ("!!!", "label", None, "empty after normalisation"),
        ("[1, 2, 3, 4]", "bbox", None, None),
        ("[3, 2, 1, 4]", "bbox", None, "does not parse"),
        ("", "number", None, "empty gold"),
    ],
)
def test_gold_answers_are_checked_before_training(gold, answer_type, choices, problem):
    from pipeline.grading.answers import gold_answer_problem

    got = gold_answer_problem(gold, answer_type, choices)
    assert (got is None) if problem is None else (problem in got), got
