"""Training modes: full fine-tuning, LoRA on the language model, or full with the vision tower and/or the
projector frozen. Parameter groups are named per family, so a frozen part is really frozen."""

from __future__ import annotations

from pipeline.models.load import family_of_model

VISION = {"qwen2_vl": "model.visual.", "qwen2_5_vl": "model.visual.", "internvl": "model.vision_tower."}
PROJECTOR = {"qwen2_vl": "model.visual.merger.", "qwen2_5_vl": "model.visual.merger.",
             "internvl": "model.multi_modal_projector."}  # fmt: skip


def part_of(name: str, family: str) -> str:
    """'projector', 'vision' or 'language' for a parameter name of the unwrapped model."""
    if name.startswith(PROJECTOR[family]):
        return "projector"
    if name.startswith(VISION[family]):
        return "vision"
    return "language"


def apply_mode(model, mode: str, lora=None):
    """Returns the model to train (a PEFT model for LoRA) and the trainable parameter count per part."""
    family = family_of_model(model).name
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        # Only the language model's projections: a regex on full module names keeps the vision tower untouched.
        targets = "|".join(lora.target_modules)
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                            target_modules=rf"^model\.language_model\..*\.({targets})$")  # fmt: skip
        model = get_peft_model(model, config)
    else:
        frozen = {"freeze_vision": {"vision"}, "freeze_projector": {"projector"},
                  "freeze_vision_projector": {"vision", "projector"}}.get(mode, set())  # fmt: skip
        for name, p in model.named_parameters():
            if part_of(name, family) in frozen:
                p.requires_grad_(False)
    counts = {"language": 0, "vision": 0, "projector": 0}
    base = model.get_base_model() if mode == "lora" else model
    for name, p in base.named_parameters():
        if p.requires_grad:
            counts[part_of(name, family)] += p.numel()
    return model, counts
