"""Make a trained output a complete model folder that the next stage starts from: LoRA adapters merged into their
base (never dropped), and the processor half (tokenizer, chat template, image processor) written beside weights
that a trainer saved without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.errors import Vr1Error

ADAPTER_CONFIG = "adapter_config.json"
# what every stage's start folder must hold besides the weights, for vr1, verl and vLLM alike
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer_config.json", "chat_template.jinja")


def adapter_folder(path: Path) -> Path | None:
    """The LoRA adapter `path` stands for, if it is one: an adapter folder (adapter_config.json, no config.json),
    or an SFT run whose merged final/ is missing beside its adapter/."""
    if (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file():
        return path
    beside = path.parent / "adapter"
    if path.name == "final" and not path.exists() and (beside / ADAPTER_CONFIG).is_file():
        return beside
    return None


def adapter_base(adapter: Path) -> str:
    base = json.loads((adapter / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise Vr1Error(f"{adapter / ADAPTER_CONFIG} names no base_model_name_or_path; cannot merge the adapter")
    return base


def merge_adapter(adapter: Path, out: Path, base: str | Path | None = None) -> Path:
    """base + adapter (B·A·alpha/r added to each adapted weight) written to `out` as a complete model folder."""
    from peft import PeftModel

    from pipeline.models.load import load_model_and_processor

    base = Path(base or adapter_base(adapter))
    if not (base / "config.json").is_file():
        raise Vr1Error(f"the adapter {adapter} was trained on {base}, which is not a local model folder here")
    model, processor = load_model_and_processor(base)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    _replace_folder(out, merged, processor)
    return out


def _replace_folder(out: Path, model, processor, keep: tuple[Path, str] | None = None) -> None:
    """Write model + processor (and `keep` = (path, name) moved in beside them) to a temporary folder, then put it
    in `out`'s place: a kill leaves `out` as it was."""
    from pipeline.models.load import save_model_folder

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_folder(model, processor, tmp)
    if keep:
        shutil.move(str(keep[0]), tmp / keep[1])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def complete_model_folder(folder: Path, processor_source: Path) -> list[str]:
    """Write the processor half into `folder` from `processor_source` (the stage's start) where the trainer left
    it out or wrote it in a form our loader and vLLM do not read; returns what was missing."""
    from pipeline.models.load import family_of, load_processor, save_processor_files

    missing = [name for name in PROCESSOR_FILES if not (folder / name).is_file()]
    if missing:
        save_processor_files(load_processor(processor_source), folder, family_of(folder))
    return missing


def fold_lora(folder: Path, adapter: Path, lora_alpha: int | None = None) -> int:
    """Add each LoRA pair of `adapter` into the weights of the model folder `folder` (W += alpha/r · B·A) and
    rewrite the folder; returns how many weights changed. verl's merger writes exactly this layout (base weights as
    the model, the adapter in `lora_adapter/`, keys `base_model.model.<weight path>.lora_A.weight`) and leaves the
    sum undone. `lora_alpha` stands in when the adapter's config lost it (verl writes 0 without its metadata)."""
    import torch
    from safetensors.torch import load_file

    from pipeline.models.load import load_model_and_processor

    config = json.loads((adapter / ADAPTER_CONFIG).read_text())
    rank = int(config["r"])
    alpha = config.get("lora_alpha") or lora_alpha
    if not alpha:
        raise Vr1Error(f"{adapter / ADAPTER_CONFIG} has no lora_alpha and none was given; cannot scale B·A")
    scale = alpha / (rank**0.5 if config.get("use_rslora") else rank)
    pairs = load_file(str(adapter / "adapter_model.safetensors"))
    model, processor = load_model_and_processor(folder)
    params = dict(model.named_parameters())
    changed = 0
    with torch.no_grad():
        for key, a in pairs.items():
            if ".lora_A." not in key:
                continue
            b = pairs[key.replace(".lora_A.", ".lora_B.")]
            target = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            if target not in params:
                raise Vr1Error(f"LoRA weight {key} in {adapter} matches no weight of {folder} ({target})")
            w = params[target]
            w.add_((scale * (b.float() @ a.float())).to(w.dtype))
            changed += 1
    # the adapter is kept for the record under a name no later step reads as an adapter still to merge
    _replace_folder(folder, model, processor, keep=(adapter, "lora_adapter.merged"))
    return changed
