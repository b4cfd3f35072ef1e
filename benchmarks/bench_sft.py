"""SFT throughput: packed batches vs plain padding, same model, same batches, one run.

Responses have cold-start-like lengths (long-tailed: a few long chains of thought among short ones), which is
where padding wastes the most. Reported: real (non-pad) tokens per second of forward+backward, and the ratio.

    python -m benchmarks.bench_sft [--batches 6] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save_result


def main(argv=None) -> int:
    import torch

    from pipeline.data.demo_data import generate_demo_data
    from pipeline.data.manifest import read_manifest
    from pipeline.models.load import load_model_and_processor
    from pipeline.models.tiny import build_tiny_model
    from rl.sft.collator import VLMCollator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--family", default="qwen2_5_vl")
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    model_path = build_tiny_model(args.family, tmp / "model")
    model, processor = load_model_and_processor(model_path)
    generate_demo_data(tmp / "demo", n_train=args.batches * args.batch_size, n_test=0, seed=1)
    samples = read_manifest(tmp / "demo" / "manifest_train.yaml").samples
    rng = random.Random(0)
    filler = "Wait, let me check the picture again and count once more. "
    rows = []
    for s in samples:
        n = int(min(120, rng.lognormvariate(2.2, 0.9)))  # long-tailed thinking lengths
        response = s.meta["reference_solution"].replace("</think>", filler * n + "</think>")
        rows.append(
            {
                "uid": s.id,
                "images": [str(tmp / "demo" / r) for r in s.images],
                "prompt": s.question,
                "response": response,
            }
        )
    batches = [rows[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    collators = {"padded": VLMCollator(processor), "packed": VLMCollator(processor, True, model.model.get_rope_index)}
    prepared = {k: [c(b) for b in batches] for k, c in collators.items()}
    real_tokens = sum(
        int((b["labels"] != -100).sum() + (b["labels"] == -100).sum() - (b["attention_mask"] == 0).sum())
        for b in prepared["padded"]
    )
    results = {}
    for _ in range(2):  # two rounds, alternating, to even out warm-up and machine noise
        for mode, bs in prepared.items():
            t0 = time.perf_counter()
            for b in bs:
                loss = model(**{**b, "use_cache": False}).loss
                loss.backward()
                opt.zero_grad()
            results.setdefault(mode, []).append(time.perf_counter() - t0)
    row = {
        "batches": len(batches),
        "batch_size": args.batch_size,
        "real_tokens": real_tokens,
        "padded_tokens": sum(b["input_ids"].numel() for b in prepared["padded"]),
    }
    for mode, times in results.items():
        row[f"{mode}_tokens_per_s"] = round(real_tokens / min(times), 1)
    row["ratio_packed_vs_padded"] = round(row["packed_tokens_per_s"] / row["padded_tokens_per_s"], 2)
    print(  # noqa: T201
        f"sft tokens/s ({args.family} tiny, {len(batches)} batches of {args.batch_size}, "
        f"{row['real_tokens']} real / {row['padded_tokens']} padded tokens): padded {row['padded_tokens_per_s']}, "
        f"packed {row['packed_tokens_per_s']} -> x{row['ratio_packed_vs_padded']}"
    )
    save_result(args.out, "sft", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
