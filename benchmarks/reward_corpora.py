"""Deterministic reward corpora shaped like GRPO rollouts: groups of responses per prompt, answers written as models
write them (LaTeX fractions, roots, pi, decimals, percentages, units, `\\boxed{}`, choice letters in many wrappings,
hedges and wrong answers), each comparison distinct within its corpus.

Each item is `(response, info, expected, family)`: `expected` is the verdict a reward should give (1.0 or 0.0) or
None where reasonable graders differ (a rounded decimal for an exact value, a percentage written as a fraction).
The bench reads peers' disagreements against it; `tests/test_grading_exact.py` reads the expression pairs to check
that exact arithmetic and math-verify agree.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from math import gcd, sqrt

GROUP = 16  # responses per prompt, as in PTST stage 1
THINK = "<think>Let me look at the figure. Wait, let me check that again. So the value follows.</think>"
SQUARE_FREE = [2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19, 21]


def wrap(answer: str, rng: random.Random, think: str = THINK) -> str:
    r = rng.random()
    if r < 0.06:
        return f"{think} The answer is {answer}"  # no answer block: accuracy 0, whatever the answer
    if r < 0.09:
        return f"<answer>{answer}</answer>"  # no think block
    return f"{think}<answer>{answer}</answer>"


def _dress(answer: str, rng: random.Random) -> str:
    """How the answer block states it: bare most often, else boxed, in dollars, or after "Final Answer:"."""
    r = rng.random()
    if r < 0.55:
        return answer
    if r < 0.7:
        return f"\\boxed{{{answer}}}"
    if r < 0.82:
        return f"${answer}$"
    if r < 0.92:
        return f"Final Answer: {answer}"
    return f"The answer is ${answer}$."


def _dec(x: float, places: int) -> str:
    return f"{x:.{places}f}"


def _rounded(gold, right, wrong, value: Fraction, places: list[int]):
    """A family's decimals of `value`: right when exact, else ambiguous (a rounded answer to an exact question)."""
    ambiguous = []
    for k in places:
        text = _dec(float(value), k)
        (right if Fraction(text) == value else ambiguous).append(text)
    return gold, right, wrong, ambiguous


# ---------------------------------------------------------------- expressions


def _fam_int(r):
    n = r.randint(1, 999)
    right = [str(n), f"{n}.0", f"x = {n}", f"{n}\\text{{ cm}}", f"{n} cm", f"{n}^\\circ", f"{n:,}"]
    wrong = [str(n + r.choice([-2, -1, 1, 2, 10])), str(n * 2), f"{n}/2", f"-{n}", f"{n} or {n + 1}"]
    return str(n), right, wrong, []


def _fam_decimal(r):
    a, b = r.randint(0, 99), r.randint(1, 99)
    gold = f"{a}.{b:02d}".rstrip("0")
    value = Fraction(a * 100 + b, 100)
    right = [f"{a}.{b:02d}", f"{gold}0", f"\\frac{{{value.numerator}}}{{{value.denominator}}}"]
    wrong = [f"{a}.{b + 1:02d}", f"{a + 1}.{b:02d}", f"-{gold}"]
    return _rounded(gold, right, wrong, value, [1])


def _fam_fraction(r):
    q = r.randint(2, 24)
    p = r.choice([k for k in range(1, 3 * q) if gcd(k, q) == 1 and k != q])
    k = r.randint(2, 5)
    gold = f"\\frac{{{p}}}{{{q}}}"
    right = [f"{p}/{q}", f"\\dfrac{{{p}}}{{{q}}}", f"\\frac{{{k * p}}}{{{k * q}}}", f"\\tfrac{{{p}}}{{{q}}}"]
    if q in (2, 4, 5, 8, 10, 20):
        right.append(str(float(Fraction(p, q))))
    wrong = [f"\\frac{{{q}}}{{{p}}}", f"\\frac{{{p + 1}}}{{{q}}}", str(p + q), f"-\\frac{{{p}}}{{{q}}}"]
    return _rounded(gold, right, wrong, Fraction(p, q), [2, 3])


def _fam_percent(r):
    a = r.randint(1, 99)
    gold = f"{a}\\%"
    return gold, [f"{a}%", f"{a}", f"{a}.0\\%"], [f"{a + 1}\\%", f"{100 - a}\\%"], [_dec(a / 100, 2)]


def _fam_sqrt(r):
    a, b = r.randint(2, 9), r.choice(SQUARE_FREE)
    gold = f"{a}\\sqrt{{{b}}}"
    right = [f"\\sqrt{{{a * a * b}}}", f"{a} \\sqrt{{{b}}}", f"{a}\\cdot\\sqrt{{{b}}}", f"\\sqrt{{{b}}}\\cdot {a}"]
    if b < 10:
        right.append(f"{a}\\sqrt {b}")
    wrong = [f"{a + 1}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}", f"{a}\\sqrt{{{b + 1}}}", f"{a * a * b}"]
    return gold, right, wrong, [_dec(a * sqrt(b), 2), _dec(a * sqrt(b), 6)]


def _fam_sqrt_frac(r):
    a, b, c = r.randint(1, 9), r.choice(SQUARE_FREE), r.randint(2, 9)
    g = gcd(a, c)
    a, c = a // g, c // g
    if c == 1:
        c = a + 1 if a > 1 else 2
    num = f"{a}\\sqrt{{{b}}}" if a > 1 else f"\\sqrt{{{b}}}"
    gold = f"\\frac{{{num}}}{{{c}}}"
    right = [f"\\frac{{{a}}}{{{c}}}\\sqrt{{{b}}}", f"\\frac{{\\sqrt{{{a * a * b}}}}}{{{c}}}", f"{num}/{c}"]
    wrong = [f"\\frac{{{c}\\sqrt{{{b}}}}}{{{a}}}" if a > 1 else f"{c}\\sqrt{{{b}}}", f"\\frac{{{num}}}{{{c + 1}}}"]
    return gold, right, wrong, [_dec(a * sqrt(b) / c, 3)]


def _fam_pi(r):
    a, c = r.randint(1, 30), r.choice([1, 1, 2, 3, 4, 6])
    g = gcd(a, c)
    a, c = a // g, c // g
    coef = "" if a == 1 else str(a)
    gold = f"{coef}\\pi" if c == 1 else f"\\frac{{{coef}\\pi}}{{{c}}}"
    right = [
        f"{a}\\cdot\\pi" if c == 1 else f"\\frac{{{a}}}{{{c}}}\\pi",
        f"\\pi \\cdot {a}" if c == 1 else f"{a}\\pi/{c}",
    ]
    wrong = [
        f"{a + 1}\\pi" if c == 1 else f"\\frac{{{a + 1}\\pi}}{{{c}}}",
        str(a) if c == 1 else f"\\frac{{{a}}}{{{c}}}",
    ]
    return gold, right, wrong, [_dec(a * 3.141592653589793 / c, 2)]


def _fam_pi_expr(r):
    a, b = r.randint(2, 64), r.randint(1, 16)
    gold = f"{a}-{b}\\pi"
    return gold, [f"-{b}\\pi+{a}", f"{a} - \\pi \\cdot {b}"], [f"{a}+{b}\\pi", f"{b}\\pi-{a}", f"{a}-{b + 1}\\pi"], []


def _fam_sqrt_sum(r):
    a, b, c = r.randint(1, 9), r.randint(1, 5), r.choice(SQUARE_FREE)
    gold = f"{a}+{b}\\sqrt{{{c}}}"
    return gold, [f"{b}\\sqrt{{{c}}}+{a}", f"{a}+\\sqrt{{{b * b * c}}}"], [f"{a}-{b}\\sqrt{{{c}}}", f"{a + b}"], []


def _fam_scientific(r):
    a, b, k = r.randint(1, 9), r.randint(1, 9), r.randint(3, 9)
    gold = f"{a}.{b}\\times10^{{{k}}}"
    return gold, [f"{a}.{b} \\times 10^{{{k}}}", f"{a}.{b}\\cdot 10^{{{k}}}"], [f"{a}.{b}\\times10^{{{k + 1}}}"], []


def _fam_poly(r):
    p, q, v = r.randint(-9, 9) or 1, r.randint(-9, 9) or 2, r.choice("xtab")
    s, t = -(p + q), p * q  # roots p, q: v^2 + s v + t = (v - p)(v - q)

    def lin(c):
        return f"+{c}" if c > 0 else (f"-{-c}" if c < 0 else "")

    gold = f"{v}^2{lin(s)}{v if s else ''}{lin(t)}".replace(f"+1{v}", f"+{v}").replace(f"-1{v}", f"-{v}")
    right = [
        f"({v}{lin(-p)})({v}{lin(-q)})",
        f"{t}{lin(s)}{v}+{v}^{{2}}" if t and s else f"{v}^{{2}}{lin(s)}{v if s else ''}{lin(t)}",
    ]
    wrong = [f"({v}{lin(p)})({v}{lin(q)})" if p + q else f"{v}^2+1", f"{v}^3{lin(s)}{v}{lin(t)}"]
    return gold, right, wrong, []


def _fam_equation(r):
    a, b = r.randint(2, 9), r.randint(1, 20)
    gold = f"y={a}x+{b}"
    return gold, [f"y = {a}x + {b}", f"y={b}+{a}x"], [f"y={a}x-{b}", f"y={b}x+{a}"], []


def _fam_interval(r):
    a, b = r.randint(-9, 0), r.randint(1, 12)
    gold = f"[{a}, {b})"
    return gold, [f"\\left[{a},{b}\\right)", f"[ {a} , {b} )"], [f"[{a}, {b}]", f"({a}, {b})"], []


def _fam_tuple(r):
    a, b = r.randint(-9, 9), r.randint(-9, 9)
    gold = f"({a}, {b})"
    return gold, [f"\\left({a}, {b}\\right)", f"({a},{b})"], [f"({b}, {a})" if a != b else f"({a}, {b + 1})"], []


def _fam_set(r):
    a, b = r.randint(1, 9), r.randint(10, 19)
    gold = f"{a}, {b}"
    return gold, [f"{b}, {a}", f"\\{{{a}, {b}\\}}"], [f"{a}", f"{a}, {b + 1}"], []


def _fam_mixed(r):
    a, b, c = r.randint(1, 5), r.randint(1, 3), r.choice([4, 5, 7])
    gold = f"{a}\\frac{{{b}}}{{{c}}}"
    return gold, [f"\\frac{{{a * c + b}}}{{{c}}}", f"{a * c + b}/{c}"], [f"\\frac{{{a * b}}}{{{c}}}"], []


# (family, weight): integers and simple closed forms dominate the answers of geometry and chart questions
EXPRESSION_FAMILIES = [
    (_fam_int, 16),
    (_fam_decimal, 9),
    (_fam_fraction, 12),
    (_fam_percent, 4),
    (_fam_sqrt, 12),
    (_fam_sqrt_frac, 6),
    (_fam_pi, 9),
    (_fam_pi_expr, 4),
    (_fam_sqrt_sum, 3),
    (_fam_scientific, 2),
    (_fam_poly, 6),
    (_fam_equation, 4),
    (_fam_interval, 3),
    (_fam_tuple, 3),
    (_fam_set, 2),
    (_fam_mixed, 2),
]


def expression_pairs(rng: random.Random, family):
    """(gold, [(prediction, expected)]) for one prompt of `family`."""
    gold, right, wrong, ambiguous = family(rng)
    preds = [(p, 1.0) for p in [gold, *right]] + [(p, 0.0) for p in wrong] + [(p, None) for p in ambiguous]
    return gold, preds


def _corpus(n: int, rng: random.Random, prompt) -> list[tuple]:
    """Groups of GROUP responses per prompt; a comparison (gold, answer text, choices) appears once."""
    items, seen = [], set()
    while len(items) < n:
        info, candidates, family = prompt(rng)
        for _ in range(GROUP):
            answer, expected = rng.choice(candidates)
            text = _dress(answer, rng) if info["answer_type"] != "choice" else answer
            key = (info["ground_truth"], text, tuple(info.get("choices") or ()))
            if key in seen:
                continue
            seen.add(key)
            response = wrap(text, rng)
            items.append((response, info, expected if "<answer>" in response else 0.0, family))
    return items[:n]


def expression_corpus(n: int, rng: random.Random) -> list[tuple]:
    families, weights = zip(*EXPRESSION_FAMILIES, strict=True)

    def prompt(r):
        family = r.choices(families, weights)[0]
        gold, preds = expression_pairs(r, family)
        return {"ground_truth": gold, "answer_type": "expression"}, preds, family.__name__[5:]

    return _corpus(n, rng, prompt)


def number_corpus(n: int, rng: random.Random) -> list[tuple]:
    def prompt(r):
        if r.random() < 0.7:
            gold = r.randint(1, 2000)
            gold_text = str(gold) if r.random() < 0.8 else f"{gold:,}"
            right = [str(gold), f"{gold}.0", f"{gold:,}", f"x = {gold}", f"{gold} cm", f"{gold}°", f"{gold}^\\circ"]
            right += [f"\\boxed{{{gold}}}", f"{gold}\\text{{ m}}^2", f"Final Answer: {gold}", f"{gold} units"]
            wrong = [str(gold + d) for d in (-3, -2, -1, 1, 2, 3, 10)] + [f"{gold} or {gold + 1}", f"{gold}, {gold}"]
            ambiguous = []
            family = "integer"
        else:
            gold_v = round(r.uniform(0.1, 500), r.choice([1, 2]))
            gold_text = f"{gold_v:g}"
            right = [gold_text, f"{gold_v:.3f}", f"{gold_text} cm", f"\\boxed{{{gold_text}}}", f"${gold_text}$"]
            wrong = [f"{gold_v + 0.5:g}", f"{gold_v * 10:g}", f"-{gold_text}"]
            ambiguous = [f"{gold_v:.0f}"] if float(f"{gold_v:.0f}") != gold_v else []
            family = "decimal"
        preds = [(p, 1.0) for p in right] + [(p, 0.0) for p in wrong] + [(p, None) for p in ambiguous]
        return {"ground_truth": gold_text, "answer_type": "number"}, preds, family

    return _corpus(n, rng, prompt)


_CHOICE_RIGHT = ["{}", "({})", "{}.", "{})", "Final Answer: {}", "Final Answer:{}", "\\boxed{{{}}}", "$\\boxed{{{}}}$"]
_CHOICE_RIGHT += ["The answer is {}", "The answer is ({})", "option {}", "Option ({})", "{}:", "Final Answer: ({})"]
_CHOICE_HEDGE = ["{} or {}", "{}, {}", "{} and {}", "{}{}", "{} or maybe {}", "either {} or {}"]


def choice_corpus(n: int, rng: random.Random) -> list[tuple]:
    def prompt(r):
        k = r.choice([4, 4, 5])
        choices = [str(v) for v in r.sample(range(1, 400), k)] if r.random() < 0.6 else r.sample(WORDS, k)
        letters = "ABCDE"[:k]
        gold = r.choice(letters)
        preds = []
        for letter in letters:
            ok = 1.0 if letter == gold else 0.0
            preds += [(form.format(letter), ok) for form in _CHOICE_RIGHT]
            preds.append((f"{letter}. {choices[letters.index(letter)]}", ok))  # the letter with its own text
            other = choices[(letters.index(letter) + 1) % k]
            preds.append((f"{letter}. {other}", 0.0))  # the letter with another option's text
            m = r.choice([x for x in letters if x != letter])
            preds += [(h.format(letter, m), 0.0) for h in r.sample(_CHOICE_HEDGE, 2)]
            preds.append((f"I think the answer is probably {letter}", 0.0))
            preds.append((letter.lower(), None))  # a bare lower-case letter: an article or an option
        return {"ground_truth": gold, "answer_type": "choice", "choices": choices}, preds, "choice"

    return _corpus(n, rng, prompt)


WORDS = ["red", "blue", "green", "circle", "square", "triangle", "cat", "dog", "left", "right", "up", "down", "none"]


def ovd_item(rng: random.Random, n_boxes: int) -> tuple:
    gold = []
    for _ in range(n_boxes):
        x, y = rng.uniform(0, 900), rng.uniform(0, 900)
        box = [round(x), round(y), round(x + rng.uniform(10, 90)), round(y + rng.uniform(10, 90))]
        gold.append({"bbox_2d": box, "label": rng.choice(["cat", "dog", "car", "person"])})
    pred = []
    for b in gold:
        if rng.random() < 0.85:
            box = [v + rng.randint(-6, 6) for v in b["bbox_2d"]]
            if box[0] < box[2] and box[1] < box[3]:
                pred.append({"bbox_2d": box, "label": b["label"]})
    info = {"ground_truth": json.dumps(gold), "answer_type": "boxes", "coord_frame": "grid1000"}
    return wrap(json.dumps(pred), rng), info, None, f"{n_boxes} boxes"


def ovd_corpus(n: int, rng: random.Random, n_boxes: int = 20) -> list[tuple]:
    return [ovd_item(rng, n_boxes) for _ in range(n)]
