"""Synthetic cold-start records for the inspector's tests and its 200K-sample benchmark."""

import json
import random
from pathlib import Path

from PIL import Image

from coldstart.filters import RULES as FILTER_RULES

RULES = list(FILTER_RULES)  # the filter's own rule names
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def make_run(run_dir: Path, n: int, n_images: int = 8, seed: int = 0, xss_index: int | None = 3) -> Path:
    """A run directory with coldstart.jsonl, image_roots.json and a small pool of real images."""
    rng = random.Random(seed)
    img_root = run_dir.parent / f"{run_dir.name}-images"
    img_root.mkdir(parents=True, exist_ok=True)
    colours = ["red", "green", "blue", "orange", "purple", "teal", "gray", "gold"]
    for k in range(n_images):
        Image.new("RGB", (120 + 8 * k, 90), colours[k % len(colours)]).save(img_root / f"img{k}.png")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "image_roots.json").write_text(json.dumps({"demo": str(img_root), "other": str(img_root)}))
    with open(run_dir / "coldstart.jsonl", "w") as f:
        for i in range(n):
            verdict = rng.choices(["kept", "dropped", "failed"], [5, 4, 1])[0]
            reasons = (
                [
                    {"rule": r, "reason": f"{r}: synthetic reason {rng.randint(0, 3)}"}
                    for r in rng.sample(RULES, rng.randint(1, 2))
                ]
                if verdict == "dropped"
                else [{"rule": "generation", "reason": "reasoning: HTTP 500"}]
                if verdict == "failed"
                else []
            )
            thinking = " ".join(
                rng.choice(["Wait,", "the", "image", "shows", "three", "bars", "so"])
                for _ in range(rng.randint(20, 300))
            )
            if i == xss_index:
                thinking = f"Careful: {XSS} is in the text."
            rec = {
                "id": f"s{i:06d}",
                "uid": f"{'demo' if i % 3 else 'other'}/s{i:06d}",
                "source": "demo" if i % 3 else "other",
                "question": f"Question {i}: how many bars?" + (f" {XSS}" if i == xss_index else ""),
                "answer": str(i % 7),
                "answer_type": "number",
                "images": [f"img{i % n_images}.png"] + ([f"img{(i + 1) % n_images}.png"] if i % 5 == 0 else []),
                "choices": None,
                "pseudo_cot": "Caption: bars. Reasoning: count them.",
                "description": "Three blue bars of heights 3, 5 and 2." * rng.randint(1, 4),
                "reasoning": {"text": f"<answer>{i % 7}</answer>", "thinking": thinking},
                "final_answer": str(i % 7),
                "verdict": verdict,
                "reasons": reasons,
                "edits": [],
                "response": f"<think>\n{thinking}\n</think>\n<answer>{i % 7}</answer>",
                "provenance": {
                    "pseudo_cot": {
                        "model": "vlm",
                        "prompt_hash": "abc123",
                        "prompt_tokens": 50,
                        "completion_tokens": 20,
                        "latency_s": 0.4,
                        "attempts": 1,
                    }
                },
            }
            f.write(json.dumps(rec) + "\n")
    return run_dir
