"""math-verify worker process: reads JSON lines `[[gold, pred], ...]` on stdin, writes one `0`/`1` line per pair;
a triple `[gold, pred, "explain"]` is answered with a JSON line `[0 or 1, gold as parsed, pred as parsed]`.

Started as a plain script (`python math_worker.py TIMEOUT`) so it depends on nothing in the parent: not its
`__main__`, not its threads, not the project being importable. Its main thread may use signal-based timeouts.
"""

import json
import sys

PARSE_CACHE = 4096  # parsed answers kept per worker


def as_latex(expr: str) -> str:
    """math-verify reads bare LaTeX (`3\\sqrt{2}`) only inside math delimiters; add them when absent."""
    return expr if "$" in expr or "\\boxed" in expr or "\\(" in expr else f"${expr}$"


def readable(parsed) -> str:
    """What math-verify read: its sympy form(s), or a note that it read nothing."""
    if not parsed:
        return "(math-verify could not parse it)"
    return " | ".join(str(x) for x in parsed)[:300]


def main() -> None:
    import math_verify

    timeout = max(1, int(float(sys.argv[1]) if len(sys.argv) > 1 else 2))
    out = sys.stdout
    # a gold is compared with every response of its group: parse it once (sympy values are immutable)
    parsed: dict[str, list] = {}

    def parse(expr: str) -> list:
        hit = parsed.get(expr)
        if hit is None:
            hit = math_verify.parse(as_latex(expr), parsing_timeout=timeout)
            if len(parsed) >= PARSE_CACHE:
                parsed.clear()
            parsed[expr] = hit
        return hit

    for line in sys.stdin:
        for gold, pred, *explain in json.loads(line):
            value, g, p = 0, None, None
            try:
                g = parse(gold)
                p = parse(pred)
                value = int(bool(g and p and math_verify.verify(g, p, timeout_seconds=timeout)))
            except BaseException:  # noqa: BLE001 - TimeoutException is a BaseException; any failure = not verified
                value = 0
            if explain:
                out.write(json.dumps([value, readable(g), readable(p)]) + "\n")
            else:
                out.write(f"{value}\n")
            out.flush()


if __name__ == "__main__":
    main()
