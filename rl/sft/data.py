"""SFT examples from cold-start runs and manifests, their encoding (prompt tokens masked out of the loss), and
the preflight that finds, before step 1, every sample that would crash or be silently cut at step 3,000."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.data.images import resolve_image
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import Vr1Error
from pipeline.progress import LOG, progress
from rl.sft.config import SFTData

RESPONSE_KEYS = ("response", "reference_response")


@dataclass
class SFTExample:
    uid: str
    images: list[str]  # absolute paths
    prompt: str
    response: str

    def as_row(self) -> dict:
        return {"uid": self.uid, "images": self.images, "prompt": self.prompt, "response": self.response}


def training_target(sample, cfg: SFTData) -> str | None:
    """What `sample` trains on under `cfg.target` (see SFTData), or None when it has no such target."""
    if cfg.target == "answer":
        return cfg.answer_template.replace("{answer}", sample.answer)
    keys = RESPONSE_KEYS + (("reference_solution",) if cfg.target == "reference_solution" else ())
    for key in keys:
        value = sample.meta.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def no_target_reason(cfg: SFTData) -> str:
    keys = RESPONSE_KEYS + (("reference_solution",) if cfg.target == "reference_solution" else ())
    return f"no training target for data.target={cfg.target} (no {' / '.join(keys)})"


def _coldstart_dir(ref: str, runs_root: str | Path) -> Path:
    path = Path(runs_root) / "coldstart" / "latest" if ref == "latest" else Path(ref)
    if not (path / "cold_start.json").is_file():
        raise Vr1Error(f"no cold-start set at {path}/cold_start.json (run `vr1 coldstart` first)")
    return path.resolve()


def load_examples(cfg: SFTData, runs_root: str | Path = "runs") -> tuple[list[SFTExample], list[dict]]:
    """(examples, skipped) in source order; `skipped` lists samples that have no training target."""
    manifests = [
        Manifest.from_dict(
            {
                "name": f"coldstart:{Path(d).name}",
                "format": "sharegpt",
                "path": "cold_start.json",
                "verify_images": False,
            },
            base=d,
        )
        for d in (_coldstart_dir(r, runs_root) for r in cfg.coldstart_runs)
    ]
    manifests += [Manifest.load(m) for m in cfg.manifests]
    if not manifests:
        raise Vr1Error("data: give at least one of coldstart_runs or manifests")
    examples, skipped = [], []
    for m in manifests:
        result = read_manifest(m, strict=False)
        for e in result.rejects:
            skipped.append({"uid": None, "reason": str(e)})
        for s in result.samples:
            uid = f"{m.name}/{s.source}/{s.id}"
            response = training_target(s, cfg)
            if response is None:
                skipped.append({"uid": uid, "reason": no_target_reason(cfg)})
                continue
            images = [str(resolve_image(m.image_root, rel, "images")) for rel in s.images]
            examples.append(SFTExample(uid, images, s.question, response))
    if cfg.limit:
        examples = examples[: cfg.limit]
    return examples, skipped


# ---------------------------------------------------------------- encoding


def encode(processor, row: dict) -> dict:
    """Token ids of prompt + response with labels -100 on every prompt token, plus the image inputs.

    The prompt is rendered by the family's chat template with a generation prompt; the completion is what the
    template adds for the assistant turn (the response and its end-of-turn token)."""
    import torch

    images = [Image.open(p).convert("RGB") for p in row["images"]]
    user = {"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": row["prompt"]}]}
    prompt = processor.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    full = processor.apply_chat_template(
        [user, {"role": "assistant", "content": [{"type": "text", "text": row["response"]}]}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
    p = processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
    completion = processor.tokenizer(full[len(prompt) :], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    prompt_ids = p["input_ids"][0]
    out = {
        "input_ids": torch.cat([prompt_ids, completion]),
        "labels": torch.cat([torch.full_like(prompt_ids, -100), completion]),
    }
    if "mm_token_type_ids" in p:
        out["mm_token_type_ids"] = torch.cat([p["mm_token_type_ids"][0], torch.zeros_like(completion)])
    for key in ("pixel_values", "image_grid_thw"):
        if key in p:
            out[key] = p[key]
    return out


def image_token_problem(processor, enc: dict) -> str | None:
    """Why the image tokens in the ids do not match the image features the vision tower will produce."""
    n_tokens = int((enc["input_ids"] == processor.image_token_id).sum())
    if "image_grid_thw" in enc:
        merge = processor.image_processor.merge_size**2
        n_features = int((enc["image_grid_thw"].prod(-1) // merge).sum())
    elif "pixel_values" in enc:
        n_features = int(enc["pixel_values"].shape[0]) * int(processor.image_seq_length)
    else:
        n_features = 0
    if n_tokens != n_features:
        return f"{n_tokens} image tokens in the text but {n_features} image features"
    return None


def preflight(processor, rows: list[dict], cfg: SFTData) -> tuple[list[dict], list[dict]]:
    """(rows to train on, offenders). Offenders: unreadable images, text that smuggles image tokens (mismatch),
    samples over the cutoff. `on_mismatch` / `on_overflow` = refuse stops here with the full list."""
    keep, offenders = [], []
    for row in progress(rows, desc="preflight"):
        try:
            enc = encode(processor, row)
        except Exception as e:  # noqa: BLE001 - any failure to encode (processors raise StopIteration on stray image tokens) is this sample's problem
            offenders.append(
                {
                    "uid": row["uid"],
                    "problem": "mismatch",
                    "reason": f"cannot encode: {type(e).__name__}: {str(e)[:160]}",
                }
            )
            continue
        why = image_token_problem(processor, enc)
        if why:
            offenders.append({"uid": row["uid"], "problem": "mismatch", "reason": why})
        elif len(enc["input_ids"]) > cfg.cutoff_len:
            offenders.append(
                {
                    "uid": row["uid"],
                    "problem": "overflow",
                    "reason": f"{len(enc['input_ids'])} tokens > cutoff_len {cfg.cutoff_len}",
                }
            )
        else:
            keep.append({**row, "n_tokens": len(enc["input_ids"])})
    what = {"mismatch": "an image-token / image-feature mismatch", "overflow": "more tokens than cutoff_len"}
    for problem, policy in (("mismatch", cfg.on_mismatch), ("overflow", cfg.on_overflow)):
        bad = [o for o in offenders if o["problem"] == problem]
        if bad and policy == "refuse":
            listing = "; ".join(f"{o['uid']}: {o['reason']}" for o in bad[:10])
            raise Vr1Error(
                f"{len(bad)} sample(s) with {what[problem]} (data.on_{problem}=refuse): {listing}"
                + (" …" if len(bad) > 10 else "")
            )
        if bad:
            LOG.warning("skipping %d sample(s) with %s; see preflight.json", len(bad), what[problem])
    return keep, offenders
