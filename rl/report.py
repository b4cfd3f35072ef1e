"""The end of `make demo`: one page with what a person wants to see after a run.

Reads the cold start's summary (kept, dropped by rule), the SFT run's summary (what it trained on), every PTST
stage's metrics.jsonl and the evaluations of the base, SFT and PTST models on the demo test split; writes
`OUT/report.md` with the results table (accuracy, format rate, mean thinking length), `OUT/ptst_curves.png` (reward,
accuracy, format rate and response length per PTST step, every stage on one step axis, stage boundaries marked) and
`OUT/results.json`. The last line printed names the report.

    python -m rl.report [--eval base=runs/eval/demo-base sft=… ptst=…] [--ptst runs/ptst/demo] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.io import atomic_write_text, write_json

CURVES = (
    ("reward_mean", "reward (HFRRF)"),
    ("accuracy", "accuracy"),
    ("format_rate", "format rate"),
    ("response_length_mean", "response length (tokens)"),
)


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _yaml(path: Path) -> dict | None:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None


def eval_row(run: Path, benchmark: str = "manifest") -> dict | None:
    """accuracy, format rate, mean thinking tokens and n of one `vr1 eval` run, or None when it is missing."""
    results = _json(run / "results.json")
    if not results or benchmark not in results:
        return None
    r = results[benchmark]
    lengths = r.get("lengths", {})
    return {
        "accuracy": r.get("accuracy"),
        "format_rate": 1.0 - lengths.get("format_failure_rate", 1.0),
        "thinking_tokens": lengths.get("thinking_tokens", {}).get("mean"),
        "n": r.get("n"),
        "model": r.get("model"),
    }


def ptst_steps(ptst_dir: Path) -> tuple[list[dict], list[int]]:
    """Every stage's metric rows on one step axis (stage k's step 1 follows stage k-1's last), and the global
    steps at which each stage after the first begins."""
    rows, starts, offset = [], [], 0
    stages = sorted(ptst_dir.glob("stage_*/metrics.jsonl"), key=lambda p: int(p.parent.name.split("_")[1]))
    for k, path in enumerate(stages, 1):
        stage_rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if k > 1:
            starts.append(offset + 1)
        for row in stage_rows:
            rows.append({**row, "stage": k, "global_step": offset + row["step"]})
        offset += max((r["step"] for r in stage_rows), default=0)
    return rows, starts


SMOOTH = 10


def plot_curves(rows: list[dict], starts: list[int], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for ax, (key, label) in zip(axes.flat, CURVES, strict=True):
        points = [(r["global_step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker=".", linewidth=0.8, alpha=0.45, label="per step")
            if len(ys) >= 2 * SMOOTH:  # a few prompts per step is noisy: the trend is the running mean
                windows = (ys[max(0, i - SMOOTH + 1) : i + 1] for i in range(len(ys)))
                mean = [sum(w) / len(w) for w in windows]
                ax.plot(xs, mean, linewidth=2, color="C1", label=f"mean of the last {SMOOTH} steps")
                ax.legend(fontsize=7, loc="lower right")
        for k, x in enumerate(starts, 2):
            ax.axvline(x - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(x - 0.5, 1.0, f" stage {k}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("PTST step (all stages)")
    fig.suptitle("PTST on the demo: per step, rollouts of the training prompts")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def build_report(evals: dict[str, Path], ptst_dir: Path, coldstart_dir: Path, sft_dir: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    table = {name: eval_row(path) for name, path in evals.items()}
    rows, starts = ptst_steps(ptst_dir)
    png = plot_curves(rows, starts, out / "ptst_curves.png") if rows else None
    cold = _json(coldstart_dir / "summary.json") or {}
    sft = _json(sft_dir / "summary.json") or {}
    lines = ["# vr1 demo: results", ""]
    if cold:
        by_rule = ", ".join(f"{rule} {n}" for rule, n in sorted(cold.get("dropped_by_rule", {}).items())) or "none"
        lines += [
            f"**Cold start** (`{coldstart_dir}`): {cold.get('kept', 0)} of {cold.get('samples', 0)} samples kept; "
            f"drops by rule (a sample can have several): {by_rule}. Every drop with its reasons: `make inspect`.",
            "",
        ]
    if sft:
        data = (_yaml(sft_dir / "config.yaml") or {}).get("data", {})
        sources = [f"cold-start run(s) {data.get('coldstart_runs')}"] if data.get("coldstart_runs") else []
        sources += [f"manifest {m} (its reference solutions)" for m in data.get("manifests", [])]
        lines += [
            f"**SFT** (`{sft_dir}`): {sft.get('samples')} samples, {sft.get('global_step')} steps; data: "
            + ("; ".join(sources) or "see its config.yaml")
            + ".",
            "",
        ]
    lines += [
        "**Held-out test split** (`vr1 eval`, the same prompts and sampling for every model):",
        "",
        "| model | accuracy | format rate | mean thinking tokens | n |",
        "|---|---|---|---|---|",
    ]
    for name, r in table.items():
        if r is None:
            lines.append(f"| {name} | missing ({evals[name]}/results.json) | | | |")
            continue
        lines.append(
            f"| {name} | {_fmt(r['accuracy'], '.3f')} | {_fmt(r['format_rate'], '.3f')} | "
            f"{_fmt(r['thinking_tokens'], '.1f')} | {r['n']} |"
        )
    lines.append("")
    if png:
        lines += [
            f"**PTST per step** ({len(rows)} steps, {len(starts) + 1} stage(s); dashed lines mark stage starts):",
            "",
            f"![PTST curves]({png.name})",
            "",
        ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    write_json(out / "results.json", {"eval": table, "coldstart": cold, "sft": sft, "ptst_steps": rows})
    return out / "report.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--eval", nargs="+", default=["base=runs/eval/demo-base", "sft=runs/eval/demo-sft", "ptst=runs/eval/demo-ptst"]
    )
    ap.add_argument("--ptst", default="runs/ptst/latest")
    ap.add_argument("--coldstart", default="runs/coldstart/latest")
    ap.add_argument("--sft", default="runs/sft/latest")
    ap.add_argument("--out", default="runs/demo")
    args = ap.parse_args(argv)
    evals = {k: Path(v) for k, v in (item.split("=", 1) for item in args.eval)}
    report = build_report(evals, Path(args.ptst), Path(args.coldstart), Path(args.sft), Path(args.out))
    print(report.read_text())  # noqa: T201
    print(f"wrote {report.parent}/: report.md, ptst_curves.png, results.json")  # noqa: T201
    print(f"demo report: {report}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
