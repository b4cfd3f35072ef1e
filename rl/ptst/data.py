"""RL prompt sets: canonical samples -> validated -> verl parquet and TRL rows.

Validated before any launch: a gold answer that does not parse for its type is never rewarded (it is listed and
left out), a prompt whose text plus image tokens (at the configured max_pixels) exceeds max_prompt_length is
listed and left out instead of being silently cut or crashing a rollout, and every image's token count is checked
three ways (the resize rule verl applies, the processor's grid, the placeholder tokens in the prompt) so that
"image features and image tokens do not match" is found here, not at step 300.
"""

from __future__ import annotations

import random
from pathlib import Path

from pipeline.data.images import resolve_image
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.prompts import render_prompt
from pipeline.data.reward_info import reward_columns, reward_info
from pipeline.data.schema import Sample
from pipeline.data.writers import write_verl_parquet
from pipeline.grading.answers import gold_answer_problem
from pipeline.grading.choices import with_choices
from pipeline.grading.geometry import smart_resize
from pipeline.progress import progress
from rl.ptst.config import RLData


def prompt_text(s: Sample, template: str = "plain") -> str:
    """The question as the policy sees it: options appended when the question does not list them, then wrapped
    in the run's prompt template."""
    return render_prompt(template, with_choices(s.question, s.choices))


def policy_frame(cfg: RLData, start: Path) -> str:
    """The frame the policy writes boxes in: the config's, or (auto) the start model family's convention."""
    if cfg.pred_frame != "auto":
        return cfg.pred_frame
    from pipeline.models.load import family_of

    return family_of(start).box_frame


def load_split(
    manifests: list[str], limit: int | None, mix: dict[str, int] | None = None, seed: int = 0
) -> list[tuple[Sample, Path]]:
    """Each manifest's items: the first `limit`, or the seeded sample of the size `mix` gives it (in file order)."""
    out = []
    for ref in manifests:
        m = Manifest.load(ref)
        samples = read_manifest(m, strict=False).samples
        if mix and ref in mix and mix[ref] < len(samples):
            keep = sorted(random.Random(f"{seed}:{ref}").sample(range(len(samples)), mix[ref]))
            samples = [samples[i] for i in keep]
        out += [(s, m.image_root) for s in (samples[:limit] if limit else samples)]
    return out


def processor_budget(processor) -> tuple[int, int] | None:
    """The (min_pixels, max_pixels) a Qwen-VL image processor resizes to; None for fixed tiles (InternVL)."""
    size = getattr(processor.image_processor, "size", None) or {}
    if "shortest_edge" not in size:
        return None
    return int(size["shortest_edge"]), int(size["longest_edge"])


def expected_image_tokens(sizes, processor, cfg: RLData, native: tuple[int, int] | None) -> list[int] | str:
    """Tokens per image as verl will feed them: `qwen_vl_utils.fetch_image` resizes to the cell's budget, then the
    start model's own processor (budget `native`) resizes again; a second resize that changes the image is a
    problem (the reward's resized frame would not be what the model saw), returned as a reason."""
    ip = processor.image_processor
    merge = int(getattr(ip, "merge_size", 2))
    factor = int(ip.patch_size) * merge
    tokens = []
    for i, (w, h) in enumerate(sizes):
        rw, rh = smart_resize(w, h, factor, cfg.min_pixels, cfg.max_pixels)
        if native and (again := smart_resize(rw, rh, factor, *native)) != (rw, rh):
            return (
                f"image {i}: the model's processor budget {native} resizes the {rw}x{rh} image verl prepares to "
                f"{again[0]}x{again[1]}; widen its min/max_pixels or set data.min_pixels/max_pixels inside it"
            )
        tokens.append(rw * rh // factor**2)
    return tokens


def measure_prompt(
    processor, s: Sample, root: Path, system_prompt: str | None, template: str = "plain"
) -> tuple[int, list[int], int, list]:
    """(prompt tokens, image tokens per image by the processor's grid, image placeholder tokens in the prompt,
    original image sizes) for the prompt the policy gets."""
    from PIL import Image

    images = [Image.open(resolve_image(root, rel, "images")).convert("RGB") for rel in s.images]
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append(
        {
            "role": "user",
            "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt_text(s, template)}],
        }
    )
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], images=[images] if images else None, return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    grid, placeholders = [], 0
    if images and "image_grid_thw" in out:
        merge = int(getattr(processor.image_processor, "merge_size", 2))
        grid = [int(t * h * w) // merge**2 for t, h, w in out["image_grid_thw"].tolist()]
        token = getattr(processor, "image_token", None)
        token_id = processor.tokenizer.convert_tokens_to_ids(token) if token else None
        placeholders = ids.count(token_id)
    return len(ids), grid, placeholders, [im.size for im in images]


def validate(
    items: list[tuple[Sample, Path]],
    processor,
    cfg: RLData,
    system_prompt: str | None = None,
    native_budget: tuple[int, int] | None = None,
    measured: dict | None = None,
) -> tuple[list[tuple[Sample, Path]], list[dict]]:
    """Keep the items a run can use; `processor` has the run's pixel budget set, `native_budget` is the start
    model's own (what verl's processor applies after our resize). `measured` (optional) receives each kept item's
    prompt and image token counts, keyed by source/id."""
    keep, problems = [], []
    for s, root in progress(items, desc="validate RL data"):
        why = gold_answer_problem(s.answer, s.answer_type, s.choices)
        counts = {}
        if why is None and processor is not None:
            n, grid, placeholders, sizes = measure_prompt(processor, s, root, system_prompt, cfg.prompt_template)
            counts = {"prompt_tokens": n, "image_tokens": grid}
            if n > cfg.max_prompt_length:
                why = f"prompt is {n} tokens with its images > max_prompt_length {cfg.max_prompt_length}"
            elif grid:
                expected = expected_image_tokens(sizes, processor, cfg, native_budget)
                if isinstance(expected, str):
                    why = expected
                elif grid != expected or placeholders != sum(expected):
                    why = (
                        f"image tokens disagree: {expected} by the resize rule at max_pixels {cfg.max_pixels}, "
                        f"{grid} by the processor's grid, {placeholders} placeholders in the prompt"
                    )
        if why:
            problems.append({"id": s.id, "source": s.source, "reason": why})
        else:
            keep.append((s, root))
            if measured is not None:
                measured[f"{s.source}/{s.id}"] = counts
    return keep, problems


def write_parquet(
    items: list[tuple[Sample, Path]],
    out: Path,
    split: str,
    cfg: RLData,
    system_prompt: str | None = None,
    pred_frame: str | None = None,
) -> Path:
    roots = {(s.source, s.id): root for s, root in items}
    return write_verl_parquet(
        [s for s, _ in items],
        out,
        lambda s, rel: resolve_image(roots[(s.source, s.id)], rel, "images"),
        split=split,
        prompt_fn=lambda s: "<image>" * len(s.images) + prompt_text(s, cfg.prompt_template),
        pixel_budget=(cfg.min_pixels, cfg.max_pixels),
        system_prompt=system_prompt,
        embed_images=cfg.embed_images,
        pred_frame=pred_frame,
    )


def trl_rows(
    items: list[tuple[Sample, Path]], cfg: RLData, system_prompt: str | None = None, pred_frame: str | None = None
) -> list[dict]:
    """GRPOTrainer rows: the conversational prompt, image paths, and the same reward columns as the parquet."""
    rows = []
    for s, root in items:
        text = prompt_text(s, cfg.prompt_template)
        content = [{"type": "image"} for _ in s.images] + [{"type": "text", "text": text}]
        prompt = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
        prompt.append({"role": "user", "content": content})
        info = reward_info(
            s,
            lambda rel, root=root: resolve_image(root, rel, "images"),
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
            pred_frame=pred_frame,
        )
        rows.append(
            {
                "prompt": prompt,
                "images": [str(resolve_image(root, r, "images")) for r in s.images],
                **reward_columns(info),
            }
        )
    return rows
