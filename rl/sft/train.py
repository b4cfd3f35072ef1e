"""SFT with TRL's SFTTrainer. Runs the same under `python -m rl.sft.train --run-dir DIR` and under
`accelerate launch … -m rl.sft.train --run-dir DIR` (CPU, one GPU, 8 GPUs with ZeRO-3/FSDP, several nodes).

Writes into the run directory: preflight.json, checkpoints/ (resumable), metrics.jsonl, tensorboard/, and
final/ (an HF model folder in the hub layout; for LoRA also adapter/, and final/ is the merged model).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

from pipeline.config import build
from pipeline.errors import Vr1Error
from pipeline.io import write_json
from pipeline.progress import LOG, setup_logging
from rl.sft.config import SFTConfig


def warmup_steps(s, n_samples: int) -> int:
    """`warmup_ratio` of the total optimizer steps (transformers 5 takes steps only)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = s.per_device_batch_size * s.gradient_accumulation_steps * world
    total = s.max_steps if s.max_steps > 0 else math.ceil(s.num_train_epochs * math.ceil(n_samples / per_step))
    return math.ceil(s.warmup_ratio * total)


def _device_args(cfg: SFTConfig) -> dict:
    import torch

    use_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    return {"use_cpu": use_cpu}


def nothing_to_train(data, examples: list, skipped: list[dict], offenders: list[dict], report: Path) -> str:
    """One line that says why no sample is left to train on, and what to do about it."""
    if not examples:
        why = skipped[0]["reason"] if skipped else "the data is empty"
        return (
            f"none of the {len(skipped)} samples has a training target: {why}; for plain question/answer data set "
            "data.target=answer (the gold answer in data.answer_template), for the demo set "
            "data.target=reference_solution"
        )
    return f"every one of the {len(examples)} samples was left out by the preflight (see {report})"


def train(cfg: SFTConfig, run_dir: Path, runs_root: str | Path = "runs", callbacks: list | None = None) -> dict:
    import datasets
    import torch
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    from pipeline.config import to_dict
    from pipeline.models.load import (
        family_of_model,
        load_model_and_processor,
        save_model_folder,
        save_processor_files,
        set_pixel_budget,
    )
    from rl.sft.collator import VLMCollator, use_packed_attention
    from rl.sft.data import describe_recipe, drop_eval_duplicates, load_examples, preflight
    from rl.sft.modes import apply_mode
    from rl.train_utils import (
        guard_checkpoints,
        jsonl_metrics,
        last_complete_checkpoint,
        load_checkpoints_with_key_mapping,
        training_inputs,
    )

    run_dir = Path(run_dir)
    dtype = torch.bfloat16 if cfg.schedule.bf16 else torch.float32
    model, processor = load_model_and_processor(cfg.model, dtype=dtype)
    family = family_of_model(model)
    if cfg.data.recipe == "vr1":  # LLaMA-Factory resizes first and leaves the model's processor its own budget
        set_pixel_budget(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    examples, skipped = load_examples(cfg.data, runs_root)
    examples, decontam = drop_eval_duplicates(examples, cfg.data.decontam_against)
    rows, offenders, recipe = preflight(processor, [e.as_row() for e in examples], cfg.data)
    write_json(
        run_dir / "preflight.json",
        {
            "examples": len(examples),
            "trainable": len(rows),
            "recipe": recipe,
            "decontam": decontam,
            "no_target": skipped,
            "offenders": offenders,
        },
    )
    LOG.info(describe_recipe(recipe))
    if not rows:
        raise Vr1Error(nothing_to_train(cfg.data, examples, skipped, offenders, run_dir / "preflight.json"))
    rope_index = getattr(model.model, "get_rope_index", None)
    if cfg.packing:
        LOG.info("padding-free batches; the language model attends with %s", use_packed_attention(model))
    model, trainable = apply_mode(model, cfg.mode, cfg.lora)
    LOG.info("training %d samples; trainable parameters: %s", len(rows), trainable)
    s = cfg.schedule
    out = run_dir / "checkpoints"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")  # where transformers 5 puts event files
    args = TRLConfig(
        output_dir=str(out),
        run_name=run_dir.name,  # the W&B run's name
        learning_rate=s.learning_rate,
        num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.per_device_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        warmup_steps=warmup_steps(s, len(rows)),
        lr_scheduler_type=s.lr_scheduler_type,
        weight_decay=s.weight_decay,
        max_grad_norm=s.max_grad_norm,
        bf16=s.bf16,
        gradient_checkpointing=s.gradient_checkpointing,
        logging_steps=s.logging_steps,
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=s.save_total_limit,
        seed=s.seed,
        report_to=cfg.report_to,
        remove_unused_columns=False,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        dataloader_num_workers=0,
        **_device_args(cfg),
    )
    guard_checkpoints(out, training_inputs(to_dict(cfg), rows), cfg.on_changed_inputs)
    last = last_complete_checkpoint(out)
    resume_step = int(Path(last).name.split("-")[-1]) if last else 0
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        data_collator=VLMCollator(processor, cfg.packing, rope_index),
        processing_class=processor,
        callbacks=[
            jsonl_metrics(
                run_dir / "metrics.jsonl", resume_step, lambda logs, step: {"step": step, **logs} if logs else None
            ),
            *(callbacks or []),
        ],
    )
    load_checkpoints_with_key_mapping(trainer)
    distributed = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
    if last and 0 < s.max_steps <= resume_step and not distributed:
        # transformers trains one step past max_steps when a run that ended mid-epoch is resumed: a finished run is
        # only written out again (ZeRO-3 / FSDP weights load inside train(), so those runs keep the plain resume)
        from transformers import TrainerState

        LOG.info("%s completes max_steps=%d: writing final/ from it, training nothing", last, s.max_steps)
        trainer._load_from_checkpoint(last)
        trainer.state = TrainerState.load_from_json(str(Path(last) / "trainer_state.json"))
        losses = [h["train_loss"] for h in trainer.state.log_history if "train_loss" in h]
        result = SimpleNamespace(training_loss=losses[-1] if losses else float("nan"))
    else:
        if last:
            LOG.info("resuming from %s", last)
        result = trainer.train(resume_from_checkpoint=last)

    final = run_dir / "final"
    tmp = run_dir / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.mode == "lora":
        trainer.model.save_pretrained(run_dir / "adapter")
        if trainer.is_world_process_zero() and cfg.lora.merge:
            merged = trainer.model.merge_and_unload()
            save_model_folder(merged, processor, tmp)
    else:
        trainer.save_model(str(tmp))  # gathers ZeRO-3 / FSDP shards
        if trainer.is_world_process_zero():
            save_processor_files(processor, tmp, family)
    if trainer.is_world_process_zero() and tmp.exists():
        for stray in ("training_args.bin",):
            (tmp / stray).unlink(missing_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    summary = {
        "samples": len(rows),
        "offenders": len(offenders),
        "no_target": len(skipped),
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "resumed_from": last,
        "trainable_parameters": trainable,
        "final": str(final) if final.exists() else None,
    }
    if trainer.is_world_process_zero():
        write_json(run_dir / "summary.json", summary)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="SFT worker (started by `vr1 sft`, directly or via accelerate)")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--runs-root", default="runs")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    setup_logging(run_dir / "train.log")
    cfg = build(SFTConfig, yaml.safe_load((run_dir / "config.yaml").read_text()))
    train(cfg, run_dir, args.runs_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
