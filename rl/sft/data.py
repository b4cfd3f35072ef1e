"""SFT examples from cold-start runs and manifests, their encoding (prompt tokens masked out of the loss), and
the preflight that finds, before step 1, every sample that would crash or be silently cut at step 3,000.

Two encodings (`data.recipe`): vr1's own (`encode_vr1`: the first exchange, images first, rendered by the family's
chat template) and LLaMA-Factory's (`rl/sft/llama_factory.py`: the conversation as written, token for token)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.data.images import resolve_image
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.schema import IMAGE_PLACEHOLDER
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
    messages: list[tuple[str, str]] | None = None  # recipe llama_factory: every turn as written
    recipe: dict | None = None  # recipe llama_factory: cutoff_len, max_pixels, min_pixels

    def as_row(self) -> dict:
        row = {"uid": self.uid, "images": self.images, "prompt": self.prompt, "response": self.response}
        if self.messages is not None:
            row.update(messages=[list(m) for m in self.messages], llama_factory=self.recipe)
        return row


def conversation(sample, response: str) -> list[tuple[str, str]]:
    """The turns LLaMA-Factory would read for `sample` trained on `response`: a published record's own turns when
    its own response is the target, else the ShareGPT record vr1's writer makes (images first, then the question)."""
    turns = sample.meta.get("conversation")
    if turns and response == sample.meta.get("reference_response"):
        return [(role, text) for role, text in turns]
    return [("user", IMAGE_PLACEHOLDER * len(sample.images) + sample.question), ("assistant", response)]


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
            example = SFTExample(uid, images, s.question, response)
            if cfg.recipe == "llama_factory":
                example.messages = conversation(s, response)
                example.recipe = {
                    "cutoff_len": cfg.cutoff_len,
                    "max_pixels": cfg.max_pixels,
                    "min_pixels": cfg.min_pixels,
                }
            examples.append(example)
    if cfg.limit:
        examples = examples[: cfg.limit]
    return examples, skipped


def drop_eval_duplicates(examples: list[SFTExample], against: list[str]) -> tuple[list[SFTExample], dict]:
    """The examples that duplicate no item of the eval manifests `against` (vr1 decontam's rule), and a report."""
    if not against:
        return examples, {"against": [], "n_dropped": 0}
    from rl.eval.decontam import EvalRecord, drop_overlapping

    records = [EvalRecord(e.uid, e.prompt, list(e.images), "train") for e in examples]
    kept_records, report = drop_overlapping(records, against)
    kept_ids = {r.id for r in kept_records}
    LOG.info("decontam: %d of %d training samples duplicate an eval item; left out", report["n_dropped"], len(examples))
    return [e for e in examples if e.uid in kept_ids], report


# ---------------------------------------------------------------- encoding


def encode(processor, row: dict) -> dict:
    """Token ids with labels -100 on every prompt token, plus the image inputs, by the row's recipe."""
    if "messages" in row:
        return encode_llama_factory(processor, row)
    return encode_vr1(processor, row)


def encode_llama_factory(processor, row: dict, encoding=None) -> dict:
    import torch

    from rl.sft.llama_factory import encode_conversation

    if encoding is None:
        r = row["llama_factory"]
        encoding = encode_conversation(
            processor, row["messages"], row["images"], r["cutoff_len"], r["max_pixels"], r["min_pixels"]
        )
    ids = torch.tensor(encoding.input_ids)
    out = {"input_ids": ids, "labels": torch.tensor(encoding.labels)}
    if encoding.image_inputs:
        out["mm_token_type_ids"] = (ids == processor.tokenizer.convert_tokens_to_ids(processor.image_token)).long()
        out.update({k: encoding.image_inputs[k] for k in ("pixel_values", "image_grid_thw")})
    return out


def encode_vr1(processor, row: dict) -> dict:
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


def preflight(processor, rows: list[dict], cfg: SFTData) -> tuple[list[dict], list[dict], dict]:
    """(rows to train on, offenders, what the recipe does). Offenders: unreadable images, text that smuggles image
    tokens (mismatch), samples over the cutoff, conversations the recipe does not train (LLaMA-Factory's rules).
    With recipe llama_factory and on_overflow=truncate a sample over the cutoff is cut as LLaMA-Factory cuts it and
    counted; a cut inside its image tokens (which LLaMA-Factory would train into "image features and image tokens
    do not match") makes it a mismatch. `on_mismatch` / `on_overflow` = refuse stops here with the full list."""
    keep, offenders = [], []
    cut = {"samples": 0, "tokens": 0, "max_tokens": 0}

    def offend(row, problem, reason):
        offenders.append({"uid": row["uid"], "problem": problem, "reason": reason})

    for row in progress(rows, desc="preflight"):
        try:
            if "messages" in row:
                enc, stats = _llama_factory_checked(processor, row, cfg)
                if isinstance(stats, tuple):
                    offend(row, *stats)
                    continue
            else:
                enc, stats = encode_vr1(processor, row), None
        except Exception as e:  # noqa: BLE001 - any failure to encode (processors raise StopIteration on stray image tokens) is this sample's problem
            offend(row, "mismatch", f"cannot encode: {type(e).__name__}: {str(e)[:160]}")
            continue
        why = image_token_problem(processor, enc) if stats is None else None
        if why:
            offend(row, "mismatch", why)
        elif stats is None and len(enc["input_ids"]) > cfg.cutoff_len:
            offend(row, "overflow", f"{len(enc['input_ids'])} tokens > cutoff_len {cfg.cutoff_len}")
        else:
            if stats:
                cut["samples"] += 1
                cut["tokens"] += stats
                cut["max_tokens"] = max(cut["max_tokens"], stats)
            keep.append({**row, "n_tokens": len(enc["input_ids"])})
    what = {
        "mismatch": "an image-token / image-feature mismatch",
        "overflow": "more tokens than cutoff_len",
        "recipe": f"a conversation recipe {cfg.recipe} does not train",
    }
    for problem, policy in (("mismatch", cfg.on_mismatch), ("overflow", cfg.on_overflow), ("recipe", "skip")):
        bad = [o for o in offenders if o["problem"] == problem]
        if bad and policy == "refuse":
            listing = "; ".join(f"{o['uid']}: {o['reason']}" for o in bad[:10])
            raise Vr1Error(
                f"{len(bad)} sample(s) with {what[problem]} (data.on_{problem}=refuse): {listing}"
                + (" …" if len(bad) > 10 else "")
            )
        if bad:
            LOG.warning("skipping %d sample(s) with %s; see preflight.json", len(bad), what[problem])
    report = {
        "recipe": cfg.recipe,
        "cutoff_len": cfg.cutoff_len,
        "max_pixels": cfg.max_pixels,
        "min_pixels": cfg.min_pixels,
        "samples": len(rows),
        "trained": len(keep),
        "truncated": cut,
        "dropped": {p: sum(o["problem"] == p for o in offenders) for p in what},
    }
    return keep, offenders, report


def describe_recipe(report: dict) -> str:
    """One line: what the recipe does to the data at this cutoff and budget."""
    cut, dropped = report["truncated"], report["dropped"]
    line = (
        f"recipe {report['recipe']} at cutoff_len {report['cutoff_len']}, max_pixels {report['max_pixels']}: "
        f"{report['trained']} of {report['samples']} samples trained"
    )
    if cut["samples"]:
        line += f", {cut['samples']} truncated ({cut['tokens']} tokens cut, at most {cut['max_tokens']} from one)"
    gone = ", ".join(f"{n} {p}" for p, n in dropped.items() if n)
    return line + (f"; dropped: {gone}" if gone else "")


def _llama_factory_checked(processor, row: dict, cfg: SFTData):
    """(encoding, tokens cut) for a row LLaMA-Factory trains, or (None, (problem, reason)) for one it does not
    or one that the cutoff breaks."""
    from rl.sft.llama_factory import conversation_problem, encode_conversation

    why = conversation_problem(row["messages"], len(row["images"]), cfg.system_turns)
    if why:
        return None, ("recipe", why)
    encoding = encode_conversation(
        processor, row["messages"], row["images"], cfg.cutoff_len, cfg.max_pixels, cfg.min_pixels
    )
    if encoding.truncated and cfg.on_overflow != "truncate":
        return None, ("overflow", f"{encoding.untruncated_length} tokens > cutoff_len {cfg.cutoff_len}")
    if encoding.image_tokens_kept != encoding.image_tokens:
        return None, (
            "mismatch",
            f"cutoff_len {cfg.cutoff_len} cuts inside the image tokens ({encoding.image_tokens_kept} of "
            f"{encoding.image_tokens} kept): LLaMA-Factory would fail on it",
        )
    return encode_llama_factory(processor, row, encoding), encoding.truncated
