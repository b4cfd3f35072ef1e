"""How vr1 grades, case by case: the three bugs that punished right answers, and every decision the README's
"how vr1 grades" table states (each row of that table has its test here)."""

import json

import pytest

from pipeline.grading.answers import answer_matches


def right(gold: str, pred: str, answer_type: str = "expression", **info) -> bool:
    return answer_matches(pred, {"ground_truth": gold, "answer_type": answer_type, **info}) == 1.0


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("x^2+y^2", "x^2+y^2"),
        ("a^2+b^2=c^2", "a^2+b^2=c^2"),
        ("72", "2^3\\cdot 3^2"),
        ("x^2/16 + y^2/12 = 1/4", "x^2/4 + y^2/3 = 1"),
        ("x^{2}+y^{2}", "x^2+y^2"),
    ],
)
def test_unbraced_powers_are_not_power_towers(gold, pred):
    assert right(gold, pred)


@pytest.mark.parametrize("tower", ["10^{10^{10}}", "2^3^4", "9^{9^9}", "2^{10000}", "(10^6)!"])
def test_numeric_towers_are_still_refused_even_against_themselves(tower):
    assert not right(tower, tower) and not right("7", tower)


def test_a_changed_power_is_wrong():
    assert not right("x^2+y^2", "x^2+y^3") and not right("72", "2^3\\cdot 3^3")


@pytest.mark.parametrize("pred", ["\\$10", "$10", "10 dollars", "\\$10.00", "US$10"])
@pytest.mark.parametrize("answer_type", ["number", "expression"])
def test_currency_is_a_unit(pred, answer_type):
    assert right("10", pred, answer_type) and right("\\$10", "10", answer_type)
    assert not right("10", pred.replace("10", "11"), answer_type)


@pytest.mark.parametrize("pred", ["1, 2, 3", "3, 2, 1", "$1$, $2$, $3$"])
def test_a_gold_of_several_math_pieces_is_one_list(pred):
    assert right("$1$ and $2$ and $3$", pred)
    assert not right("$1$ and $2$ and $3$", "1, 2") and not right("$1$ and $2$ and $3$", "1")


def test_pieces_joined_by_or_are_one_solution_set_not_alternatives():
    # "x = 21, 16 or 11" lists every solution: one of them alone is a partial answer, and crediting it would teach
    # a policy to name a single value
    gold = "$21,16$ or $11$"
    assert right(gold, "21,16,11") and right(gold, "11, 16, 21") and right(gold, "\\{11,16,21\\}")
    assert not right(gold, "11") and not right(gold, "21,16") and not right(gold, "16")


@pytest.mark.parametrize(
    "pred", ["\\boxed{1} and \\boxed{2}", "\\(\\boxed{1}\\) and \\(\\boxed{2}\\).", "$\\boxed{1}\\boxed{2}$"]
)
def test_boxes_side_by_side_are_one_list(pred):
    assert right("1, 2", pred) and right("\\{2, 1\\}", pred) and not right("2", pred)


def test_display_math_delimiters_are_delimiters():
    assert right("$9$", "Answer $$ 9 $$") and right("9", "$$9$$")


def test_a_whole_solution_counts_by_its_last_boxed_answer():
    assert right("\\frac{1}{2}", "So x = \\boxed{\\frac12}.")
    assert not right("1", "First \\boxed{1}, then \\boxed{2}")
    assert right("C", "The options narrow to \\boxed{C}", "choice", choices=["a", "b", "c"])


def test_decimal_comma_is_not_a_decimal_point():
    # 1,22 is read as the list {1, 22}: a training reward must not guess a locale
    assert not right("1.22", "1,22", "number") and not right("1.22", "1,22")
    assert right("1234", "1,234", "number")  # thousands groups of three are a separator


def test_bare_lists_are_sets_and_tuples_are_ordered():
    assert right("1,2,3", "3,2,1") and right("1, 2, 3", "2,3,1")
    assert not right("(1,2)", "(2,1)") and not right("(-2,1)", "(-2,1]")


def test_units_degrees_and_percent_are_dropped_not_converted():
    assert right("12", "12 cm", "number") and right("30", "30^\\circ", "number") and right("30", "30°", "number")
    assert right("50", "50\\%", "number") and not right("0.5", "50\\%")


@pytest.mark.parametrize("pred", ["A or B", "A, B", "A and B", "a", "AB"])
def test_choice_letters_are_strict(pred):
    assert not right("A", pred, "choice", choices=["1", "2"])


def test_vr1_grade_explains_a_verdict(capsys):
    from pipeline.cli import main

    assert main(["grade", "--type", "expression", "2\\sqrt{5}", "\\sqrt{20}"]) == 0
    out = capsys.readouterr().out
    assert "math-verify: equivalent" in out and "2*sqrt(5)" in out and "sqrt(20)" in out and "accuracy         1" in out

    assert (
        main(["grade", "--type", "choice", "B", "<answer>B</answer>", "--response", "--choices", "3", "4", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["extracted_answer"] == "B" and result["accuracy"] == 1.0
    assert result["format"].startswith("not exactly") and result["scores"]["score"] == 0.0  # HFRRF: format failed

    assert main(["grade", "--type", "number", "12", "twelve"]) == 0
    assert "not a single number" in capsys.readouterr().out

    assert main(["grade", "--type", "number", "12", "12", "--reward", "hfrf"]) == 2
    assert "unknown reward 'hfrf' (did you mean 'hfrrf'?)" in capsys.readouterr().err


def test_the_cold_start_filter_keeps_the_same_explanation():
    from coldstart.filters import Candidate, FilterConfig, rule_answer_match

    c = Candidate(
        id="s",
        source="d",
        answer_type="expression",
        gold="2\\sqrt{5}",
        choices=None,
        question="q",
        thinking="t",
        answer_text="<answer>\\sqrt{21}</answer>",
        final_answer="\\sqrt{21}",
        finish_reasons={},
    )
    reason = rule_answer_match(c, FilterConfig())
    assert "math-verify: not equivalent" in reason and "sqrt(21)" in reason and "2*sqrt(5)" in reason


def test_the_conformance_cases_get_their_intended_verdicts():
    from conformance_cases import CASES

    wrong = [case for case in CASES if right(case[2], case[3], case[1], choices=["a", "b", "c", "d"]) != case[4]]
    assert len(CASES) >= 90 and not wrong, wrong
    assert {case[0] for case in CASES} >= {
        "numbers",
        "fractions",
        "roots",
        "powers",
        "equations",
        "intervals",
        "sets",
        "tuples",
        "matrices",
        "units",
        "extraction",
        "choice",
        "text",
    }
