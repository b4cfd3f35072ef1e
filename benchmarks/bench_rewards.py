"""Reward throughput on a 10K-response corpus shaped like GRPO rollouts, against naive baselines measured in the
same run. Baselines: math-verify parse+verify per response in-process (what TRL's accuracy reward does) for
choice / number / expression, and a pycocotools COCOeval per sample for OVD.

    python -m benchmarks.bench_rewards [--n 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from benchmarks.common import save_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TARGETS = {"expression": ("hfrrf/s", 1000), "choice": ("hfrrf/s", 50_000), "ovd": ("ms/sample", 2.0)}
GROUP = 16  # responses per prompt, as in PTST stage 1


def _wrap(answer: str, rng: random.Random) -> str:
    r = rng.random()
    think = "<think>Let me look at the figure. Wait, let me check that again. So the value follows.</think>"
    if r < 0.08:
        return f"{think} The answer is {answer}"  # no answer block
    if r < 0.12:
        return f"<answer>{answer}</answer>"  # no think block
    return f"{think}<answer>{answer}</answer>"


def expression_corpus(n: int, rng: random.Random):
    items = []
    while len(items) < n:
        a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
        p, q = rng.randint(1, 11), rng.randint(2, 13)
        forms = [
            (f"{a}\\sqrt{{{b}}}", [f"\\sqrt{{{a * a * b}}}"], [f"{a + 1}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}"]),
            (f"\\frac{{{p}}}{{{q}}}", [f"{p}/{q}", f"\\dfrac{{{p}}}{{{q}}}"], [f"\\frac{{{q}}}{{{p}}}", f"{p + q}"]),
            (f"{a}\\pi", [f"\\pi \\cdot {a}"], [f"{a + 2}\\pi", f"{a}"]),
            (f"x^{{2}}+{a}x+{b}", [f"{b}+{a}x+x^{{2}}"], [f"x^{{2}}+{b}x+{a}"]),
        ]
        gold, equivalents, wrongs = rng.choice(forms)
        for _ in range(GROUP):  # a group: mostly the same few strings, as sampled rollouts are
            r = rng.random()
            ans = gold if r < 0.4 else rng.choice(equivalents) if r < 0.65 else rng.choice(wrongs)
            items.append((_wrap(ans, rng), {"ground_truth": gold, "answer_type": "expression"}))
    return items[:n]


def choice_corpus(n: int, rng: random.Random):
    items = []
    forms = ["{}", "({})", "{}.", "Final Answer: {}", "\\boxed{{{}}}", "The answer is {}", "{} or B"]
    while len(items) < n:
        gold = rng.choice("ABCD")
        info = {"ground_truth": gold, "answer_type": "choice", "choices": ["12", "15", "18", "21"]}
        for _ in range(GROUP):
            letter = gold if rng.random() < 0.5 else rng.choice("ABCD")
            items.append((_wrap(rng.choice(forms).format(letter), rng), info))
    return items[:n]


def number_corpus(n: int, rng: random.Random):
    items = []
    while len(items) < n:
        gold = rng.randint(1, 500)
        info = {"ground_truth": str(gold), "answer_type": "number"}
        for _ in range(GROUP):
            value = gold if rng.random() < 0.5 else gold + rng.randint(-3, 3)
            items.append((_wrap(rng.choice(["{}", "{}°", "x = {}", "{} cm", "{}.0"]).format(value), rng), info))
    return items[:n]


def ovd_corpus(n: int, rng: random.Random, n_boxes: int = 20):
    items = []
    for _ in range(n):
        gold = []
        for _ in range(n_boxes):
            x, y = rng.uniform(0, 900), rng.uniform(0, 900)
            box = [round(x), round(y), round(x + rng.uniform(10, 90)), round(y + rng.uniform(10, 90))]
            gold.append({"bbox_2d": box, "label": rng.choice(["cat", "dog", "car", "person"])})
        pred = [
            {
                "bbox_2d": [
                    b["bbox_2d"][0] + rng.randint(-6, 6),
                    b["bbox_2d"][1] + rng.randint(-6, 6),
                    b["bbox_2d"][2] + rng.randint(-6, 6),
                    b["bbox_2d"][3] + rng.randint(-6, 6),
                ],
                "label": b["label"],
            }
            for b in gold
            if rng.random() < 0.85
        ]
        pred = [p for p in pred if p["bbox_2d"][0] < p["bbox_2d"][2] and p["bbox_2d"][1] < p["bbox_2d"][3]]
        info = {"ground_truth": json.dumps(gold), "answer_type": "boxes", "coord_frame": "grid1000"}
        items.append((_wrap(json.dumps(pred), rng), info))
    return items


def naive_math_verify(items):
    """What most GRPO scripts do: regex out the answer, math-verify it in-process, one response at a time."""
    import math_verify

    out = []
    for response, info in items:
        m = re.search(r"<answer>(.*?)</answer>", response, re.S)
        if not m:
            out.append(0.0)
            continue
        gold = math_verify.parse(f"${info['ground_truth']}$")
        pred = math_verify.parse(f"${m.group(1)}$")
        out.append(float(bool(gold and pred and math_verify.verify(gold, pred))))
    return out


def naive_ovd(items):
    from coco_reference import pycocotools_map

    from pipeline.grading.boxes import parse_boxes

    out = []
    for response, info in items:
        m = re.search(r"<answer>(.*?)</answer>", response, re.S)
        pred = parse_boxes(m.group(1)) if m else []
        gold = parse_boxes(info["ground_truth"])
        out.append(min(1.0, len(gold) / max(1, len(pred))) * pycocotools_map(gold, pred) if pred else 0.0)
    return out


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def run(n: int, workers: int, naive_n: int) -> list[dict]:
    import pipeline.grading.mathverify as mv
    from rl.rewards.registry import score, score_batch

    rng = random.Random(0)
    rows = []
    corpora = {
        "choice": choice_corpus(n, rng),
        "number": number_corpus(n, rng),
        "expression": expression_corpus(n, rng),
        "ovd": ovd_corpus(min(n, 2000), rng),
    }
    for kind, items in corpora.items():
        responses, infos = [r for r, _ in items], [i for _, i in items]
        naive_items = items[:naive_n]
        naive_fn = naive_ovd if kind == "ovd" else naive_math_verify
        t_naive, _ = timed(naive_fn, naive_items)
        naive_rate = len(naive_items) / t_naive

        mv._POOL = mv.MathVerifyPool(n_workers=1)  # single process: one worker, one item at a time
        mv._POOL_PID = mv.os.getpid()
        mv.warm_up(mv._POOL)
        t_single, single = timed(lambda pairs: [score(r, i) for r, i in pairs], items)
        mv._POOL.close()

        mv._POOL = mv.MathVerifyPool(n_workers=workers)  # batched and parallel: verify_many over every worker
        mv._POOL_PID = mv.os.getpid()
        mv.warm_up(mv._POOL)
        t_batch, batched = timed(score_batch, responses, infos)
        mv._POOL.close()
        assert [s["score"] for s in single] == [s["score"] for s in batched], kind

        rate_single, rate_batch = len(items) / t_single, len(items) / t_batch
        row = {
            "reward": "ovd" if kind == "ovd" else f"hfrrf[{kind}]",
            "n": len(items),
            "naive_per_s": round(naive_rate, 1),
            "single_per_s": round(rate_single, 1),
            "batched_per_s": round(rate_batch, 1),
            "ratio_vs_naive": round(max(rate_single, rate_batch) / naive_rate, 1),
            "ms_per_sample": round(1000 / max(rate_single, rate_batch), 3),
            "mean_score": round(sum(s["score"] for s in batched) / len(batched), 3),
        }
        target = TARGETS.get(kind)
        if target:
            unit, goal = target
            value = row["ms_per_sample"] if unit == "ms/sample" else max(rate_single, rate_batch)
            row["target"] = f"{'<=' if unit == 'ms/sample' else '>='} {goal} {unit}"
            row["meets_target"] = value <= goal if unit == "ms/sample" else value >= goal
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive-n", type=int, default=400, help="responses timed for each naive baseline")
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    rows = run(args.n, args.workers, args.naive_n)
    header = [
        "reward",
        "n",
        "naive_per_s",
        "single_per_s",
        "batched_per_s",
        "ratio_vs_naive",
        "ms_per_sample",
        "target",
        "meets_target",
    ]
    print(" | ".join(header))  # noqa: T201
    for r in rows:
        print(" | ".join(str(r.get(h, "")) for h in header))  # noqa: T201
    save_result(args.out, "rewards", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
