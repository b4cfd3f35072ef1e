"""SFT throughput: padding-free batches vs padded ones, same samples in the same batches, same model, one run.

What makes the comparison fair:
- **lengths like the cold set's**: long-tailed. A Vision-R1-cold sample is an image (up to ~750 tokens at its 589,824
  pixels), a question and a DeepSeek-R1 chain of thought: ~300 to 4,000 tokens. Lengths are drawn log-normal (median
  1,000, sigma 0.6) clipped to [300, 4,000], then scaled by `--scale` (1/4) so a step takes seconds on 2 cores.
  Scaling every length by one factor keeps the padding waste (padded / real tokens) exactly; batches are random
  draws, as TRL's shuffling sampler makes them. The demo set's images and questions start every sample.
- **a model where compute dominates**: Qwen2.5-VL's architecture with a language model of realistic proportions,
  narrow and shallow for 2 cores (hidden 256, MLP 5.5x wide as Qwen2.5-VL-3B/7B's 5.3-5.4x, 64-dim heads, 2 query
  heads per KV head, 2 layers, random init): matrix products and attention kernels take most of a step
  (torch.profiler), not Python. Its tiny vision tower encodes the same images in both arms.
- **same tokens**: identical samples, batches and labels; the two give the same loss and gradients (tests/test_sft.py).
- **same memory budget**: both arms train the same samples per step, so padding-free never holds more; the
  activation memory each arm holds for backward (bytes of the tensors autograd saves, each storage once, weights
  excluded) is measured on each arm's largest batch.
- **what is timed**: batching already-encoded samples (padding, or packing and M-RoPE positions), forward, backward and
  the AdamW step. Encoding (identical for both) is not. One warm-up step per arm is left out; the arms alternate batch
  by batch, the order flipping every repeat, so machine noise (other processes) hits both; each step's median over
  `--repeats`. One thread (`--threads`; 0 for torch's default): on a shared machine two OpenMP threads wait for
  each other whenever a neighbour holds a core, which makes small operations (the vision tower's, the elementwise
  ones) cost what the neighbours do, not what the arm does. The ratio by CPU time is reported beside the wall-clock
  one, and the load average before and after: on a shared machine it says how much to trust the figures.

Then the scaling curve: tokens/s of each arm as samples grow (the same distribution scaled to a longest sample of
256, 512, 1,024 tokens). Writes the figures and the curves to runs/bench/<date>/results.json and a PNG per curve.

    python -m benchmarks.bench_sft [--batches 6] [--batch-size 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import record_curve, save_result

WORDS = "wait let me check the picture again and count once more so the bar is taller than the other one".split()


def bench_model(model_path, hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int):
    """The tiny Qwen2.5-VL's architecture and vision tower with a language model of the given shapes, random init."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig.from_pretrained(model_path)
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = hidden, intermediate, layers
    text.num_attention_heads, text.num_key_value_heads = heads, kv_heads
    text.layer_types = ["full_attention"] * layers
    half = hidden // heads // 2  # M-RoPE sections cover half a head, in Qwen's 2:3:3 proportion
    text.rope_parameters["mrope_section"] = [half // 4, 3 * half // 8, 3 * half // 8]
    config.vision_config.out_hidden_size = hidden
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="sdpa")


def draw_lengths(n: int, rng: random.Random, scale: float, median: float = 1000, sigma: float = 0.6) -> list[int]:
    """Cold-set-like sample lengths in tokens: log-normal, clipped to [300, 4000], times `scale`."""
    return [round(min(4000, max(300, rng.lognormvariate(math.log(median), sigma))) * scale) for _ in range(n)]


def make_samples(processor, demo_dir: Path, targets: list[int], rng: random.Random) -> list[dict]:
    """Encoded samples (rl.sft.data.encode) of about the target lengths: a demo question with its images, then a
    chain of thought padded out with words (never shorter than the prompt)."""
    from pipeline.data.manifest import read_manifest
    from rl.sft.data import encode

    samples = read_manifest(demo_dir / "manifest_train.yaml").samples
    out = []
    for i, target in enumerate(targets):
        s = samples[i % len(samples)]
        row = {"uid": s.id, "images": [str(demo_dir / p) for p in s.images], "prompt": s.question}
        base = len(encode(processor, {**row, "response": "<think>\n</think>\n<answer>1</answer>"})["input_ids"])
        words = " ".join(rng.choice(WORDS) for _ in range(max(0, target - base)))
        out.append(encode(processor, {**row, "response": f"<think>\n{words}\n</think>\n<answer>1</answer>"}))
    return out


def activation_bytes(model, batch) -> int:
    """Bytes autograd saves for backward in one forward (each storage once, weights excluded); runs the backward."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


class Arms:
    """The two ways to batch, each with the attention it trains with."""

    def __init__(self, model, processor):
        from rl.sft.collator import PACKED_SDPA, VLMCollator, use_packed_attention

        self.model = model
        self.collators = {
            "padded": VLMCollator(processor),
            "padding_free": VLMCollator(processor, packing=True, rope_index=model.model.get_rope_index),
        }
        if use_packed_attention(model) != PACKED_SDPA:
            raise RuntimeError("the bench model's language model should run sdpa")
        self.attention = {"padded": "sdpa", "padding_free": PACKED_SDPA}

    def use(self, arm: str):
        self.model.set_attn_implementation({"text_config": self.attention[arm]})
        return self.collators[arm]


def timed_steps(arms: Arms, batches: list[list[dict]], repeats: int, opt) -> dict[str, dict]:
    """Per arm, seconds for all the batches (wall clock and this process's CPU time), each batch's step taken at its
    median over the repeats; arms alternate per batch, the order flipping every repeat. Also each repeat's wall time."""
    import torch

    def step(arm, encs):
        collator = arms.use(arm)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = arms.model(**collator.collate(encs)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not torch.isfinite(loss):
            raise RuntimeError(f"{arm}: loss {loss.item()}")
        return wall, cpu

    names = list(arms.collators)
    times = {arm: [[] for _ in batches] for arm in names}  # [batch][repeat] -> (wall, cpu)
    for r in range(repeats):
        for i, encs in enumerate(batches):
            for arm in names if (r + i) % 2 == 0 else names[::-1]:
                times[arm][i].append(step(arm, encs))
    return {
        arm: {
            "wall": sum(statistics.median(w for w, _ in per) for per in times[arm]),
            "cpu": sum(statistics.median(c for _, c in per) for per in times[arm]),
            "wall_per_repeat": [sum(per[r][0] for per in times[arm]) for r in range(repeats)],
        }
        for arm in names
    }


def main(argv=None) -> int:
    import torch

    from pipeline.data.demo_data import generate_demo_data
    from pipeline.models.load import load_processor
    from pipeline.models.tiny import build_tiny_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.25, help="sample lengths relative to the cold set's")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--curve", type=int, nargs="*", default=[256, 512, 1024], help="longest sample, tokens")
    ap.add_argument("--curve-batches", type=int, default=1)
    ap.add_argument("--curve-repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 0 for torch's default")
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp())
    model_path = build_tiny_model("qwen2_5_vl", tmp / "model")
    processor = load_processor(model_path)
    model = bench_model(model_path, args.hidden, args.intermediate, args.layers, args.heads, args.kv_heads).train()
    generate_demo_data(tmp / "demo", n_train=64, n_test=0, seed=1)
    demo = tmp / "demo"
    rng = random.Random(0)
    n = args.batches * args.batch_size
    encs = make_samples(processor, demo, draw_lengths(n, rng, args.scale), rng)
    batches = [encs[i : i + args.batch_size] for i in range(0, n, args.batch_size)]
    arms = Arms(model, processor)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    lengths = [len(e["input_ids"]) for e in encs]
    real = sum(lengths)
    padded_tokens = sum(len(b) * max(len(e["input_ids"]) for e in b) for b in batches)
    widest = max(batches, key=lambda b: len(b) * max(len(e["input_ids"]) for e in b))
    longest = max(batches, key=lambda b: sum(len(e["input_ids"]) for e in b))
    memory = {
        "padded": activation_bytes(model, arms.use("padded").collate(widest)),
        "padding_free": activation_bytes(model, arms.use("padding_free").collate(longest)),
    }
    timed_steps(arms, batches[:1], 1, opt)  # warm-up (one step per arm), not counted
    seconds = timed_steps(arms, batches, args.repeats, opt)
    ratios = [
        p / f
        for p, f in zip(seconds["padded"]["wall_per_repeat"], seconds["padding_free"]["wall_per_repeat"], strict=True)
    ]
    row = {
        "model": {
            "hidden": args.hidden,
            "intermediate": args.intermediate,
            "layers": args.layers,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        },
        "batches": len(batches),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "length_distribution": f"log-normal median 1000 sigma 0.6 clipped [300, 4000] x {args.scale}",
        "lengths": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
        "real_tokens": real,
        "padded_tokens": padded_tokens,
        "padded_tokens_per_s": round(real / seconds["padded"]["wall"], 1),
        "padding_free_tokens_per_s": round(real / seconds["padding_free"]["wall"], 1),
        "ratio_padding_free_vs_padded": round(seconds["padded"]["wall"] / seconds["padding_free"]["wall"], 2),
        # CPU time barely sees other processes taking turns on the cores: the cross-check on a shared machine
        "ratio_by_cpu_time": round(seconds["padded"]["cpu"] / seconds["padding_free"]["cpu"], 2),
        "ratios_per_repeat": [round(r, 3) for r in ratios],
        "activation_mib": {arm: round(b / 2**20, 1) for arm, b in memory.items()},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(  # noqa: T201 - a benchmark reports on stdout
        f"sft tokens/s (Qwen2.5-VL layout, hidden {args.hidden}, {args.layers} layers, {row['threads']} thread(s); "
        f"{len(batches)} batches of "
        f"{args.batch_size}, lengths {min(lengths)}-{max(lengths)}, {real} real / {padded_tokens} padded tokens; "
        f"medians of {args.repeats}): padded {row['padded_tokens_per_s']}, padding-free "
        f"{row['padding_free_tokens_per_s']} -> x{row['ratio_padding_free_vs_padded']} (per repeat "
        f"{row['ratios_per_repeat']}, by CPU time x{row['ratio_by_cpu_time']}); activations for backward "
        f"{row['activation_mib']['padded']} MiB padded, "
        f"{row['activation_mib']['padding_free']} MiB padding-free; load average {row['load_average']}"
    )

    curve = {"padded": [], "padding_free": []}
    for longest in args.curve:
        crng = random.Random(longest)
        k = args.curve_batches * args.batch_size
        cencs = make_samples(processor, demo, draw_lengths(k, crng, longest / 4000), crng)
        cb = [cencs[i : i + args.batch_size] for i in range(0, k, args.batch_size)]
        tokens = sum(len(e["input_ids"]) for e in cencs)
        secs = timed_steps(arms, cb, args.curve_repeats, opt)
        for arm in curve:
            curve[arm].append((longest, tokens / secs[arm]["wall"]))
    note = f"long-tailed lengths scaled to this longest sample, batches of {args.batch_size}"
    for arm, points in curve.items():
        record_curve(f"{arm.replace('_', '-')} tokens per s", "longest sample (tokens)", "tokens/s", points, note)
    record_curve(
        "padding-free speedup",
        "longest sample (tokens)",
        "x padded",
        [(x, f / p) for (x, f), (_, p) in zip(curve["padding_free"], curve["padded"], strict=True)],
        note,
    )
    row["curve_tokens_per_s"] = {arm: [[x, round(y, 1)] for x, y in pts] for arm, pts in curve.items()}
    save_result(args.out, "sft", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
