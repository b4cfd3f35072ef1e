"""The cold start's work after generation, at corpus scale: the filter (every rule, near-duplicates by MinHash/LSH)
and the inspector's report, each as a curve of cost against corpus size up to 200K records; the inspector's report
for the largest size in detail (build time, largest single file, total size).

python -m benchmarks.bench_inspect [--n 200000] [--sizes 2000 20000 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import record_curve, save_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def filter_corpus(n: int, seed: int = 0) -> list:
    """Candidates shaped like the reasoner's output: thinking of 50-400 words from a 3,000-word vocabulary, ending
    on its answer; 2% near-copies of an earlier thinking (one word changed), 1% drifting into another script, 1%
    looping on a line, so every costly rule has work to do."""
    from coldstart.filters import Candidate

    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    bodies, out = [], []
    for i in range(n):
        roll = rng.random()
        if bodies and roll < 0.02:
            words = rng.choice(bodies).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            body = " ".join(words)
        else:
            body = " ".join(rng.choice(vocab) for _ in range(rng.randint(50, 400)))
            bodies.append(body)
        thinking = body
        if 0.02 <= roll < 0.03:
            thinking += " 所以答案是这个数字没有错"
        elif 0.03 <= roll < 0.04:
            thinking += "\nWait, let me check.\n" * 5
        thinking += f"\nSo the answer is {i % 97}."
        out.append(
            Candidate(
                id=f"bench/s{i:06d}",
                source="bench",
                answer_type="number",
                gold=str(i % 97),
                choices=None,
                question=f"Question {i}: how many bars are there?",
                thinking=thinking,
                answer_text=f"<answer>{i % 97}</answer>",
                final_answer=str(i % 97),
                finish_reasons={"pseudo_cot": "stop", "description": "stop", "reasoning": "stop"},
            )
        )
    return out


def filter_point(n: int) -> dict:
    from coldstart.filters import FilterConfig, apply_filters

    cands = filter_corpus(n)
    t0, c0 = time.perf_counter(), time.process_time()
    apply_filters(cands, FilterConfig())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    drops = Counter(r["rule"] for c in cands for r in c.reasons)
    return {
        "records": n,
        "filter_s": round(dt, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_record": round(cpu / n * 1e3, 3),
        "drops": dict(drops),
    }


def inspect_point(tmp: Path, n: int) -> tuple[dict, float]:
    from inspect_data import make_run

    from coldstart.inspect import build_report

    t0 = time.perf_counter()
    run = make_run(tmp / f"run{n}", n=n, n_images=64)
    t_data = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    index = build_report(run)
    t_build, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)
    return {
        "records": n,
        "records_mb": round((run / "coldstart.jsonl").stat().st_size / 1e6, 1),
        "build_s": round(t_build, 1),
        "build_cpu_s": round(cpu, 2),
        "records_per_s": round(n / t_build),
        "files": len(files),
        "total_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1),
        "largest_file": largest.name,
        "largest_mb": round(largest.stat().st_size / 1e6, 2),
        "index_html_kb": round(index.stat().st_size / 1e3, 1),
    }, t_data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="the largest corpus (the inspector's detailed figures)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000], help="smaller corpus sizes on the curves")
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    sizes = sorted({*args.sizes, args.n})

    filters = []
    for n in sizes:
        f = filter_point(n)
        filters.append(f)
        print(  # noqa: T201
            f"filter: {f['records']} records in {f['filter_s']}s, {f['cpu_s']} CPU-s ({f['cpu_ms_per_record']} ms "
            f"each); drops {f['drops']}",
            flush=True,
        )
    # CPU time, not wall time: on a shared machine the wall clock measures the neighbours (single-threaded work)
    record_curve(
        "filter CPU ms per record vs corpus size",
        "records",
        "CPU ms/record",
        [(f["records"], f["cpu_ms_per_record"]) for f in filters],
        note="every rule on (near_duplicate: MinHash/LSH); flat = linear in the corpus",
    )

    tmp = Path(tempfile.mkdtemp())
    reports = []
    for n in sizes:
        row, t_data = inspect_point(tmp, n)
        reports.append(row)
        print(  # noqa: T201
            f"inspect: {n} records ({row['records_mb']} MB of JSONL, made in {t_data:.0f}s) -> report in "
            f"{row['build_s']}s, {row['build_cpu_s']} CPU-s ({row['records_per_s']}/s), {row['files']} files, "
            f"{row['total_mb']} MB; largest file "
            f"{row['largest_file']} {row['largest_mb']} MB; index.html {row['index_html_kb']} kB"
        )
    record_curve(
        "inspect report CPU seconds vs corpus size",
        "records",
        "build CPU s",
        [(r["records"], r["build_cpu_s"]) for r in reports],
        note="the static HTML report; the largest file must stay bounded as the corpus grows",
    )
    record_curve(
        "inspect largest file MB vs corpus size",
        "records",
        "largest file MB",
        [(r["records"], r["largest_mb"]) for r in reports],
    )
    save_result(args.out, "inspect", {**reports[-1], "filter": filters, "inspect_curve": reports})
    return 0


if __name__ == "__main__":
    sys.exit(main())
