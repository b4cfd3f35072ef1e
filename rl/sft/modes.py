"""SFT's training modes: full fine-tuning, LoRA on the language model, or full with the vision tower and/or the
projector frozen. The parts are named per family in `pipeline.models.parts`, so a frozen part is really frozen."""

from __future__ import annotations

from pipeline.models.load import family_of_model
from pipeline.models.parts import freeze, lora_config, trainable_counts

FROZEN = {
    "freeze_vision": {"vision"},
    "freeze_projector": {"projector"},
    "freeze_vision_projector": {"vision", "projector"},
}


def apply_mode(model, mode: str, lora=None):
    """Returns the model to train (a PEFT model for LoRA) and the trainable parameter count per part."""
    family = family_of_model(model).name
    if mode == "lora":
        from peft import get_peft_model

        config = lora_config(lora.r, lora.alpha, lora.target_modules, dropout=lora.dropout, language_only=True)
        model = get_peft_model(model, config)
    else:
        freeze(model, family, FROZEN.get(mode, set()))
    base = model.get_base_model() if mode == "lora" else model
    return model, trainable_counts(base, family)
