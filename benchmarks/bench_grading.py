"""Grading conformance: vr1's verdicts and math-verify's own (its defaults, called in-process, LaTeX put in math
delimiters) against the verdict a training reward should give, on the conformance cases of `tests/conformance_cases.py`.
math-verify's agreement is counted on the cases where its semantics are the intended ones; the cases where vr1
decides otherwise on purpose are listed with both verdicts. The other peers of `bench_rewards` (verl's math_verify
and math_dapo scorers, mathruler) are scored on every case too, each disagreement with vr1 listed with who is right.

    python -m benchmarks.bench_grading
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import save_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def math_verify_verdict(gold: str, pred: str) -> bool:
    """math-verify at its strongest: its default parse and verify, each side put in `$…$` unless it already has
    delimiters (bare LaTeX like `2\\sqrt{5}` is otherwise not extracted at all)."""
    import math_verify

    def delimited(text: str) -> str:
        return text if "$" in text or "\\boxed" in text or "\\(" in text else f"${text}$"

    try:
        return bool(math_verify.verify(math_verify.parse(delimited(gold)), math_verify.parse(delimited(pred))))
    except BaseException:  # noqa: BLE001 - its TimeoutException is a BaseException; a failure is "not verified"
        return False


def main() -> None:
    from conformance_cases import CASES

    from pipeline.grading.answers import answer_matches

    t0 = time.perf_counter()
    per_category = defaultdict(lambda: {"cases": 0, "vr1": 0, "math_verify": 0, "math_verify_cases": 0})
    on_purpose = []
    for category, answer_type, gold, pred, expected, intended in CASES:
        info = {"ground_truth": gold, "answer_type": answer_type, "choices": ["a", "b", "c", "d"]}
        ours = answer_matches(pred, info) == 1.0
        theirs = math_verify_verdict(gold, pred)
        row = per_category[category]
        row["cases"] += 1
        row["vr1"] += ours == expected
        if intended:
            row["math_verify_cases"] += 1
            row["math_verify"] += theirs == expected
        else:
            on_purpose.append({"gold": gold, "prediction": pred, "expected": expected, "math_verify": theirs})
    peers = peer_conformance(CASES)
    total = {k: sum(r[k] for r in per_category.values()) for k in ("cases", "vr1", "math_verify", "math_verify_cases")}
    print(f"{'category':<14} {'cases':>5} {'vr1':>7} {'math-verify':>12}")  # noqa: T201
    for category, r in [*per_category.items(), ("all", total)]:
        mv = f"{r['math_verify']}/{r['math_verify_cases']}" if r["math_verify_cases"] else "-"
        print(f"{category:<14} {r['cases']:>5} {r['vr1']:>3}/{r['cases']:<3} {mv:>12}")  # noqa: T201
    print(  # noqa: T201
        f"vr1 agrees with the intended verdict on {total['vr1']}/{total['cases']} cases; math-verify (defaults) on "
        f"{total['math_verify']}/{total['math_verify_cases']} where its semantics are the intended ones; "
        f"{len(on_purpose)} cases where vr1 decides otherwise on purpose ({time.perf_counter() - t0:.1f}s)"
    )
    for name, p in peers.items():
        print(  # noqa: T201
            f"{name:<17} intended verdict on {p['right']}/{p['cases']}; differs from vr1 on {len(p['disagreements'])}"
            f" (vr1 right on {sum(d['who_is_right'] == 'vr1' for d in p['disagreements'])})"
        )
    save_result(
        "runs/bench",
        "grading",
        {"per_category": per_category, "total": total, "on_purpose": on_purpose, "peers": peers},
    )


def peer_conformance(cases) -> dict:
    """Every peer of the reward bench on every case (warmed first): its right count and its disagreements with vr1,
    each with who gives the intended verdict (the case's own verdict decides; "ambiguous" where the intended verdict
    is vr1's stated policy rather than math-verify's semantics, or a choice letter or free text)."""
    from benchmarks.bench_rewards import PEERS, warm_peers
    from pipeline.grading.answers import answer_matches

    warm_peers()
    out = {}
    for name, fn in PEERS.items():
        right, rows = 0, []
        for category, answer_type, gold, pred, expected, intended in cases:
            info = {"ground_truth": gold, "answer_type": answer_type, "choices": ["a", "b", "c", "d"]}
            ours = answer_matches(pred, info) == 1.0
            with contextlib.redirect_stdout(io.StringIO()):
                theirs = fn(gold, pred)
            right += theirs == expected
            if theirs != ours:
                who = "vr1" if ours == expected else name
                if not intended:  # vr1's stated policy (tolerance, currency, percent) or not a math grader's case
                    who = "ambiguous"
                rows.append(
                    {
                        "category": category,
                        "gold": gold,
                        "prediction": pred,
                        "expected": expected,
                        "vr1": ours,
                        name: theirs,
                        "who_is_right": who,
                    }
                )
        out[name] = {"cases": len(cases), "right": right, "disagreements": rows}
    return out


if __name__ == "__main__":
    main()
