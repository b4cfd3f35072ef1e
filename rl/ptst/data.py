"""RL prompt sets: canonical samples -> validated -> verl parquet and TRL rows.

Validated before any launch: a gold answer that does not parse for its type is never rewarded (it is listed and
left out), and a prompt whose text plus image tokens (at the configured max_pixels) exceeds max_prompt_length is
listed and left out instead of being silently cut or crashing a rollout.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.images import resolve_image
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.reward_info import reward_columns, reward_info
from pipeline.data.schema import Sample
from pipeline.data.writers import write_verl_parquet
from pipeline.grading.answers import gold_answer_problem
from pipeline.grading.choices import with_choices
from pipeline.progress import progress
from rl.ptst.config import RLData


def prompt_text(s: Sample) -> str:
    """The question as the policy sees it (options appended when the question does not list them)."""
    return with_choices(s.question, s.choices)


def load_split(manifests: list[str], limit: int | None) -> list[tuple[Sample, Path]]:
    out = []
    for ref in manifests:
        m = Manifest.load(ref)
        samples = read_manifest(m, strict=False).samples
        out += [(s, m.image_root) for s in (samples[:limit] if limit else samples)]
    return out


def prompt_length(processor, s: Sample, root: Path, system_prompt: str | None) -> int:
    from PIL import Image

    images = [Image.open(resolve_image(root, rel, "images")).convert("RGB") for rel in s.images]
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append(
        {"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt_text(s)}]}
    )
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return int(processor(text=[text], images=[images] if images else None, return_tensors="pt")["input_ids"].shape[1])


def validate(
    items: list[tuple[Sample, Path]], processor, cfg: RLData, system_prompt: str | None = None
) -> tuple[list[tuple[Sample, Path]], list[dict]]:
    keep, problems = [], []
    for s, root in progress(items, desc="validate RL data"):
        why = gold_answer_problem(s.answer, s.answer_type, s.choices)
        if why is None and processor is not None:
            n = prompt_length(processor, s, root, system_prompt)
            if n > cfg.max_prompt_length:
                why = f"prompt is {n} tokens with its images > max_prompt_length {cfg.max_prompt_length}"
        if why:
            problems.append({"id": s.id, "source": s.source, "reason": why})
        else:
            keep.append((s, root))
    return keep, problems


def write_parquet(items: list[tuple[Sample, Path]], out: Path, split: str, cfg: RLData) -> Path:
    roots = {(s.source, s.id): root for s, root in items}
    return write_verl_parquet(
        [s for s, _ in items],
        out,
        lambda s, rel: resolve_image(roots[(s.source, s.id)], rel, "images"),
        split=split,
        prompt_fn=lambda s: "<image>" * len(s.images) + prompt_text(s),
        pixel_budget=(cfg.min_pixels, cfg.max_pixels),
    )


def trl_rows(items: list[tuple[Sample, Path]], cfg: RLData, system_prompt: str | None = None) -> list[dict]:
    """GRPOTrainer rows: the conversational prompt, image paths, and the same reward columns as the parquet."""
    rows = []
    for s, root in items:
        content = [{"type": "image"} for _ in s.images] + [{"type": "text", "text": prompt_text(s)}]
        prompt = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
        prompt.append({"role": "user", "content": content})
        info = reward_info(
            s,
            lambda rel, root=root: resolve_image(root, rel, "images"),
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
        )
        rows.append(
            {
                "prompt": prompt,
                "images": [str(resolve_image(root, r, "images")) for r in s.images],
                **reward_columns(info),
            }
        )
    return rows
