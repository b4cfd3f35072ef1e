"""The parts of a VLM by parameter name (vision tower, projector, language model), and what training does with
them: freezing a part, and where LoRA adapters go. Both trainers and both PTST engines read these names here.
"""

from __future__ import annotations

from collections.abc import Iterable

# Parameter-name prefixes of the unwrapped transformers 5 models, per family (a tuple: any of them).
VISION = {
    "qwen2_vl": "model.visual.",
    "qwen2_5_vl": "model.visual.",
    "qwen3_vl": "model.visual.",
    "internvl": "model.vision_tower.",
}
PROJECTOR = {
    "qwen2_vl": "model.visual.merger.",
    "qwen2_5_vl": "model.visual.merger.",
    # Qwen3-VL's DeepStack mergers map intermediate vision features into the language model's hidden size, as the
    # final merger does: they bridge the two models, so they freeze and train with the projector, not the tower
    "qwen3_vl": ("model.visual.merger.", "model.visual.deepstack_merger_list."),
    "internvl": "model.multi_modal_projector.",
}
PARTS = ("language", "vision", "projector")

# Any family's vision tower and projector as one module-name pattern, for tools that do not know the family
# (verl's and PEFT's `exclude_modules`).
VISION_MODULES = r".*(visual|vision_tower|multi_modal_projector).*"

# The language model's attention and MLP projections: what "LoRA on the language model" adapts.
LANGUAGE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def part_of(name: str, family: str) -> str:
    """'projector', 'vision' or 'language' for a parameter name of the unwrapped model."""
    if name.startswith(PROJECTOR[family]):
        return "projector"
    if name.startswith(VISION[family]):
        return "vision"
    return "language"


def freeze(model, family: str, parts: Iterable[str]) -> None:
    """Stop gradients to every parameter of the named parts of an unwrapped model of `family`."""
    frozen = set(parts)
    for name, p in model.named_parameters():
        if part_of(name, family) in frozen:
            p.requires_grad_(False)


def trainable_counts(model, family: str) -> dict[str, int]:
    """Trainable parameters per part of an unwrapped model."""
    counts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():
        if p.requires_grad:
            counts[part_of(name, family)] += p.numel()
    return counts


def lora_config(
    r: int,
    alpha: int,
    target_modules: str | list[str],
    *,
    dropout: float = 0.0,
    language_only: bool = False,
    exclude_vision: bool = False,
):
    """A PEFT LoraConfig. `target_modules` as PEFT and verl read it ("all-linear" or module names);
    `language_only` keeps adapters inside the language model (a regex on full module names);
    `exclude_vision` leaves the vision tower and projector without adapters (verl's `exclude_modules`)."""
    from peft import LoraConfig

    targets: str | list[str] = target_modules
    if language_only:
        names = LANGUAGE_PROJECTIONS if target_modules == "all-linear" else list(target_modules)
        targets = rf"^model\.language_model\..*\.({'|'.join(names)})$"
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        task_type="CAUSAL_LM",
        target_modules=targets,
        exclude_modules=VISION_MODULES if exclude_vision else None,
    )
