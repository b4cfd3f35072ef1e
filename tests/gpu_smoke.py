"""GPU smoke test of the verl path (`make gpu-smoke`; not collected by pytest, CI has no GPU).

Runs every PTST stage on verl for two steps with a small random-init Qwen2.5-VL (64-dimensional heads, the smallest
vLLM's and flash-attn's kernels take) at toy lengths and groups, with vLLM rollouts, then checks what a user relies
on: each stage's metrics.jsonl has a row per step with every metric filled, each stage's final/ is a complete folder
that loads, and stage k started from stage k-1's final/. Exits non-zero, saying what failed, on any miss.

    make gpu-smoke            # full fine-tuning
    make gpu-smoke ARGS=lora  # LoRA (rank 8), adapters folded into each final/
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "gpu_smoke"
STAGES = [
    {"max_response_length": 32, "n": 4, "steps": 2},
    {"max_response_length": 48, "n": 2, "steps": 2},
    {"max_response_length": 64, "n": 2, "steps": 2},
]
METRICS = (
    "reward_mean",
    "format_rate",
    "accuracy",
    "response_length_mean",
    "response_clip_ratio",
    "kl",
    "entropy",
    "grad_norm",
    "learning_rate",
    "step_time_s",
)


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a script's report


def main(argv: list[str]) -> int:
    import torch

    sys.path.insert(0, str(ROOT))
    from pipeline.data.demo_data import generate_demo_data
    from pipeline.models.load import load_model_and_processor
    from pipeline.models.tiny import build_tiny_model

    lora = "lora" in argv
    gpus = torch.cuda.device_count()
    if not gpus:
        say("gpu-smoke needs a CUDA machine (torch sees no GPU); `vr1 doctor` says what is missing")
        return 2
    model = build_tiny_model("qwen2_5_vl", OUT / "model", seed=0, size="small")
    generate_demo_data(OUT / "data", n_train=64, n_test=8, seed=0)
    config = {
        "engine": "verl",
        "stages": STAGES,
        "model": {"start": str(model), "lora_rank": 8 if lora else 0, "lora_alpha": 16},
        "data": {
            "manifests": [str(OUT / "data" / "manifest_train.yaml")],
            "val_manifests": [str(OUT / "data" / "manifest_test.yaml")],
            "limit": 32,
            "val_limit": 4,
            "max_prompt_length": 512,
            "max_pixels": 50176,
            "reward": "hfrrf",
        },
        "grpo": {"learning_rate": 1e-5, "prompts_per_step": 2 * gpus, "mini_batch_prompts": 2 * gpus},
        "cluster": {"n_gpus_per_node": gpus, "gpu_memory_utilization": 0.3, "save_freq": 1, "max_ckpt_to_keep": 1},
    }
    cfg_path = OUT / "ptst_smoke.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    name = "lora" if lora else "full"
    t0 = time.time()
    cmd = [sys.executable, "-m", "pipeline.cli", "ptst", "--config", str(cfg_path), "--name", name]
    rc = subprocess.call(
        [*cmd, "--runs-root", str(OUT / "runs")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if rc != 0:
        say(f"gpu-smoke: vr1 ptst exited {rc}; see {OUT / 'runs' / 'ptst' / name}")
        return 1
    run = OUT / "runs" / "ptst" / name
    failures = []
    say(f"\ngpu-smoke ({name}, {gpus} GPU(s), {time.time() - t0:.0f}s):")
    for k in range(1, len(STAGES) + 1):
        stage = run / f"stage_{k}"
        rows = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines() if x.strip()]
        missing = sorted({m for r in rows for m in METRICS if m not in r} | ({"rows"} if len(rows) < 2 else set()))
        summary = json.loads((stage / "summary.json").read_text())
        want_start = str(model) if k == 1 else str(run / f"stage_{k - 1}" / "final")
        try:
            load_model_and_processor(stage / "final")
            loads = "loads"
        except Exception as e:  # the point is to report it, with the others
            loads = f"does not load: {e}"
        line = f"  stage {k}: {len(rows)} metric rows, final/ {loads}, from {summary.get('start')}"
        say(line)
        for r in rows:
            say("    " + json.dumps({key: r.get(key) for key in ("step", *METRICS)}))
        if missing:
            failures.append(f"stage {k}: metrics missing {missing}")
        if loads != "loads":
            failures.append(f"stage {k}: final/ {loads}")
        if Path(summary.get("start", "")).resolve() != Path(want_start).resolve():
            failures.append(f"stage {k} started from {summary.get('start')}, not {want_start}")
        if lora and not summary.get("lora_weights_merged"):
            failures.append(f"stage {k}: no LoRA weights folded into final/")
    for f in failures:
        say(f"FAILED: {f}")
    say("gpu-smoke: " + ("FAILED" if failures else "all stages ran, logged and chained"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
