"""The exact-arithmetic fast path gives math-verify's verdict: a differential test on generated pairs (the bench's
answer families and random expression trees rendered in several LaTeX styles), each pair the fast path decides
checked against math-verify in its worker, plus the forms it must leave to math-verify."""

import random
from fractions import Fraction

import pytest

from benchmarks.reward_corpora import EXPRESSION_FAMILIES, expression_pairs
from pipeline.grading.answers import Verdict, expression_pair, grade_answer
from pipeline.grading.exact import exact_equal
from pipeline.grading.mathverify import MathVerifyPool

VARIABLES = "xyrt"


def tree(r: random.Random, depth: int = 0):
    kinds = ["int", "pi", "sqrt", "var", "dec", "add", "mul", "frac", "pow", "neg"]
    kind = r.choices(kinds, [5, 2, 3, 2, 1, 3, 3, 2, 1, 1])[0]
    if depth >= 3 or kind in ("int", "pi", "sqrt", "var", "dec"):
        kind = kind if kind in ("int", "pi", "sqrt", "var", "dec") else "int"
        return {
            "int": ("int", r.randint(1, 12)),
            "dec": ("dec", r.choice(["0.5", "1.5", "2.25", "0.2", "3.75", "0.125"])),
            "pi": ("pi",),
            "sqrt": ("sqrt", r.choice([2, 3, 5, 8, 12, 18, 20, 27, 50])),
            "var": ("var", r.choice(VARIABLES)),
        }[kind]
    if kind in ("add", "mul"):
        return (kind, [tree(r, depth + 1) for _ in range(r.randint(2, 3))])
    if kind == "frac":
        den = r.choice([("int", r.randint(2, 9)), ("sqrt", r.choice([2, 3, 5])), ("pi",)])
        return ("frac", tree(r, depth + 1), den)
    if kind == "pow":
        return ("pow", tree(r, depth + 1), r.randint(2, 3))
    return ("neg", tree(r, depth + 1))


def perturb(node, r: random.Random):
    """The same tree with one integer changed (usually a different value)."""
    if node[0] == "int":
        return ("int", node[1] + r.choice([1, 2]))
    if node[0] in ("add", "mul"):
        kids = list(node[1])
        i = r.randrange(len(kids))
        kids[i] = perturb(kids[i], r)
        return (node[0], kids)
    if node[0] in ("frac", "neg"):
        return (node[0], perturb(node[1], r), *node[2:])
    if node[0] == "pow":
        return ("pow", perturb(node[1], r), node[2])
    return ("add", [node, ("int", 1)])


def render(node, r: random.Random, tight: bool = False) -> str:
    """LaTeX for `node` in a random style: operand order, \\frac or /, \\cdot or implicit product, braces."""
    kind = node[0]
    if kind == "int":
        return str(node[1])
    if kind == "dec":  # a decimal, or the same value as a fraction
        value = Fraction(node[1])
        return node[1] if r.random() < 0.6 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    if kind == "pi":
        return "\\pi"
    if kind == "var":
        return node[1]
    if kind == "sqrt":
        return f"\\sqrt {node[1]}" if node[1] < 10 and r.random() < 0.3 else f"\\sqrt{{{node[1]}}}"
    if kind == "neg":
        return f"-({render(node[1], r)})" if tight or r.random() < 0.5 else f"(-{render(node[1], r, True)})"
    if kind == "add":
        kids = list(node[1])
        r.shuffle(kids)
        text = "+".join(render(k, r) for k in kids)
        return f"({text})" if tight else text
    if kind == "mul":
        kids = list(node[1])
        if r.random() < 0.5:
            kids.reverse()
        parts = [render(k, r, True) for k in kids]
        text = parts[0]
        for p in parts[1:]:
            text += r.choice(["\\cdot ", "\\times "]) + p if p[0].isdigit() or r.random() < 0.5 else p
        return f"({text})" if tight else text
    if kind == "frac":
        num, den = render(node[1], r), render(node[2], r)
        form = r.choice(["\\frac{{{}}}{{{}}}", "\\dfrac{{{}}}{{{}}}", "({})/({})"])
        return form.format(num, den) if not tight else "(" + form.format(num, den) + ")"
    base = render(node[1], r, True)
    exponent = f"{{{node[2]}}}" if r.random() < 0.5 else str(node[2])
    return f"{base}^{exponent}"


def generated_pairs(
    n_trees: int = 100, n_family_prompts: int = 30, seed: int | None = 20240517
) -> list[tuple[str, str]]:
    r = random.Random(random.getrandbits(32) if seed is None else seed)
    pairs = []
    for _ in range(n_trees):
        t = tree(r)
        gold = render(t, r)
        pairs += [(gold, render(t, r)), (gold, render(t, r)), (gold, render(perturb(t, r), r))]
    for _ in range(n_trees // 4):
        t = tree(r)
        gold = "k=" + render(t, r)  # an assignment: k never appears on the right
        pairs += [(gold, "k = " + render(t, r)), (gold, "k=" + render(perturb(t, r), r))]
        a, b, c, n = r.randint(1, 9), r.randint(1, 6), r.choice([7, 8, 9]), r.randint(1, 99)
        pairs += [(f"{a}\\frac{{{b}}}{{{c}}}", f"\\frac{{{a * c + b}}}{{{c}}}"), (f"-{a}\\frac{{{b}}}{{{c}}}", f"{a}")]
        pairs += [(str(n), f"{n} or {n + 1}"), (f"{n}.5", f"{n}.5 or {n}")]
    families = [f for f, _ in EXPRESSION_FAMILIES]
    for i in range(n_family_prompts):
        gold, preds = expression_pairs(r, families[i % len(families)])
        pairs += [(gold, p) for p, _ in preds]
    return pairs


@pytest.fixture(scope="module")
def pool():
    p = MathVerifyPool(n_workers=2, timeout_s=5)
    yield p
    p.close()


def test_the_fast_path_gives_math_verifys_verdict_on_generated_pairs(pool):
    decided, undecided = [], 0
    for gold, pred in generated_pairs():
        slow = expression_pair(pred, gold, exact=False)
        if isinstance(slow, Verdict):  # decided before either path (same text, plain numbers)
            continue
        fast = exact_equal(*slow)
        if fast is None:
            undecided += 1
        else:
            decided.append((slow, fast))
    verdicts = pool.verify_many([pair for pair, _ in decided])
    wrong = [(pair, fast, slow) for (pair, fast), slow in zip(decided, verdicts, strict=True) if float(fast) != slow]
    assert not wrong, wrong
    # the fast path must carry most of these pairs, else the speed it exists for is gone
    assert len(decided) >= 2 * undecided and len(decided) >= 250, (len(decided), undecided)
    assert 0 < sum(f for _, f in decided) < len(decided)  # both verdicts occur


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("\\sqrt{4}\\frac{1}{2}", "1"),  # an integer-valued root then a rational: a mixed number there too
        ("3\\sqrt{4}", "6"),  # integer then rational: math-verify reads a sum
        ("2 3", "6"),
        ("x", "\\frac{2x}{2}"),  # a bare variable is compared by name there
        ("x^23", "x^{23}"),
        ("\\frac12", "0.5"),
        ("\\frac{\\sqrt{3}}{2}", "0.866025"),  # a decimal close to an exact value: math-verify rounds
        ("\\sqrt{-4}", "2i"),
        ("e", "2.718282"),
        ("\\sqrt[3]{8}", "2"),
        ("ab", "ba"),
        ("1,2", "2,1"),
        ("x=1", "1"),
        ("y=2x", "x=2y"),
        ("5", "5 or 5"),
        ("3\\frac{0}{7}", "3"),
    ],
)
def test_forms_read_differently_by_math_verify_are_left_to_it(gold, pred):
    assert exact_equal(gold, pred) is None


@pytest.mark.parametrize(
    "gold,pred,same",
    [
        ("3\\sqrt{2}", "\\sqrt{18}", True),
        ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
        ("16-4\\pi", "-4\\pi+16", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("\\frac{2\\sqrt{3}}{3}", "2\\frac{\\sqrt{3}}{3}", True),  # not a mixed number: the fraction is irrational
        ("\\sqrt{20}", "\\sqrt{21}", False),
        ("\\frac{\\sqrt{3}}{2}", "0.866", False),  # a clear difference from a decimal is decided
        ("4\\pi", "12.57", False),
        ("3\\frac{1}{7}", "\\frac{22}{7}", True),  # a mixed number, as math-verify reads it
        ("-3\\frac{1}{7}", "-\\frac{22}{7}", True),
        ("y=3x+19", "y = 19+3x", True),
        ("y=3x+19", "y=3x-19", False),
        ("900", "900 or 901", False),  # a hedge is a set of two values to math-verify
        ("2.6\\times10^{3}", "2.6\\cdot 10^{3}", True),
    ],
)
def test_exact_verdicts(gold, pred, same):
    assert exact_equal(gold, pred) is same


def test_explanations_still_show_math_verifys_reading():
    v = grade_answer("\\sqrt{20}", {"ground_truth": "2\\sqrt{5}", "answer_type": "expression"}, explain=True)
    assert v.accuracy == 1.0 and v.rule.startswith("math-verify") and "sqrt(20)" in v.pred_form
    fast = grade_answer("\\sqrt{20}", {"ground_truth": "2\\sqrt{5}", "answer_type": "expression"})
    assert fast.accuracy == 1.0 and fast.rule.startswith("exact arithmetic")
