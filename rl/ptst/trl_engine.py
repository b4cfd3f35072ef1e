"""One PTST stage on TRL's GRPOTrainer (one machine, CPU or GPU)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.progress import LOG
from rl.ptst.config import LOSS_AGG_MODES, PolicyModel, PTSTConfig, Stage

# TRL log keys -> the metric names both engines write to metrics.jsonl
METRICS = {
    "reward": "reward_mean",
    "rewards/format/mean": "format_rate",
    "rewards/accuracy/mean": "accuracy",
    "completions/mean_length": "response_length_mean",
    "completions/max_length": "response_length_max",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


def select_metrics(logs: dict, step: int) -> dict | None:
    """A GRPO step's log under the metric names both engines use (non-step logs are skipped)."""
    if "reward" not in logs:
        return None
    row = {"step": step, **{ours: logs[k] for k, ours in METRICS.items() if k in logs}}
    # task metrics and user reward components, under the names the verl engine writes
    row.update(
        (k.removeprefix("rewards/").removesuffix("/mean"), v)
        for k, v in logs.items()
        if k.startswith("rewards/") and k.endswith("/mean") and k not in METRICS and not k.startswith("rewards/reward/")
    )
    LOG.info("step %d: %s", step, " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
    return row


def trainable_policy(model, m: PolicyModel):
    """The policy as the stage trains it: LoRA adapters where `target_modules` says, as verl puts them (the vision
    tower left out when it is to stay frozen), or the full model with the vision tower frozen on request."""
    from pipeline.models.load import family_of_model
    from pipeline.models.parts import freeze, lora_config

    if m.lora_rank:
        from peft import get_peft_model

        return get_peft_model(
            model, lora_config(m.lora_rank, m.lora_alpha, m.target_modules, exclude_vision=m.freeze_vision_tower)
        )
    if m.freeze_vision_tower:
        freeze(model, family_of_model(model).name, ("vision",))
    return model


def run_stage(cfg: PTSTConfig, index: int, stage: Stage, start: Path, stage_dir: Path, rows: list[dict]) -> dict:
    import datasets
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.models.load import load_model_and_processor, save_model_folder, set_pixel_budget
    from rl.rewards.trl_rewards import make_trl_reward
    from rl.train_utils import jsonl_metrics, last_complete_checkpoint, load_checkpoints_with_key_mapping

    model, processor = load_model_and_processor(start)
    set_pixel_budget(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    model = trainable_policy(model, cfg.model)
    ds = datasets.Dataset.from_list(rows).cast_column("images", datasets.List(datasets.Image()))
    terms = None if cfg.data.reward == "auto" else cfg.data.reward  # a name, or {answer type: name}
    # one scoring per completion: the training reward, with format and accuracy logged from the same scores
    reward_funcs = [make_trl_reward(terms, "reward", log_components=True)]
    g = cfg.grpo
    use_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    out = stage_dir / "checkpoints"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(stage_dir / "tensorboard")
    args = GRPOConfig(
        output_dir=str(out),
        run_name=f"{stage_dir.parent.name}-stage{index}",  # the W&B run's name, as the verl engine names it
        max_steps=stage.steps,
        num_generations=stage.n,
        max_completion_length=stage.max_response_length,
        # one prompt's group per generation batch, prompts_per_step of them per optimizer step: TRL 1.16 misaligns
        # Qwen-VL inputs when one generation batch mixes prompts with different numbers of images
        per_device_train_batch_size=stage.n,
        steps_per_generation=1,
        gradient_accumulation_steps=g.prompts_per_step,
        learning_rate=g.learning_rate,
        beta=g.kl_coef,
        epsilon=g.clip_ratio_low,
        epsilon_high=g.clip_ratio_high,
        loss_type=LOSS_AGG_MODES[g.loss_agg_mode],
        temperature=g.temperature,
        top_p=g.top_p,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=cfg.report_to,
        seed=cfg.seed + index,
        use_cpu=use_cpu,
        bf16=False,
        remove_unused_columns=False,
    )
    last = last_complete_checkpoint(out)
    resume_step = int(last.split("-")[-1]) if last else 0
    trainer = GRPOTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        reward_funcs=reward_funcs,
        processing_class=processor,
        callbacks=[jsonl_metrics(stage_dir / "metrics.jsonl", resume_step, select_metrics)],
    )
    load_checkpoints_with_key_mapping(trainer)
    if last:
        LOG.info("stage %d: resuming from %s", index, last)
    trainer.train(resume_from_checkpoint=last)
    final, tmp = stage_dir / "final", stage_dir / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy = trainer.model.merge_and_unload() if cfg.model.lora_rank else trainer.model
    save_model_folder(policy, processor, tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return {
        "stage": index,
        "engine": "trl",
        "steps": trainer.state.global_step,
        "final": str(final),
        "resumed_from": last,
    }
