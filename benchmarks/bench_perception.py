"""Does GRPO teach the tiny Qwen2.5-VL to localise? VLM-R1's REC on the demo images, on CPU, per seed:

- data: a fresh demo set per seed (`generate_demo_data`, then `write_perception_demo`): the REC train and test
  splits ("the green circle", "the bar B", "the triangle": one object's box in pixels of the 224x224 image; at
  max_pixels 50176 the Qwen2.5-VL frame is the original image, checked with `smart_resize`);
- base: the random-init tiny student (it cannot write the format);
- SFT: a short SFT on the REC train split, prompt as GRPO asks it (`vlm_r1_rec`), target
  `<think>the green circle</think><answer>[x1, y1, x2, y2]</answer>` (VLM-R1 starts from an instruct model that
  already writes boxes; this stands in for it): the format, not yet the localisation;
- SFT+GRPO: PTST on the TRL engine from the SFT model, VLM-R1's REC reward (`vlm_r1_rec`: box format + IoU);
- SFT-longer (the control, `--control`): SFT continued on the same data for the process CPU time GRPO used.

Each arm is scored greedily on the held-out REC test split by the product's reward code: Acc@0.5 (IoU > 0.5), mean
IoU, the VLM-R1 format rate (tags and exactly one box), boxes per answer, and the IoU distribution. A blind prior
(the mean train box of each referring expression, no image read) says what an Acc@0.5 means here. The curve is
the rollouts' IoU and Acc@0.5 per GRPO step (training samples, at the rollout temperature), mean over seeds.

    python -m benchmarks.bench_perception [--seeds 0 1 2] [--rl-steps 200] [--control] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_ptst import CPUBudget, cpu_seconds, interval, rl_config
from benchmarks.bench_ptst import sft as tiny_sft
from benchmarks.common import record_curve, save_result

MAX_PIXELS = 50176  # 224 x 224: the demo images are not resized (checked per run)
MIN_PIXELS = 28 * 28 * 4
TEMPLATE = "vlm_r1_rec"
REWARD = "vlm_r1_rec"
EXPRESSION = re.compile(r"describes: (.*?)\.?$")
METRICS = ("acc_at_50", "iou", "format_rate", "boxes_per_answer", "iou_gt_0", "tag_format_rate")


def expression(question: str) -> str:
    m = EXPRESSION.search(question.strip())
    return m.group(1) if m else "the object"


def kind(question: str) -> str:
    """The demo's three kinds of referring expression: a chart's bar, a geometry figure's triangle, a shape."""
    e = expression(question)
    return "bar" if e.startswith("the bar") else "triangle" if e == "the triangle" else "shape"


def by_kind(items: list, ious: list[float]) -> dict:
    out: dict[str, dict] = {}
    for (s, _), v in zip(items, ious, strict=True):
        k = out.setdefault(kind(s.question), {"n": 0, "acc_at_50": 0.0, "iou": 0.0})
        k["n"] += 1
        k["acc_at_50"] += v > 0.5
        k["iou"] += v
    return {
        name: {"n": k["n"], "acc_at_50": round(k["acc_at_50"] / k["n"], 4), "iou": round(k["iou"] / k["n"], 4)}
        for name, k in sorted(out.items())
    }


def rec_split(perception: Path, split: str) -> list:
    """(Sample, image root) pairs of the REC split."""
    from rl.ptst.data import load_split

    return load_split([str(perception / f"manifest_rec_{split}.yaml")], None)


def sft_manifest(items: list, out: Path) -> Path:
    """The REC train split as an SFT set: the question as GRPO and eval ask it (the vlm_r1_rec template), the
    assistant turn a short think naming the object, then the gold box."""
    import yaml

    from pipeline.data.schema import Sample
    from pipeline.io import write_jsonl
    from rl.ptst.data import prompt_text

    root = {str(r) for _, r in items}
    if len(root) != 1:
        raise RuntimeError(f"one image root expected, got {root}")
    rows = []
    for s, _ in items:
        target = f"<think>{expression(s.question)}</think><answer>{s.answer}</answer>"
        meta = dict(s.meta, reference_solution=target)
        rows.append(Sample(s.id, s.source, prompt_text(s, TEMPLATE), s.answer, s.answer_type, s.images, None, meta))
    write_jsonl(out / "rec_sft.jsonl", (r.to_dict() for r in rows))
    spec = {"name": "rec_sft", "format": "vr1", "path": "rec_sft.jsonl", "image_root": root.pop()}
    (out / "manifest_rec_sft.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out / "manifest_rec_sft.yaml"


def infos(items: list) -> list[dict]:
    from pipeline.data.images import resolve_image
    from pipeline.data.reward_info import reward_info

    return [
        reward_info(
            s,
            lambda rel, root=root: resolve_image(root, rel, "images"),
            min_pixels=MIN_PIXELS,
            max_pixels=MAX_PIXELS,
            pred_frame="abs_resized",
        )
        for s, root in items
    ]


def check_frame(items: list) -> None:
    """The Qwen2.5-VL resized frame equals the original pixels at MAX_PIXELS (else the boxes would be rescaled)."""
    from pipeline.grading.geometry import smart_resize

    sizes = {tuple(size) for info in infos(items) for size in info["image_sizes"]}
    for w, h in sizes:
        if smart_resize(w, h, 28, MIN_PIXELS, MAX_PIXELS) != (w, h):
            raise RuntimeError(f"a {w}x{h} image is resized at max_pixels {MAX_PIXELS}: frames differ")


def blind_prior(train: list, test: list) -> dict:
    """Acc@0.5 and mean IoU of the mean train box of each referring expression (the image never read)."""
    from pipeline.grading.boxes import parse_bbox
    from pipeline.grading.geometry import iou

    sums: dict[str, list[float]] = {}
    for s, _ in train:
        box, e = parse_bbox(s.answer), expression(s.question)
        acc = sums.setdefault(e, [0.0] * 5)
        for k in range(4):
            acc[k] += box[k]
        acc[4] += 1
    overall = [sum(v[k] for v in sums.values()) / sum(v[4] for v in sums.values()) for k in range(4)]
    ious = []
    for s, _ in test:
        v = sums.get(expression(s.question))
        guess = [v[k] / v[4] for k in range(4)] if v else overall
        ious.append(iou(guess, parse_bbox(s.answer)))
    n = len(ious)
    return {"acc_at_50": sum(x > 0.5 for x in ious) / n, "iou": sum(ious) / n, "n": n, "by_kind": by_kind(test, ious)}


def evaluate(model_path: Path, items: list, max_new_tokens: int, batch: int = 16) -> dict:
    """Greedy answers on every held-out item, scored by the product's REC reward and task metrics."""
    import torch
    from PIL import Image

    from pipeline.models.load import load_model_and_processor, set_pixel_budget
    from rl.ptst.data import prompt_text
    from rl.rewards.registry import score

    model, processor = load_model_and_processor(model_path)
    set_pixel_budget(processor, MIN_PIXELS, MAX_PIXELS)
    model.eval()
    processor.tokenizer.padding_side = "left"
    scored = []
    item_infos = infos(items)
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        images = [[Image.open(p).convert("RGB") for p in info["image_paths"]] for info in item_infos[i : i + batch]]
        texts = [
            processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image"} for _ in ims]
                        + [{"type": "text", "text": prompt_text(s, TEMPLATE)}],
                    }
                ],
                tokenize=False,
                add_generation_prompt=True,
            )
            for (s, _), ims in zip(chunk, images, strict=True)
        ]
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for info, row in zip(item_infos[i : i + batch], out[:, inputs["input_ids"].shape[1] :], strict=True):
            response = processor.tokenizer.decode(row, skip_special_tokens=True)
            scored.append((score(response, info, REWARD), response))
    n = len(scored)
    ious = sorted(r["iou"] for r, _ in scored)
    return {
        "n": n,
        "by_kind": by_kind(items, [r["iou"] for r, _ in scored]),
        "acc_at_50": sum(r["acc_at_50"] for r, _ in scored) / n,
        "iou": sum(ious) / n,
        "format_rate": sum(r["box_format"] for r, _ in scored) / n,  # VLM-R1's: tags and exactly one box
        "tag_format_rate": sum(r["format"] for r, _ in scored) / n,
        "boxes_per_answer": sum(r["boxes_per_answer"] for r, _ in scored) / n,
        "iou_gt_0": sum(x > 0 for x in ious) / n,
        "iou_quartiles": [round(ious[int(q * (n - 1))], 3) for q in (0.25, 0.5, 0.75)] + [round(ious[-1], 3)],
        "distinct_answers": len({resp.split("<answer>")[-1] for _, resp in scored}),
        "examples": [resp for _, resp in scored[:3]],
    }


def sft(base: Path, manifest: Path, out: Path, steps: int, seed: int, lr: float, callbacks=None) -> dict:
    """bench_ptst's SFT of the tiny student, at this bench's pixel budget."""
    return tiny_sft(base, manifest, out, steps, seed, lr, callbacks, max_pixels=MAX_PIXELS, min_pixels=MIN_PIXELS)


def grpo(start: Path, items: list, out: Path, args, seed: int) -> dict:
    from rl.ptst.config import Stage
    from rl.ptst.data import policy_frame, trl_rows
    from rl.ptst.trl_engine import run_stage

    data = {"reward": REWARD, "prompt_template": TEMPLATE, "max_pixels": MAX_PIXELS, "min_pixels": MIN_PIXELS}
    cfg = rl_config(args, seed, {**data, "max_prompt_length": 1024})
    frame = policy_frame(cfg.data, start)
    if frame != "abs_resized":
        raise RuntimeError(f"the start model writes boxes in {frame}, not abs_resized")
    rows = trl_rows(items, cfg.data, pred_frame=frame)
    out.mkdir(parents=True, exist_ok=True)
    return run_stage(cfg, 1, Stage(args.max_response_length, args.group, args.rl_steps), start, out, rows)


def one_seed(seed: int, work: Path, args) -> dict:
    from pipeline.data.demo_data import generate_demo_data
    from pipeline.data.perception_demo import write_perception_demo
    from pipeline.models.tiny import build_tiny_model

    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    generate_demo_data(work / "demo", n_train=args.n_demo_train, n_test=args.n_demo_test, seed=seed)
    write_perception_demo(work / "demo", work / "perception", seed=seed)
    train, test = rec_split(work / "perception", "train"), rec_split(work / "perception", "test")
    check_frame(train + test)
    manifest = sft_manifest(train, work)
    base = build_tiny_model("qwen2_5_vl", work / "base", seed=seed, size=args.size)
    row: dict = {"seed": seed, "n_train": len(train), "n_test": len(test), "arms": {}, "cpu_s": {}, "wall_s": {}}
    row["blind_prior"] = blind_prior(train, test)

    def timed(name, fn):
        c, w = cpu_seconds(), time.perf_counter()
        result = fn()
        row["cpu_s"][name], row["wall_s"][name] = round(cpu_seconds() - c, 1), round(time.perf_counter() - w, 1)
        return result

    tokens = args.max_response_length
    row["arms"]["base"] = timed("eval_base", lambda: evaluate(base, test, tokens))
    timed("sft", lambda: sft(base, manifest, work / "sft", args.sft_steps, seed, args.lr_sft))
    row["arms"]["sft"] = evaluate(work / "sft" / "final", test, tokens)
    timed("grpo", lambda: grpo(work / "sft" / "final", train, work / "grpo", args, seed))
    row["arms"]["grpo"] = evaluate(work / "grpo" / "final", test, tokens)
    row["rollouts"] = [json.loads(line) for line in (work / "grpo" / "metrics.jsonl").read_text().splitlines()]
    if args.control:
        budget = CPUBudget(row["cpu_s"]["grpo"])
        summary = timed(
            "sft_longer",
            lambda: sft(
                work / "sft" / "final", manifest, work / "sft_longer", 100_000, seed, args.lr_sft, [budget.callback]
            ),
        )
        row["sft_longer_steps"] = summary["global_step"]
        row["arms"]["sft_longer"] = evaluate(work / "sft_longer" / "final", test, tokens)
    row["total_cpu_s"] = round(cpu_seconds() - cpu0, 1)
    row["total_wall_s"] = round(time.perf_counter() - wall0, 1)
    return row


def run_seed(seed: int, args) -> dict:
    row = one_seed(seed, Path(tempfile.mkdtemp(prefix=f"bench_perception_{seed}_")), args)
    row["temperature"] = args.temperature
    return row


def describe(row: dict) -> str:
    lines = [
        f"seed {row['seed']} ({row['n_train']} train, {row['n_test']} test items; blind prior Acc@0.5 "
        f"{row['blind_prior']['acc_at_50']:.3f}, IoU {row['blind_prior']['iou']:.3f}); GRPO "
        f"{row['cpu_s']['grpo']:.0f} CPU-s ({row['wall_s']['grpo']:.0f} s wall); seed {row['total_cpu_s']:.0f} "
        f"CPU-s, {row['total_wall_s']:.0f} s wall"
    ]
    for arm, a in row["arms"].items():
        extra = f" (+{row['sft_longer_steps']} SFT steps)" if arm == "sft_longer" else ""
        lines.append(
            f"  {arm:<10} Acc@0.5 {a['acc_at_50']:.3f}  IoU {a['iou']:.3f}  IoU>0 {a['iou_gt_0']:.2f}  "
            f"format {a['format_rate']:.2f}  boxes/answer {a['boxes_per_answer']:.2f}  IoU quartiles "
            f"{a['iou_quartiles'][:3]} max {a['iou_quartiles'][3]}  distinct answers {a['distinct_answers']}{extra}"
        )
        kinds = ", ".join(f"{k} {v['acc_at_50']:.2f}/{v['iou']:.2f} (n={v['n']})" for k, v in a["by_kind"].items())
        lines.append(f"             Acc@0.5/IoU by kind: {kinds}")
    prior = ", ".join(f"{k} {v['acc_at_50']:.2f}/{v['iou']:.2f}" for k, v in row["blind_prior"]["by_kind"].items())
    lines.append(f"  blind prior Acc@0.5/IoU by kind: {prior}")
    return "\n".join(lines)


def report(rows: list[dict]) -> dict:
    arms = [a for a in ("base", "sft", "grpo", "sft_longer") if all(a in r["arms"] for r in rows)]
    out: dict = {"arms": {}}
    for arm in arms:
        out["arms"][arm] = {}
        for metric in METRICS:
            mean, half = interval([r["arms"][arm][metric] for r in rows])
            out["arms"][arm][metric] = {"mean": round(mean, 4), "ci95": round(half, 4)}
    for other in [a for a in ("sft", "sft_longer") if a in arms]:
        out[f"grpo_minus_{other}"] = {}
        for metric in ("acc_at_50", "iou", "format_rate"):
            diffs = [r["arms"]["grpo"][metric] - r["arms"][other][metric] for r in rows]
            mean, half = interval(diffs)
            out[f"grpo_minus_{other}"][metric] = {
                "mean": round(mean, 4),
                "ci95": round(half, 4),
                "per_seed": [round(d, 4) for d in diffs],
                "outside_noise": mean - half > 0,
            }
    prior = [r["blind_prior"] for r in rows]
    out["blind_prior"] = {k: round(sum(p[k] for p in prior) / len(prior), 4) for k in ("acc_at_50", "iou")}
    return out


def rollout_curves(rows: list[dict], window: int) -> None:
    """Rollout IoU and Acc@0.5 per GRPO step (mean over seeds, then over `window` steps)."""
    curves = (
        ("rec_iou", "rollout mean IoU"),
        ("acc_at_50", "rollout Acc@0.5"),
        ("box_format", "rollout format rate"),
        ("reward_mean", "reward"),
    )
    for key, label in curves:
        per_step: dict[int, list[float]] = {}
        for r in rows:
            for m in r["rollouts"]:
                if key in m:
                    per_step.setdefault(int(m["step"]), []).append(float(m[key]))
        steps = sorted(per_step)
        if not steps:
            continue
        points = []
        for i in range(0, len(steps), window):
            chunk = steps[i : i + window]
            values = [v for s in chunk for v in per_step[s]]
            points.append((chunk[-1], sum(values) / len(values)))
        record_curve(
            f"rec grpo {label}",
            "GRPO step",
            label,
            points,
            f"training rollouts (temperature {rows[0].get('temperature', '?')}), mean over seeds and {window} steps",
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-demo-train", type=int, default=800, help="demo images drawn for train (REC keeps ~80%%)")
    ap.add_argument("--n-demo-test", type=int, default=200, help="demo images drawn for test (REC keeps ~80%%)")
    ap.add_argument("--size", default="tiny", choices=("tiny", "small"))
    ap.add_argument("--sft-steps", type=int, default=120)
    ap.add_argument("--lr-sft", type=float, default=2e-3)
    ap.add_argument("--rl-steps", type=int, default=200)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--max-response-length", type=int, default=40)
    # bench_ptst's tiny-student settings: at temperature 1 a briefly SFT'd tiny student loses the format
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--lr-rl", type=float, default=5e-4)
    ap.add_argument("--kl", type=float, default=0.02)
    ap.add_argument("--control", action="store_true", help="also SFT-longer for GRPO's CPU time")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once, one process each")
    ap.add_argument("--curve-window", type=int, default=20)
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    rows = []
    if args.jobs > 1:  # seeds as separate processes (one thread each): the 2-core machine's second core
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for row in pool.map(run_seed, args.seeds, [args] * len(args.seeds)):
                print(describe(row), flush=True)  # noqa: T201
                rows.append(row)
    else:
        for seed in args.seeds:
            row = run_seed(seed, args)
            print(describe(row), flush=True)  # noqa: T201
            rows.append(row)
    summary = report(rows)
    print("\narm          Acc@0.5 (95% CI)    mean IoU (95% CI)   format rate   boxes/answer  IoU>0")  # noqa: T201
    for arm, s in summary["arms"].items():
        print(  # noqa: T201
            f"{arm:<12} {s['acc_at_50']['mean']:.3f} ± {s['acc_at_50']['ci95']:.3f}     "
            f"{s['iou']['mean']:.3f} ± {s['iou']['ci95']:.3f}      {s['format_rate']['mean']:.3f}         "
            f"{s['boxes_per_answer']['mean']:.2f}          {s['iou_gt_0']['mean']:.2f}"
        )
    print(  # noqa: T201
        f"blind prior (mean train box per expression): Acc@0.5 {summary['blind_prior']['acc_at_50']:.3f}, "
        f"IoU {summary['blind_prior']['iou']:.3f}"
    )
    for key in [k for k in summary if k.startswith("grpo_minus_")]:
        d = summary[key]
        print(  # noqa: T201
            f"GRPO - {key.removeprefix('grpo_minus_')}: Acc@0.5 {100 * d['acc_at_50']['mean']:+.1f} ± "
            f"{100 * d['acc_at_50']['ci95']:.1f} points (per seed {d['acc_at_50']['per_seed']}), IoU "
            f"{d['iou']['mean']:+.3f} ± {d['iou']['ci95']:.3f}; "
            f"{'outside' if d['acc_at_50']['outside_noise'] else 'NOT outside'} the seed noise on Acc@0.5"
        )
    rollout_curves(rows, args.curve_window)
    cpu_min, wall_min = (cpu_seconds() - cpu0) / 60, (time.perf_counter() - wall0) / 60
    print(f"compute: {cpu_min:.1f} CPU-minutes (process + children), {wall_min:.1f} wall minutes")  # noqa: T201
    for r in rows:
        keep = ("step", "reward_mean", "rec_iou", "acc_at_50", "box_format")
        r["rollouts"] = [{k: m[k] for k in keep if k in m} for m in r["rollouts"]]
    save_result(
        args.out,
        "perception",
        {"args": vars(args), "seeds": rows, **summary, "cpu_minutes": cpu_min, "wall_minutes": wall_min},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
