"""Exact arithmetic for the simple answers most math rewards see, so they skip sympy: sums of products of
rationals, square roots, powers of pi and single-letter variables (`\\frac{3\\sqrt{2}}{4}`, `16-4\\pi`, `2x^2+3x`).

A value is a dict {(radicand, pi power, variables): Fraction}, radicands square-free: such monomials are linearly
independent over the rationals, so two values are equal iff their dicts are. That is also math-verify's verdict on
them (its parse gives the same numbers and its symbolic check decides their equality). Where its parser reads a
form differently from the plain arithmetic reading, the form is refused here (`Unsupported`) and the comparison goes
to math-verify: `2\\frac{1}{2}` (a mixed number there), `2 3` and `3\\sqrt{4}` (integer then rational: also read as
a sum), a bare variable against anything (compared by name there), a trailing letter it takes for a unit (`3t`),
`x^23`, `\\frac12`, decimals next to an exact value (rounded to 6 places there; only a clear difference is decided
here), and any token outside the grammar.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

Key = tuple[int, int, tuple[tuple[str, int], ...]]  # (square-free radicand, power of pi, ((variable, exponent), ...))
Value = dict[Key, Fraction | int]  # ints where the coefficient is whole: Fraction arithmetic costs microseconds

_ONE: Key = (1, 0, ())
_MAX_RADICAND = 10**8  # factored by trial division: at most 10^4 steps
_MAX_EXPONENT = 12
_MAX_TERMS = 64
_VARIABLES = set("abcdfghjklmnopqrstuvwxyzABCDFGHJKLMNOPQRSTUVWXYZ")  # e and i are constants to math-verify
_SKIP = {"\\,", "\\;", "\\!", "\\:", "\\ ", "\\left", "\\right", "\\displaystyle"}
_TOKEN = re.compile(r"\s*([0-9]+\.[0-9]+|[0-9]+|\\[a-zA-Z]+|\\[,;!: ]|[a-zA-Z]|[-+*/^(){}\[\]]|.)", re.S)
_DIGITS = set("0123456789")  # ASCII only: int() would also read other scripts' digits
_ENDS_PRODUCT = {"+", "-", "*", "/", "\\cdot", "\\times", "\\div", ")", "}"}


class Unsupported(ValueError):
    """The text is outside the forms decided here; math-verify decides it."""


class _Num:
    """A parsed value and whether a decimal literal was read into it (math-verify rounds those)."""

    __slots__ = ("value", "inexact")

    def __init__(self, value: Value, inexact: bool = False):
        self.value = value
        self.inexact = inexact


def _clean(v: Value) -> Value:
    out = {k: c for k, c in v.items() if c}
    if len(out) > _MAX_TERMS:
        raise Unsupported("too many terms")
    return out


def _add(a: Value, b: Value, sign: int = 1) -> Value:
    out = dict(a)
    for k, c in b.items():
        out[k] = out.get(k, 0) + sign * c
    return _clean(out)


def _square_free(n: int) -> tuple[int, int]:
    """n = outer**2 * inner with inner square-free; (outer, inner)."""
    if n > _MAX_RADICAND:
        raise Unsupported("radicand too large to factor here")
    outer, inner, p = 1, 1, 2
    while p * p <= n:
        while n % (p * p) == 0:
            n //= p * p
            outer *= p
        if n % p == 0:
            n //= p
            inner *= p
        p += 1 if p == 2 else 2
    return outer, inner * n


def _merge_vars(a, b) -> tuple[tuple[str, int], ...]:
    powers = dict(a)
    for name, e in b:
        powers[name] = powers.get(name, 0) + e
    return tuple(sorted((n, e) for n, e in powers.items() if e))


def _mul(a: Value, b: Value) -> Value:
    out: Value = {}
    for (ra, pa, va), ca in a.items():
        for (rb, pb, vb), cb in b.items():
            g = math.gcd(ra, rb)
            key = ((ra // g) * (rb // g), pa + pb, _merge_vars(va, vb))
            out[key] = out.get(key, 0) + ca * cb * g
    return _clean(out)


def _rational(v: Value) -> Fraction | int | None:
    if not v:
        return 0
    if len(v) == 1 and _ONE in v:
        return v[_ONE]
    return None


def _inverse(v: Value) -> Value:
    """1/v for a non-zero monomial without variables (q*sqrt(r)*pi^k -> sqrt(r)/(q*r)*pi^-k); else refused."""
    if len(v) != 1:
        raise Unsupported("division by a sum")
    ((r, p, variables), c) = next(iter(v.items()))
    if variables:
        raise Unsupported("division by a variable")
    return {(r, -p, ()): Fraction(1, c * r) if isinstance(c, int) else 1 / (c * r)}


def _power(base: Value, exponent: Value) -> Value:
    n = _rational(exponent)
    if n is None or n.denominator != 1 or abs(n) > _MAX_EXPONENT:
        raise Unsupported("exponent is not a small integer")
    n = int(n)
    if n < 0:
        if not base:
            raise Unsupported("zero to a negative power")
        base, n = _inverse(base), -n
    if n == 0:
        if not base:
            raise Unsupported("0^0")
        return {_ONE: 1}
    out: Value = {_ONE: 1}
    for _ in range(n):
        out = _mul(out, base)
    return out


def _sqrt(v: Value) -> Value:
    q = _rational(v)
    if q is None or q < 0:
        raise Unsupported("square root of a non-rational or negative value")
    outer, inner = _square_free(q.numerator * q.denominator)
    return _clean({(inner, 0, ()): outer if q.denominator == 1 else Fraction(outer, q.denominator)})


class _Parser:
    """Recursive descent over latex2sympy's precedence: sums of `/`- and `*`-chains of implicit products."""

    def __init__(self, text: str):
        self.tokens = [t for t in _TOKEN.findall(text) if t.strip() and t not in _SKIP]
        self.i = 0
        self.inexact = False

    def peek(self) -> str | None:
        try:
            return self.tokens[self.i]
        except IndexError:
            return None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise Unsupported(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> _Num:
        value = self.expr()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return _Num(value, self.inexact)

    def expr(self) -> Value:
        value = self.mp()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            value = _add(value, self.mp(), sign)
        return value

    def mp(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/", "\\cdot", "\\times", "\\div"):
            op = self.take()
            rhs = self.unary()
            value = _mul(value, _inverse(rhs) if op in ("/", "\\div") else rhs)
        return value

    def unary(self) -> Value:
        if self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            v = self.unary()
            return v if sign == 1 else {k: -c for k, c in v.items()}
        factors = [self.postfix()]
        while self.i < len(self.tokens) and self.tokens[self.i] not in _ENDS_PRODUCT:
            factors.append(self.postfix())
        # latex2sympy reads an integer followed by rationals as a mixed number (2\frac{1}{2} = 5/2, 2 3 = 5)
        out = factors[-1]
        for f in reversed(factors[:-1]):
            if _rational(f) is not None and _rational(out) is not None:
                raise Unsupported("an implicit product of rationals (a mixed number to math-verify)")
            out = _mul(f, out)
        return out

    def postfix(self) -> Value:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            tok = self.peek()
            if tok == "{":
                self.take()
                exponent = self.expr()
                self.take("}")
            elif tok is not None and tok in _DIGITS:
                exponent = {_ONE: int(self.take())}
            else:
                raise Unsupported("an exponent that is not braced or a single digit")
            if self.peek() == "^":
                raise Unsupported("a power tower")
            base = _power(base, exponent)
        return base

    def braced(self) -> Value:
        self.take("{")
        value = self.expr()
        self.take("}")
        return value

    def atom(self) -> Value:
        tok = self.take()
        if tok[0] in _DIGITS:
            if "." in tok:
                self.inexact = True
                whole, frac = tok.split(".")
                if len(tok) > 18:
                    raise Unsupported("a long decimal")
                return _clean({_ONE: Fraction(int(whole + frac), 10 ** len(frac))})
            if len(tok) > 12 or (len(tok) > 1 and tok[0] == "0"):
                raise Unsupported("a long or zero-padded integer")
            return _clean({_ONE: int(tok)})
        if tok in _VARIABLES:
            nxt = self.peek()
            if nxt is not None and (nxt == "(" or (len(nxt) == 1 and nxt.isalpha())):
                raise Unsupported("adjacent letters (a word, a product of symbols) or a function call to math-verify")
            return {(1, 0, ((tok, 1),)): 1}
        if tok == "\\pi":
            return {(1, 1, ()): 1}
        if tok in ("\\frac", "\\dfrac", "\\tfrac"):
            if self.peek() != "{":
                raise Unsupported("\\frac without braces")
            num = self.braced()
            if self.peek() != "{":
                raise Unsupported("\\frac without braces")
            return _mul(num, _inverse(self.braced()))
        if tok == "\\sqrt":
            nxt = self.peek()
            if nxt == "{":
                return _sqrt(self.braced())
            if nxt is not None and nxt in _DIGITS:
                return _sqrt({_ONE: int(self.take())})
            raise Unsupported("\\sqrt with an index or without braces")
        if tok == "(":
            value = self.expr()
            self.take(")")
            return value
        if tok == "{":
            value = self.expr()
            self.take("}")
            return value
        raise Unsupported(f"token {tok!r}")


# math-verify's normaliser rewrites these before parsing: a unit word at the end (`3t`, `x m`: t, m, … are units
# there) and a digit after a closing brace (`\frac{1}{2}3`, read as `\frac{1}{2}{3}`)
_UNIT_LETTERS = set("cdghlmost")
_BRACE_DIGIT = re.compile(r"\}\s?\d")


# a mixed number as latex2sympy reads it: an integer followed by a positive fraction of integers is their sum
_MIXED = re.compile(r"^\s*(-?)\s*([0-9]{1,9})\s*\\[dt]?frac\s*\{\s*([0-9]{1,9})\s*\}\s*\{\s*([0-9]{1,9})\s*\}\s*$")


def parse_exact(text: str) -> _Num:
    """The value of `text` or `Unsupported`."""
    if m := _MIXED.match(text):
        whole, num, den = int(m.group(2)), int(m.group(3)), int(m.group(4))
        if num == 0 or den == 0:
            raise Unsupported("a mixed number with a zero part")
        value = Fraction(whole * den + num, den) * (-1 if m.group(1) else 1)
        return _Num(_clean({_ONE: value}))
    if len(text) > 200 or _BRACE_DIGIT.search(text):
        raise Unsupported("long, or a form math-verify rewrites")
    parser = _Parser(text)
    if parser.tokens and parser.tokens[-1] in _UNIT_LETTERS:
        raise Unsupported("ends in a letter math-verify reads as a unit")
    return parser.parse()


def _is_single_variable(v: Value) -> bool:
    if len(v) != 1:
        return False
    (r, p, variables), c = next(iter(v.items()))
    return c == 1 and r == 1 and p == 0 and len(variables) == 1 and variables[0][1] == 1


def _float(v: Value) -> float | None:
    total = 0.0
    for (r, p, variables), c in v.items():
        if variables:
            return None
        total += float(c) * math.sqrt(r) * math.pi**p
    return total


_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_PLAIN = re.compile(rf"^\s*{_NUMBER}\s*$")
_HEDGE = re.compile(rf"^\s*{_NUMBER}(?:\s+or\s+{_NUMBER})+\s*$")
_ASSIGNMENT = re.compile(r"^\s*([a-zA-Z])\s*=([^=<>]*)$")


def _hedge_verdict(gold: str, pred: str) -> bool | None:
    """`3 or 4` against a single number: math-verify reads the hedge as the set {3, 4}, which no number equals."""
    if _PLAIN.match(gold) and _HEDGE.match(pred) and len({float(x) for x in pred.split("or")}) > 1:
        return False
    return None


def _assignment_verdict(gold: str, pred: str) -> bool | None:
    """`y = R1` against `y = R2` (the same variable, absent from both sides' right): math-verify compares the
    relations, which are equal iff R1 = R2 (its solve step finds the same)."""
    mg, mp = _ASSIGNMENT.match(gold), _ASSIGNMENT.match(pred)
    if not (mg and mp) or mg.group(1) != mp.group(1) or mg.group(1) in _UNIT_LETTERS | {"e", "E", "i", "I"}:
        return None
    try:
        g, p = parse_exact(mg.group(2)), parse_exact(mp.group(2))
    except (Unsupported, ZeroDivisionError, OverflowError, RecursionError):
        return None
    name = mg.group(1)
    if g.inexact or p.inexact or any(name in dict(k[2]) for k in (*g.value, *p.value)):
        return None
    if _is_single_variable(g.value) or _is_single_variable(p.value):
        return None
    return g.value == p.value


def exact_equal(gold: str, pred: str) -> bool | None:
    """math-verify's verdict on (gold, pred) when it is decided by exact arithmetic, else None (not decided here)."""
    if "=" in gold or "=" in pred:
        return _assignment_verdict(gold, pred)
    if " or " in pred:
        return _hedge_verdict(gold, pred)
    try:
        g, p = parse_exact(gold), parse_exact(pred)
    except (Unsupported, ZeroDivisionError, OverflowError, RecursionError):
        return None
    if _is_single_variable(g.value) or _is_single_variable(p.value):
        return None
    if not (g.inexact or p.inexact):
        return g.value == p.value
    # a decimal: math-verify rounds to 6 places, so only a clear difference between two constants, or the same
    # exact value on both sides, is decided here
    a, b = _float(g.value), _float(p.value)
    if a is None or b is None or max(abs(a), abs(b)) >= 1e15:
        return None
    if g.value == p.value:
        return True
    return False if abs(a - b) > 1e-5 * max(1.0, abs(a), abs(b)) else None


def describe(text: str) -> str:
    """A readable form of the exact value (for explanations), e.g. `3*sqrt(2)/4 + pi`."""
    value = parse_exact(text).value
    if not value:
        return "0"
    parts = []
    for (r, p, variables), c in sorted(value.items()):
        factors = [str(c)] if c != 1 or (r == 1 and not p and not variables) else []
        factors += [f"sqrt({r})"] if r != 1 else []
        factors += ["pi" if p == 1 else f"pi**{p}"] if p else []
        factors += [n if e == 1 else f"{n}**{e}" for n, e in variables]
        parts.append("*".join(factors))
    return " + ".join(parts)
