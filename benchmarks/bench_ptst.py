"""Does PTST learn what more SFT cannot? Four arms per seed on the demo's reasoning task, on CPU:

- base: the random-init tiny student;
- SFT: the student trained on a small cold set (`--n-cold` items' reference solutions, standing in for what the
  cold start keeps: thinking plus answer);
- SFT-longer: SFT continued on the same cold set for exactly the process CPU time PTST used (the control);
- SFT+PTST: SFT, then PTST stage 1 (GRPO, hard format-result reward) on a larger answers-only set (`--n-rl`).

Each arm is scored on a held-out test split (greedy): HFRRF accuracy, format rate, mean thinking length. The
report gives per-seed figures, the mean and a 95% t-interval per arm, the paired PTST-minus-control difference,
the seeds where PTST did not win, and compute as process CPU time (this process plus its children) and wall time.

The task (pipeline/data/demo_data.py `task_colour`): the colour of one shape, hue families with jittered hue,
saturation and brightness, six options in a fixed order. Every split is drawn from its own stream.

    python -m benchmarks.bench_ptst [--seeds 0 1 2 3 4] [--rl-steps 40]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save_result

# two-sided 95% Student t quantiles by degrees of freedom (no scipy needed for a handful of seeds)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
ARMS = ("base", "sft", "sft_longer", "ptst")
THINK = re.compile(r"<think>(.*?)</think>", re.S)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (math-verify workers, data loaders)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width 0 for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T95.get(n - 1, 1.96) * sd / math.sqrt(n)


def evaluate(model_path: Path, manifest: Path, max_new_tokens: int, batch: int = 16) -> dict:
    """Greedy answers on every held-out sample: HFRRF accuracy, format rate, mean thinking tokens."""
    import torch
    from PIL import Image

    from pipeline.data.manifest import read_manifest
    from pipeline.models.load import load_model_and_processor
    from rl.ptst.data import prompt_text
    from rl.rewards.registry import score

    model, processor = load_model_and_processor(model_path)
    model.eval()
    processor.tokenizer.padding_side = "left"
    result = read_manifest(manifest)
    acc, fmt, think = [], [], []
    samples = result.samples
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        images = [[Image.open(result.manifest.image_root / rel).convert("RGB") for rel in s.images] for s in chunk]
        texts = [
            processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image"} for _ in ims] + [{"type": "text", "text": prompt_text(s)}],
                    }
                ],
                tokenize=False,
                add_generation_prompt=True,
            )
            for s, ims in zip(chunk, images, strict=True)
        ]
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for s, row in zip(chunk, out[:, inputs["input_ids"].shape[1] :], strict=True):
            response = processor.tokenizer.decode(row, skip_special_tokens=True)
            r = score(response, {"ground_truth": s.answer, "answer_type": "choice", "choices": s.choices}, "hfrrf")
            acc.append(r["score"])
            fmt.append(r["format"])
            m = THINK.search(response)
            think.append(len(processor.tokenizer(m.group(1))["input_ids"]) if m else 0)
    n = len(acc)
    return {"accuracy": sum(acc) / n, "format_rate": sum(fmt) / n, "thinking_tokens": sum(think) / n, "n": n}


class CPUBudget:
    """Stops SFT once this process has spent `seconds` of CPU since training began: the compute-matched control."""

    def __init__(self, seconds: float):
        from transformers import TrainerCallback

        budget = seconds

        class _Stop(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                self.t0 = cpu_seconds()

            def on_step_end(self, args, state, control, **kw):
                if cpu_seconds() - self.t0 >= budget:
                    control.should_training_stop = True

        self.callback = _Stop()


def sft(base: Path, manifest: Path, out: Path, steps: int, seed: int, lr: float, callbacks=None, **data) -> dict:
    """SFT of the tiny student on `manifest`'s reference solutions; `data` adds SFT data settings (pixel budget)."""
    from pipeline.config import build
    from rl.sft.config import SFTConfig
    from rl.sft.train import train

    cfg = build(
        SFTConfig,
        {
            "model": str(base),
            "mode": "full",
            "report_to": [],
            "device": "cpu",
            "data": {"manifests": [str(manifest)], "target": "reference_solution", "cutoff_len": 512, **data},
            "schedule": {
                "learning_rate": lr,
                "max_steps": steps,
                "per_device_batch_size": 8,
                "warmup_ratio": 0.0,
                "lr_scheduler_type": "constant",
                "save_steps": 100_000,
                "logging_steps": 10,
                "seed": seed,
            },
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    return train(cfg, out, callbacks=callbacks)


def rl_config(args, seed: int, data: dict):
    """The PTST config of one RL run of the bench: TRL on CPU, the GRPO settings from the command line."""
    from pipeline.config import build
    from rl.ptst.config import PTSTConfig

    return build(
        PTSTConfig,
        {
            "engine": "trl",
            "report_to": [],
            "device": "cpu",
            "seed": seed,
            "save_steps": 100_000,
            "data": data,
            "grpo": {
                "learning_rate": args.lr_rl,
                "prompts_per_step": args.prompts_per_step,
                "mini_batch_prompts": args.prompts_per_step,
                "kl_coef": args.kl,
                "temperature": args.temperature,
            },
        },
    )


def ptst(start: Path, manifest: Path, out: Path, args, seed: int) -> dict:
    from rl.ptst.config import Stage
    from rl.ptst.data import load_split, trl_rows
    from rl.ptst.trl_engine import run_stage

    cfg = rl_config(args, seed, {"reward": "hfrrf"})
    rows = trl_rows(load_split([str(manifest)], None), cfg.data)
    out.mkdir(parents=True, exist_ok=True)
    return run_stage(cfg, 1, Stage(args.max_response_length, args.group, args.rl_steps), start, out, rows)


def one_seed(seed: int, work: Path, args) -> dict:
    from pipeline.data.demo_data import generate_demo_data
    from pipeline.models.tiny import build_tiny_model

    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    data = work / "data"
    generate_demo_data(
        data, seed=seed, tasks=("colour",), splits={"cold": args.n_cold, "rl": args.n_rl, "test": args.n_eval}
    )
    test = data / "manifest_test.yaml"
    base = build_tiny_model("qwen2_5_vl", work / "base", seed=seed)
    row: dict = {"seed": seed, "arms": {}, "cpu_s": {}, "wall_s": {}}

    def timed(name, fn):
        c, w = cpu_seconds(), time.perf_counter()
        result = fn()
        row["cpu_s"][name], row["wall_s"][name] = round(cpu_seconds() - c, 1), round(time.perf_counter() - w, 1)
        return result

    row["arms"]["base"] = evaluate(base, test, args.max_response_length)
    timed("sft", lambda: sft(base, data / "manifest_cold.yaml", work / "sft", args.sft_steps, seed, args.lr_sft))
    row["arms"]["sft"] = evaluate(work / "sft" / "final", test, args.max_response_length)
    timed("ptst", lambda: ptst(work / "sft" / "final", data / "manifest_rl.yaml", work / "ptst", args, seed))
    row["arms"]["ptst"] = evaluate(work / "ptst" / "final", test, args.max_response_length)
    budget = CPUBudget(row["cpu_s"]["ptst"])
    summary = timed(
        "sft_longer",
        lambda: sft(
            work / "sft" / "final",
            data / "manifest_cold.yaml",
            work / "sft_longer",
            100_000,
            seed,
            args.lr_sft,
            [budget.callback],
        ),
    )
    row["sft_longer_steps"] = summary["global_step"]
    row["arms"]["sft_longer"] = evaluate(work / "sft_longer" / "final", test, args.max_response_length)
    row["total_cpu_s"] = round(cpu_seconds() - cpu0, 1)
    row["total_wall_s"] = round(time.perf_counter() - wall0, 1)
    return row


def describe(row: dict) -> str:
    a = row["arms"]
    return (
        f"seed {row['seed']}: accuracy base {a['base']['accuracy']:.3f}  SFT {a['sft']['accuracy']:.3f}  "
        f"SFT-longer {a['sft_longer']['accuracy']:.3f} ({row['sft_longer_steps']} more steps)  "
        f"SFT+PTST {a['ptst']['accuracy']:.3f}; format {a['sft']['format_rate']:.2f} / "
        f"{a['sft_longer']['format_rate']:.2f} / {a['ptst']['format_rate']:.2f}; PTST {row['cpu_s']['ptst']:.0f} "
        f"CPU-s ({row['wall_s']['ptst']:.0f} s wall); seed {row['total_cpu_s']:.0f} CPU-s, "
        f"{row['total_wall_s']:.0f} s wall"
    )


def report(rows: list[dict]) -> dict:
    out: dict = {"arms": {}}
    for arm in ARMS:
        out["arms"][arm] = {}
        for metric in ("accuracy", "format_rate", "thinking_tokens"):
            mean, half = interval([r["arms"][arm][metric] for r in rows])
            out["arms"][arm][metric] = {"mean": round(mean, 4), "ci95": round(half, 4)}
    for other in ("sft", "sft_longer"):
        diffs = [r["arms"]["ptst"]["accuracy"] - r["arms"][other]["accuracy"] for r in rows]
        mean, half = interval(diffs)
        fmt_mean, fmt_half = interval(
            [r["arms"]["ptst"]["format_rate"] - r["arms"][other]["format_rate"] for r in rows]
        )
        out[f"ptst_minus_{other}"] = {
            "accuracy_points": round(100 * mean, 1),
            "ci95_points": round(100 * half, 1),
            "outside_noise": mean - half > 0,
            "seeds_not_won": [r["seed"] for r, d in zip(rows, diffs, strict=True) if d <= 0],
            "format_points": round(100 * fmt_mean, 1),
            "format_ci95_points": round(100 * fmt_half, 1),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-cold", type=int, default=32, help="cold-set size (SFT data)")
    ap.add_argument("--n-rl", type=int, default=640, help="answers-only RL prompts")
    ap.add_argument("--n-eval", type=int, default=160)
    ap.add_argument("--sft-steps", type=int, default=400, help="SFT to its plateau on the cold set")
    ap.add_argument("--lr-sft", type=float, default=2e-3)
    ap.add_argument("--rl-steps", type=int, default=80)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--max-response-length", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--lr-rl", type=float, default=5e-4)
    ap.add_argument("--kl", type=float, default=0.02, help="KL coefficient to the SFT policy (keeps the format)")
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="RESULTS_JSON",
        help="report over the seeds of earlier runs (their results.json; e.g. seeds run as parallel processes)",
    )
    args = ap.parse_args(argv)
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    rows = []
    for path in args.merge or []:
        for row in json.loads(Path(path).read_text())["ptst"]["figures"]["seeds"]:
            print(describe(row))  # noqa: T201
            rows.append(row)
    for seed in [] if args.merge else args.seeds:
        row = one_seed(seed, Path(tempfile.mkdtemp(prefix=f"bench_ptst_{seed}_")), args)
        print(describe(row), flush=True)  # noqa: T201
        rows.append(row)
    summary = report(rows)
    print("\narm          accuracy (95% CI)     format rate (95% CI)   thinking tokens")  # noqa: T201
    for arm in ARMS:
        s = summary["arms"][arm]
        print(  # noqa: T201
            f"{arm:<12} {s['accuracy']['mean']:.3f} ± {s['accuracy']['ci95']:.3f}      "
            f"{s['format_rate']['mean']:.3f} ± {s['format_rate']['ci95']:.3f}        {s['thinking_tokens']['mean']:.1f}"
        )
    for other in ("sft", "sft_longer"):
        d = summary[f"ptst_minus_{other}"]
        print(  # noqa: T201
            f"PTST - {other}: {d['accuracy_points']:+.1f} ± {d['ci95_points']:.1f} accuracy points "
            f"({'outside' if d['outside_noise'] else 'NOT outside'} the seed noise); seeds where PTST did not win: "
            f"{d['seeds_not_won'] or 'none'}; format rate {d['format_points']:+.1f} ± "
            f"{d['format_ci95_points']:.1f} points"
        )
    cpu_min, wall_min = (cpu_seconds() - cpu0) / 60, (time.perf_counter() - wall0) / 60
    if args.merge:  # what the merged runs spent, not this process
        cpu_min = sum(r["total_cpu_s"] for r in rows) / 60
        wall_min = sum(r["total_wall_s"] for r in rows) / 60
    summed = " (summed over the merged runs, which may have run at the same time)" if args.merge else ""
    print(f"compute: {cpu_min:.1f} CPU-minutes (process + children), {wall_min:.1f} wall minutes{summed}")  # noqa: T201
    path = save_result(
        args.out,
        "ptst",
        {"args": vars(args), "seeds": rows, **summary, "cpu_minutes": cpu_min, "wall_minutes": wall_min},
    )
    print(f"wrote {path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
