"""Reflexivity as a property: every answer form the benchmarks use, scored against itself and against its common
re-writings, is right; the same answer with one number or sign changed is wrong. Forms are drawn by hypothesis."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.grading.answers import answer_matches

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
small = st.integers(min_value=2, max_value=60)
signed = st.integers(min_value=-60, max_value=60).filter(lambda n: n not in (0, 1, -1))
var = st.sampled_from("xyabt")


def right(gold: str, pred: str, answer_type: str = "expression") -> bool:
    return answer_matches(pred, {"ground_truth": gold, "answer_type": answer_type, "choices": list("wxyz")}) == 1.0


numbers = st.tuples(small, small, small, signed, var)


def _frac(a, b, c, n, v):
    if a % b == 0:
        b += 1 if (a % (b + 1)) else 2
    return (
        "expression",
        f"\\frac{{{a}}}{{{b}}}",
        [f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\frac {{ {a} }} {{ {b} }}"],
        f"\\frac{{{a + 1}}}{{{b}}}",
    )


def _mixed(a, b, c, n, v):
    b, c = min(b, c - 1) if c > 2 else 1, max(c, 3)
    return (
        "expression",
        f"{a}\\frac{{{b}}}{{{c}}}",
        [f"{a}\\dfrac{{{b}}}{{{c}}}", f"\\frac{{{a * c + b}}}{{{c}}}"],
        f"{a + 1}\\frac{{{b}}}{{{c}}}",
    )


def _root(a, b, c, n, v):
    r = b if int(b**0.5) ** 2 != b else b + 1
    return (
        "expression",
        f"{a}\\sqrt{{{r}}}",
        [f"{a} \\sqrt{{{r}}}", f"{a}\\sqrt{r}" if r < 10 else f"\\sqrt{{{a * a * r}}}"],
        f"{a + 1}\\sqrt{{{r}}}",
    )


KINDS = [
    lambda a, b, c, n, v: ("number", str(n), [f" {n} ", f"{n}.0", f"{v} = {n}"], str(-n)),
    lambda a, b, c, n, v: ("number", f"{n}.{a}", [f"{n}.{a}0", f" {n}.{a}"], f"{n}.{a + 1}"),
    _frac,
    _mixed,
    _root,
    lambda a, b, c, n, v: ("expression", f"{a}\\pi", [f"{a} \\pi", f"\\pi \\cdot {a}"], f"{a + 1}\\pi"),
    lambda a, b, c, n, v: (
        "expression",
        f"\\frac{{{a}\\pi}}{{{b + 1}}}",
        [f"\\dfrac{{{a}\\pi}}{{{b + 1}}}"],
        f"\\frac{{{a + 1}\\pi}}{{{b + 1}}}",
    ),
    lambda a, b, c, n, v: (
        "expression",
        f"{v}^{{{a}}}",
        [f"{v}^{a}" if a < 10 else f"{v}^{{ {a} }}"],
        f"{v}^{{{a + 1}}}",
    ),
    lambda a, b, c, n, v: ("expression", f"{v}^2+{v}^3", [f"{v}^{{2}}+{v}^{{3}}", f"{v}^3 + {v}^2"], f"{v}^2-{v}^3"),
    lambda a, b, c, n, v: (
        "expression",
        f"{a}{v}^{{2}}+{b}{v}+{c}",
        [f"{a}{v}^2 + {b}{v} + {c}", f"{c}+{b}{v}+{a}{v}^2"],
        f"{a}{v}^{{2}}-{b}{v}+{c}",
    ),
    lambda a, b, c, n, v: ("expression", f"y={a}x+{b}", [f"y = {a}x + {b}", f"y={b}+{a}x"], f"y={a}x-{b}"),
    lambda a, b, c, n, v: ("expression", f"x\\geq {n}", [f"x \\ge {n}", f"x\\geq{n}"], f"x\\geq {-n}"),
    lambda a, b, c, n, v: (
        "expression",
        f"[{-a}, {b})",
        [f"\\left[{-a},{b}\\right)", f"[ {-a} , {b} )"],
        f"[{-a}, {b + 1})",
    ),
    lambda a, b, c, n, v: (
        "expression",
        f"\\{{{a},{a + b},{a + b + c}\\}}",
        [f"\\{{{a + b + c}, {a}, {a + b}\\}}"],
        f"\\{{{a},{a + b},{a + b + c + 1}\\}}",
    ),
    lambda a, b, c, n, v: ("expression", f"({a},{n})", [f"\\left({a}, {n}\\right)", f"( {a} , {n} )"], f"({a},{-n})"),
    lambda a, b, c, n, v: (
        "expression",
        f"\\begin{{pmatrix}}{a}&{b}\\\\{c}&{n}\\end{{pmatrix}}",
        [f"\\begin{{pmatrix}} {a} & {b} \\\\ {c} & {n} \\end{{pmatrix}}"],
        f"\\begin{{pmatrix}}{a}&{b}\\\\{c}&{-n}\\end{{pmatrix}}",
    ),
    lambda a, b, c, n, v: ("number", f"{a}^\\circ", [f"{a}°", f"{a}", f"{a}^{{\\circ}}"], f"{a + 1}^\\circ"),
    lambda a, b, c, n, v: ("number", f"{a}\\%", [f"{a}%", f"{a}"], f"{a + 1}\\%"),
    lambda a, b, c, n, v: ("number", f"\\${a}", [f"${a}", f"{a} dollars", f"{a}"], f"\\${a + 1}"),
    lambda a, b, c, n, v: ("number", f"{a}\\text{{ cm}}", [f"{a} cm", f"{a}"], f"{a + 1}\\text{{ cm}}"),
    lambda a, b, c, n, v: (
        "expression",
        f"{a}.5\\times10^{{{b}}}",
        [f"{a}.5 \\times 10^{{{b}}}"],
        f"{a}.5\\times10^{{{b + 1}}}",
    ),
    lambda a, b, c, n, v: (
        "text",
        ["red circle", "blue square", "green triangle"][a % 3],
        [["Red circle.", "The blue square", "green  triangle"][a % 3]],
        "yellow star",
    ),
    lambda a, b, c, n, v: (
        "choice",
        "ABCD"[a % 4],
        [f"({'ABCD'[a % 4]})", f"{'ABCD'[a % 4]}."],
        "ABCD"[(a + 1) % 4],
    ),
]


KIND_NAMES = [
    "integer",
    "decimal",
    "fraction",
    "mixed number",
    "root",
    "pi multiple",
    "pi fraction",
    "power",
    "unbraced powers",
    "polynomial",
    "equation",
    "inequality",
    "interval",
    "set",
    "tuple",
    "matrix",
    "degrees",
    "percent",
    "currency",
    "units",
    "scientific",
    "text",
    "choice letter",
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: KIND_NAMES[KINDS.index(k)])
@SETTINGS
@given(numbers)
def test_an_answer_is_right_against_itself_and_its_rewritings(kind, values):
    answer_type, gold, rewrites, _ = kind(*values)
    assert right(gold, gold, answer_type), (answer_type, gold)
    if answer_type != "text":  # \boxed{…} wraps math and letters, not free text
        assert right(gold, f"$\\boxed{{{gold}}}$", answer_type), gold
    for pred in rewrites:
        assert right(gold, pred, answer_type), (answer_type, gold, pred)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: KIND_NAMES[KINDS.index(k)])
@SETTINGS
@given(numbers)
def test_a_changed_number_or_sign_is_wrong(kind, values):
    answer_type, gold, _, wrong = kind(*values)
    assert not right(gold, wrong, answer_type), (answer_type, gold, wrong)


def test_every_form_is_drawn():
    assert len(set(KIND_NAMES)) == len(KINDS) >= 20
