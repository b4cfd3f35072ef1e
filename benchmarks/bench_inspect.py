"""Inspector report for 200K synthetic cold-start records: build time, largest single file, total size.

python -m benchmarks.bench_inspect [--n 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main(argv=None) -> int:
    from inspect_data import make_run

    from coldstart.inspect import build_report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    run = make_run(tmp / "run", n=args.n, n_images=64)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = build_report(run)
    t_build = time.perf_counter() - t0
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)
    row = {
        "records": args.n,
        "records_mb": round((run / "coldstart.jsonl").stat().st_size / 1e6, 1),
        "build_s": round(t_build, 1),
        "records_per_s": round(args.n / t_build),
        "files": len(files),
        "total_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1),
        "largest_file": largest.name,
        "largest_mb": round(largest.stat().st_size / 1e6, 2),
        "index_html_kb": round(index.stat().st_size / 1e3, 1),
    }
    print(  # noqa: T201
        f"inspect: {args.n} records ({row['records_mb']} MB of JSONL, made in {t_data:.0f}s) -> report in "
        f"{row['build_s']}s ({row['records_per_s']}/s), {row['files']} files, {row['total_mb']} MB; largest file "
        f"{row['largest_file']} {row['largest_mb']} MB; index.html {row['index_html_kb']} kB"
    )
    save_result(args.out, "inspect", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
