"""PTST config: the stage schedule as data, GRPO settings shared by both engines, model, data, cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import check_ranges

LOSS_AGG_MODES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum-norm": "dr_grpo"}


@dataclass
class Stage:
    max_response_length: int  # tokens per response
    n: int  # samples per prompt (the GRPO group)
    steps: int  # optimizer steps in this stage

    def __post_init__(self):
        if self.max_response_length < 1 or self.n < 2 or self.steps < 1:
            raise ValueError(f"stage {self}: needs max_response_length >= 1, n >= 2 (a group), steps >= 1")


@dataclass
class RLData:
    manifests: list[str] = field(default_factory=lambda: ["data/demo/manifest_train.yaml"])
    val_manifests: list[str] = field(default_factory=lambda: ["data/demo/manifest_test.yaml"])
    limit: int | None = None  # the first N items of each manifest
    val_limit: int | None = None
    # manifest -> how many of its items to draw (a seeded sample, not the first N: published files are often grouped
    # by category); how a mix of sources is sized
    mix: dict[str, int] = field(default_factory=dict)
    mix_seed: int = 0
    # eval manifests: training prompts that duplicate one of their items are left out (vr1 decontam's rule)
    decontam_against: list[str] = field(default_factory=list)
    max_prompt_length: int = 2048  # tokens, images included at max_pixels
    max_pixels: int = 1280 * 28 * 28
    min_pixels: int = 4 * 28 * 28
    # a preset of rl/rewards (hfrrf, vlm_r1_rec, …), a reward file (path/to/file.py:function), "auto" (each answer
    # type its default preset), or {answer type: preset} for a mixed set (types left out get their default)
    reward: str | dict[str, str] = "hfrrf"
    # the instruction around each question: a published template by name (pipeline/data/prompts.py) or "… {question} …"
    prompt_template: str = "plain"
    # the frame the policy writes boxes in; auto: the start model family's (Qwen2.5-VL pixels of its resized
    # input, Qwen2-VL/InternVL/Qwen3-VL the 0-1000 grid). A manifest's own pred_frame wins for its samples.
    pred_frame: str = "auto"
    # verl: false writes image paths (a shared filesystem every node sees) instead of bytes into the parquet
    embed_images: bool = True

    def __post_init__(self):
        check_ranges(
            self,
            limit=(1, None),
            val_limit=(1, None),
            max_prompt_length=(1, None),
            max_pixels=(1, None),
            min_pixels=(1, None),
        )
        from pipeline.data.prompts import check_template
        from pipeline.grading.geometry import FRAMES

        if (why := check_template(self.prompt_template)) is not None:
            raise ValueError(why)
        if isinstance(self.reward, dict):
            from pipeline.data.schema import ANSWER_TYPES

            unknown = [t for t in self.reward if t not in ANSWER_TYPES]
            if unknown:
                raise ValueError(f"reward: {unknown} are not answer types; a per-type reward maps {ANSWER_TYPES}")
        if self.pred_frame != "auto" and self.pred_frame not in FRAMES:
            raise ValueError(f"pred_frame '{self.pred_frame}' unknown; use auto or one of {list(FRAMES)}")
        stray = [ref for ref in self.mix if ref not in self.manifests]
        if stray:
            raise ValueError(f"mix names {stray}, which manifests does not list (write them the same way)")


@dataclass
class GRPO:
    learning_rate: float = 1e-6
    prompts_per_step: int = 128  # prompts sampled per step (verl data.train_batch_size)
    mini_batch_prompts: int = 64  # prompts per optimizer mini-batch (verl ppo_mini_batch_size)
    micro_batch_per_gpu: int = 1
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    kl_coef: float = 1e-2
    kl_loss_type: str = "low_var_kl"
    loss_agg_mode: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    entropy_coeff: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    system_prompt: str | None = None  # Vision-R1: none

    def __post_init__(self):
        check_ranges(
            self,
            learning_rate=(0, 1),
            prompts_per_step=(1, None),
            mini_batch_prompts=(1, None),
            micro_batch_per_gpu=(1, None),
            clip_ratio_low=(0, 1),
            clip_ratio_high=(0, None),
            kl_coef=(0, None),
            entropy_coeff=(0, None),
            temperature=(0.001, 2),
            top_p=(0.001, 1),
        )
        if self.loss_agg_mode not in LOSS_AGG_MODES:
            raise ValueError(f"grpo.loss_agg_mode '{self.loss_agg_mode}' unknown; use one of {list(LOSS_AGG_MODES)}")
        if self.prompts_per_step % self.mini_batch_prompts:
            raise ValueError("grpo.prompts_per_step must be a multiple of grpo.mini_batch_prompts")


@dataclass
class PolicyModel:
    start: str = "runs/sft/latest/final"  # stage 1 starts here (the SFT output)
    lora_rank: int = 0
    lora_alpha: int = 32
    target_modules: str | list[str] = "all-linear"  # as PEFT and verl read it; both engines honour it
    freeze_vision_tower: bool = False


@dataclass
class Cluster:
    """verl only: the Ray cluster the stages run on."""

    nnodes: int = 1
    n_gpus_per_node: int = 8
    rollout: str = "vllm"
    tensor_model_parallel_size: int = 1
    gpu_memory_utilization: float = 0.6
    save_freq: int = 25  # checkpoint every N steps (and always at a stage's last step): the resume points
    max_ckpt_to_keep: int = 2  # older checkpoints are deleted: a 7B actor's is ~100 GB with its optimizer
    dump_rollouts: bool = False  # verl writes every response of every step to stage_N/rollouts/ (large)
    gpu_memory_gib: float = 80.0  # per GPU, for the memory estimate printed before a launch
    host_memory_gib: float = 1024.0  # per node
    extra_overrides: list[str] = field(default_factory=list)  # any further verl Hydra overrides

    def __post_init__(self):
        check_ranges(
            self,
            nnodes=(1, None),
            n_gpus_per_node=(1, None),
            tensor_model_parallel_size=(1, None),
            gpu_memory_utilization=(0.01, 1),
            save_freq=(1, None),
            max_ckpt_to_keep=(1, None),
            gpu_memory_gib=(1, None),
            host_memory_gib=(1, None),
        )


@dataclass
class PTSTConfig:
    engine: str = "auto"  # auto (verl with CUDA, TRL without) | verl | trl
    stages: list[Stage] = field(
        default_factory=lambda: [Stage(4096, 16, 100), Stage(8192, 8, 100), Stage(16384, 4, 100)]
    )
    stage: int | None = None  # run only this stage (1-based); None runs every stage in order
    model: PolicyModel = field(default_factory=PolicyModel)
    data: RLData = field(default_factory=RLData)
    grpo: GRPO = field(default_factory=GRPO)
    cluster: Cluster = field(default_factory=Cluster)
    save_steps: int = 25  # TRL checkpoints (resume points) every N steps
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    # an eval config (configs/eval/NAME) run on the last stage's final model when the whole schedule has run
    eval: str | None = None
    seed: int = 42
    device: str = "auto"

    def __post_init__(self):
        if self.engine not in ("auto", "verl", "trl"):
            raise ValueError(f"engine '{self.engine}' unknown; use auto, verl or trl")
        if not self.stages:
            raise ValueError("stages: give at least one stage")
        if self.stage is not None and not 1 <= self.stage <= len(self.stages):
            raise ValueError(f"stage={self.stage}: the schedule has stages 1..{len(self.stages)}")
