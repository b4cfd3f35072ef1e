"""Each cold-start filter rule on crafted samples: what it drops, why, and what it leaves alone."""

import pytest

from coldstart.filters import Candidate, FilterConfig, apply_filters

THINK = (
    "The image shows four blue bars labelled A to D. Bar B reads 7 and bar D reads 5. Wait, let me check "
    "the labels again: yes, B is 7 and D is 5, so the sum is 12."
)


def cand(**kw) -> Candidate:
    base = dict(
        id="s1",
        source="demo",
        answer_type="number",
        gold="12",
        choices=None,
        question="What is the sum of bars B and D?",
        thinking=THINK,
        answer_text="<answer>12</answer>",
        final_answer="12",
        finish_reasons={"pseudo_cot": "stop", "description": "stop", "reasoning": "stop"},
    )
    base.update(kw)
    return Candidate(**base)


def rules_of(c: Candidate, cfg: FilterConfig | None = None) -> list[str]:
    apply_filters([c], cfg or FilterConfig())
    return [r["rule"] for r in c.reasons]


def test_a_good_sample_is_kept():
    assert rules_of(cand()) == []


@pytest.mark.parametrize(
    "kw,rule,words",
    [
        (
            {"final_answer": "13", "answer_text": "<answer>13</answer>", "thinking": "Bar B is 7, bar D is 6 — " * 3},
            "answer_match",
            "does not match",
        ),
        ({"final_answer": None, "answer_text": "It is twelve."}, "answer_match", "no final answer"),
        ({"answer_text": "<answer>12</answer> <answer>12</answer>"}, "format", "exactly one <answer>"),
        ({"thinking": THINK + " <answer>12</answer>"}, "format", "tags"),
        ({"thinking": THINK.replace("so the sum is 12.", "so the answer is 11.")}, "consistency", "concludes '11'"),
        (
            {"finish_reasons": {"pseudo_cot": "stop", "description": "length", "reasoning": "stop"}},
            "truncated",
            "description",
        ),
        ({"thinking": THINK + "\nWait.\nWait.\nWait.\nWait.\nWait."}, "repetition", "repeats 5 times"),
        ({"thinking": THINK + " let me check again " * 60}, "repetition", "repeats"),
        ({"thinking": THINK + " 所以答案是十二，没有问题"}, "mixed_language", "mixed-language"),
        ({"thinking": "12."}, "length", "too short"),
    ],
)
def test_each_rule_drops_with_its_reason(kw, rule, words):
    c = cand(**kw)
    got = rules_of(c)
    assert rule in got, c.reasons
    assert words in next(r["reason"] for r in c.reasons if r["rule"] == rule)


def test_every_reason_is_kept_not_just_the_first():
    c = cand(final_answer="13", answer_text="<answer>13</answer> x <answer>13</answer>", thinking="13")
    assert {"answer_match", "format", "length"} <= set(rules_of(c))


def test_rules_are_individually_switchable():
    cfg = FilterConfig(rules={"length": False})
    assert rules_of(cand(thinking="Bar B is 7 and D is 5: 12."), cfg) == []
    with pytest.raises(ValueError, match="unknown rule"):
        FilterConfig(rules={"lenght": False})


def test_answer_types_choice_expression_text():
    assert (
        rules_of(
            cand(
                answer_type="choice",
                gold="B",
                choices=["3", "4"],
                final_answer="(B)",
                answer_text="<answer>(B)</answer>",
                thinking=THINK.replace("12", "B"),
            )
        )
        == []
    )
    assert rules_of(
        cand(
            answer_type="choice",
            gold="B",
            choices=["3", "4"],
            final_answer="A or B",
            answer_text="<answer>A or B</answer>",
            thinking=THINK.replace("12", "B"),
        )
    ) == ["answer_match"]
    assert (
        rules_of(
            cand(
                answer_type="expression",
                gold="\\sqrt{20}",
                final_answer="2\\sqrt{5}",
                answer_text="<answer>2\\sqrt{5}</answer>",
                thinking=THINK.replace("12", "2\\sqrt{5}"),
            )
        )
        == []
    )
    assert (
        rules_of(
            cand(
                answer_type="text",
                gold="red circle",
                final_answer="Red circle.",
                answer_text="<answer>Red circle.</answer>",
                thinking=THINK.replace("12", "red circle"),
            )
        )
        == []
    )


def test_near_duplicates_keep_the_first():
    a, b, c = (
        cand(id="a"),
        cand(id="b", thinking=THINK + " Done."),
        cand(id="c", thinking=THINK.replace("blue", "green") * 3),
    )
    d = cand(
        id="d",
        thinking="Count the circles: one at the top, one on the left, one in the middle; 12 in all? "
        "No wait, the bars: B is 7, D is 5, and 7 + 5 = 12.",
    )
    apply_filters([a, b, c, d], FilterConfig())
    assert a.reasons == [] and [r["rule"] for r in b.reasons] == ["near_duplicate"] and "of a" in b.reasons[0]["reason"]
    assert d.reasons == []


def test_coherence_is_an_edit_not_a_drop():
    c = cand(
        thinking="According to the description, bar B is 7. The description says bar D is 5, as described. "
        "So 7 + 5 = 12."
    )
    assert rules_of(c) == []
    assert "description" not in c.thinking and "According to the image" in c.thinking
    assert "the image shows bar D" in c.thinking and "as shown" in c.thinking
    assert sum(e["count"] for e in c.edits) == 3
    assert c.response() == f"<think>\n{c.thinking}\n</think>\n<answer>12</answer>"
