"""The SFT config: what to train, on what, how (mode), with which schedule, launched how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipeline.config import check_ranges
from pipeline.models.parts import LANGUAGE_PROJECTIONS

TARGETS = ("coldstart", "reference_solution", "answer")
RECIPES = ("vr1", "llama_factory")


@dataclass
class SFTData:
    """Training data: cold-start runs and/or manifests, and what each sample trains on (`target`):
    `coldstart`: its `response` (a cold-start set) or `reference_response` (a published SFT set such as
    Vision-R1-cold); `reference_solution`: those, else its `meta.reference_solution` (the demo set's programmatic
    solutions); `answer`: the gold answer written into `answer_template` (plain question/answer data)."""

    RENAMED: ClassVar[dict] = {
        "include_reference_solutions": ("target", lambda on: "reference_solution" if on else "coldstart")
    }

    coldstart_runs: list[str] = field(default_factory=list)  # run dirs, or "latest" for runs/coldstart/latest
    manifests: list[str] = field(default_factory=list)
    target: str = "coldstart"  # coldstart | reference_solution | answer
    answer_template: str = "<answer>{answer}</answer>"  # the assistant turn for target: answer
    limit: int | None = None
    # eval manifests: training items that duplicate one of their items (same image by perceptual hash, or a lightly
    # reworded question) are left out before training, and counted (vr1 decontam's rule)
    decontam_against: list[str] = field(default_factory=list)
    # How a sample becomes tokens. `vr1`: images first, then the question (placeholders removed, stripped), the
    # first exchange only; the processor resizes to max_pixels. `llama_factory`: LLaMA-Factory's supervised
    # encoding (template qwen2_vl) token for token: images where `<image>` stands, text verbatim, every turn,
    # its resize rule with max/min_pixels as its image_max/min_pixels (the model's processor keeps its own
    # budget), its truncation (on_overflow: truncate). See rl/sft/llama_factory.py and the README.
    recipe: str = "vr1"
    system_turns: str = "drop"  # llama_factory: a ShareGPT system turn drops the record (keep: its system_tag)
    max_pixels: int = 1280 * 28 * 28
    min_pixels: int = 4 * 28 * 28
    cutoff_len: int = 4096  # tokens per sample, prompt + response
    on_overflow: str = "skip"  # skip | refuse | truncate (llama_factory): samples longer than cutoff_len
    on_mismatch: str = "skip"  # skip | refuse: samples whose image tokens do not match their image features

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target '{self.target}' unknown; use one of {', '.join(TARGETS)}")
        if "{answer}" not in self.answer_template:
            raise ValueError("answer_template must contain {answer}, where the gold answer goes")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe '{self.recipe}' unknown; use one of {', '.join(RECIPES)}")
        if self.system_turns not in ("drop", "keep"):
            raise ValueError("system_turns must be drop or keep")
        if self.on_mismatch not in ("skip", "refuse"):
            raise ValueError("on_mismatch must be skip or refuse")
        overflow = ("skip", "refuse", "truncate") if self.recipe == "llama_factory" else ("skip", "refuse")
        if self.on_overflow not in overflow:
            raise ValueError(f"on_overflow must be one of {', '.join(overflow)} with recipe {self.recipe}")
        check_ranges(self, limit=(1, None), max_pixels=(1, None), min_pixels=(1, None), cutoff_len=(1, None))


@dataclass
class LoRA:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LANGUAGE_PROJECTIONS))  # language model only
    merge: bool = True  # write a merged full checkpoint at the end (adapter kept beside it)

    def __post_init__(self):
        check_ranges(self, r=(1, None), alpha=(1, None), dropout=(0, 1))


@dataclass
class Schedule:
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.05
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int = 2
    seed: int = 42

    def __post_init__(self):
        check_ranges(
            self,
            learning_rate=(0, 1),
            num_train_epochs=(0, None),
            max_steps=(-1, None),
            per_device_batch_size=(1, None),
            gradient_accumulation_steps=(1, None),
            warmup_ratio=(0, 1),
            weight_decay=(0, None),
            max_grad_norm=(0, None),
            logging_steps=(1, None),
            save_steps=(1, None),
            save_total_limit=(1, None),
        )


@dataclass
class Launcher:
    """How `vr1 sft` starts training: in this process, or through `accelerate launch` (GPUs, nodes)."""

    kind: str = "inprocess"  # inprocess | accelerate
    accelerate_config: str | None = None  # e.g. configs/accelerate/zero3_8gpu.yaml
    num_processes: int | None = None
    num_machines: int | None = None
    machine_rank: int | None = None
    main_process_ip: str | None = None
    main_process_port: int | None = None

    def __post_init__(self):
        if self.kind not in ("inprocess", "accelerate"):
            raise ValueError("launcher.kind must be inprocess or accelerate")


@dataclass
class SFTConfig:
    model: str = "models/tiny/qwen2_5_vl"
    mode: str = "full"  # full | lora | freeze_vision | freeze_projector | freeze_vision_projector
    data: SFTData = field(default_factory=SFTData)
    lora: LoRA = field(default_factory=LoRA)
    schedule: Schedule = field(default_factory=Schedule)
    launcher: Launcher = field(default_factory=Launcher)
    packing: bool = False  # padding-free: a batch's samples end to end in one row, attention kept per sample
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])  # add "wandb" when configured
    device: str = "auto"  # auto | cpu | cuda
    # checkpoints under this run's name trained on other inputs (data, model, settings): refuse | restart
    on_changed_inputs: str = "refuse"

    def __post_init__(self):
        modes = ("full", "lora", "freeze_vision", "freeze_projector", "freeze_vision_projector")
        if self.mode not in modes:
            raise ValueError(f"mode '{self.mode}' unknown; use one of {modes}")
        if self.on_changed_inputs not in ("refuse", "restart"):
            raise ValueError(f"on_changed_inputs '{self.on_changed_inputs}' unknown; use refuse or restart")
