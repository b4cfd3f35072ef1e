"""One PTST stage on verl 0.9.1 (Ray, vLLM rollouts, FSDP, multi-node): the exact Hydra override list, the launch
as `python -m verl.trainer.main_ppo` with its output streamed into the run directory, and the merge of the stage's
final actor checkpoint into an HF folder that the next stage starts from."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.errors import Vr1Error
from pipeline.io import write_jsonl
from pipeline.models.parts import VISION_MODULES
from rl.ptst.config import PTSTConfig, Stage

VERL_REWARD = Path(__file__).resolve().parent.parent / "rewards" / "verl_reward.py"

# verl console metric names -> the names both engines write to metrics.jsonl
METRICS = {
    "critic/score/mean": "reward_mean",
    "reward_extra_info/format/mean": "format_rate",
    "reward_extra_info/accuracy/mean": "accuracy",
    "response_length/mean": "response_length_mean",
    "response_length/max": "response_length_max",
    "actor/kl_loss": "kl",
    "actor/pg_clipfrac": "clip_ratio",
    "actor/entropy": "entropy",
    "actor/pg_loss": "loss",
    "actor/lr": "learning_rate",
    "actor/grad_norm": "grad_norm",
}


def stage_overrides(
    cfg: PTSTConfig, index: int, stage: Stage, start: str, stage_dir: Path, train_file: str, val_file: str, name: str
) -> list[str]:
    g, c, m = cfg.grpo, cfg.cluster, cfg.model
    if m.freeze_vision_tower and not m.lora_rank:
        raise Vr1Error(
            "model.freeze_vision_tower=true with full fine-tuning cannot be honoured on verl 0.9.1: its FSDP actor "
            "reads actor.freeze_vision_tower nowhere, so the vision tower would silently train. Use LoRA "
            "(model.lora_rank>0: adapters go on the language model only, the vision tower stays frozen) or engine=trl."
        )
    ov = [
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=false",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        "data.image_key=images",
        "data.prompt_key=prompt",
        f"data.max_prompt_length={cfg.data.max_prompt_length}",
        f"data.max_response_length={stage.max_response_length}",
        f"data.train_batch_size={g.prompts_per_step}",
        "data.filter_overlong_prompts=true",
        "data.truncation=error",
        f"actor_rollout_ref.model.path={start}",
        "actor_rollout_ref.model.use_remove_padding=true",
        "actor_rollout_ref.model.enable_gradient_checkpointing=true",
        f"actor_rollout_ref.actor.optim.lr={g.learning_rate}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={g.mini_batch_prompts}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        "actor_rollout_ref.actor.use_kl_loss=true",
        f"actor_rollout_ref.actor.kl_loss_coef={g.kl_coef}",
        f"actor_rollout_ref.actor.kl_loss_type={g.kl_loss_type}",
        f"actor_rollout_ref.actor.clip_ratio_low={g.clip_ratio_low}",
        f"actor_rollout_ref.actor.clip_ratio_high={g.clip_ratio_high}",
        f"actor_rollout_ref.actor.loss_agg_mode={g.loss_agg_mode}",
        f"actor_rollout_ref.actor.entropy_coeff={g.entropy_coeff}",
        f"actor_rollout_ref.rollout.name={c.rollout}",
        f"actor_rollout_ref.rollout.n={stage.n}",
        f"actor_rollout_ref.rollout.temperature={g.temperature}",
        f"actor_rollout_ref.rollout.top_p={g.top_p}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={c.tensor_model_parallel_size}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={c.gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        f"reward.custom_reward_function.path={VERL_REWARD}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.default_local_dir={stage_dir / 'checkpoints'}",
        f"trainer.nnodes={c.nnodes}",
        f"trainer.n_gpus_per_node={c.n_gpus_per_node}",
        f"trainer.total_training_steps={stage.steps}",
        f"trainer.save_freq={c.save_freq}",
        "trainer.test_freq=-1",
        "trainer.val_before_train=false",
        "trainer.resume_mode=auto",
        "trainer.project_name=vr1",
        f"trainer.experiment_name={name}-stage{index}",
        "trainer.logger=[console,tensorboard]",
        # verl logs our format/accuracy components only in its per-step rollout dumps: read them from there
        f"trainer.rollout_data_dir={stage_dir / 'rollouts'}",
    ]
    if cfg.data.reward != "auto":
        ov.append(f"+reward.custom_reward_function.reward_kwargs.reward={cfg.data.reward}")
    if m.lora_rank:
        ov += [
            f"actor_rollout_ref.model.lora_rank={m.lora_rank}",
            f"actor_rollout_ref.model.lora_alpha={m.lora_alpha}",
            f"actor_rollout_ref.model.target_modules={hydra_value(m.target_modules)}",
        ]
        if m.freeze_vision_tower:  # LoRA never touches excluded modules: the vision tower stays as it is
            ov.append(f"actor_rollout_ref.model.exclude_modules='{VISION_MODULES}'")
    return ov + list(c.extra_overrides)


def hydra_value(value: str | list[str]) -> str:
    """A string or a list of names as a Hydra override value (`[q_proj,v_proj]`)."""
    return f"[{','.join(value)}]" if isinstance(value, list) else value


def launch_command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", *overrides]


def merge_command(actor_dir: Path, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "verl.model_merger",
        "merge",
        "--backend",
        "fsdp",
        "--local_dir",
        str(actor_dir),
        "--target_dir",
        str(target),
    ]


_METRIC = re.compile(r"(?P<key>[\w/@.\-]+):(?P<val>-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")


def parse_metrics_line(line: str) -> dict | None:
    """verl's console logger prints `step:N - key:value - …`; keep the step and the mapped metrics."""
    if not line.startswith("step:"):
        return None
    values = {m["key"]: float(m["val"]) for m in _METRIC.finditer(line)}
    if "step" not in values:
        return None
    return {"step": int(values["step"]), **{ours: values[k] for k, ours in METRICS.items() if k in values}}


def rollout_rates(rollouts: Path, step: int) -> dict:
    """Format rate and accuracy of one step from verl's rollout dump (`<step>.jsonl`, one line per response)."""
    path = rollouts / f"{step}.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = {}
    for key, ours in (("format", "format_rate"), ("accuracy", "accuracy")):
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if values:
            out[ours] = sum(values) / len(values)
    return out


def add_rollout_rates(metrics_path: Path, rollouts: Path) -> None:
    rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()] if metrics_path.is_file() else []
    write_jsonl(metrics_path, ({**r, **rollout_rates(rollouts, r["step"])} for r in rows))


def run_stage(
    cfg: PTSTConfig,
    index: int,
    stage: Stage,
    start: Path,
    stage_dir: Path,
    files: dict,
    name: str,
    dry_run: bool = False,
) -> dict:
    overrides = stage_overrides(cfg, index, stage, str(start), stage_dir, files["train"], files["val"], name)
    cmd = launch_command(overrides)
    print(f"stage {index} (verl): {shlex.join(cmd)}", flush=True)  # noqa: T201 - the command is the point
    if dry_run:
        return {"stage": index, "engine": "verl", "command": cmd}
    with open(stage_dir / "verl.log", "a") as log, open(stage_dir / "metrics.jsonl", "a") as metrics:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            row = parse_metrics_line(line.strip())
            if row:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
        rc = proc.wait()
    add_rollout_rates(stage_dir / "metrics.jsonl", stage_dir / "rollouts")
    if rc != 0:
        raise Vr1Error(f"verl exited with {rc} in stage {index}; see {stage_dir}/verl.log (rerun to resume)")
    steps = sorted((stage_dir / "checkpoints").glob("global_step_*"), key=lambda p: int(p.name.split("_")[-1]))
    if not steps:
        raise Vr1Error(f"stage {index}: verl wrote no checkpoint under {stage_dir}/checkpoints")
    final = stage_dir / "final"
    merge = merge_command(steps[-1] / "actor", final)
    print("merging:", shlex.join(merge), flush=True)  # noqa: T201
    if subprocess.call(merge) != 0:
        raise Vr1Error(f"stage {index}: verl.model_merger failed on {steps[-1] / 'actor'}")
    return {"stage": index, "engine": "verl", "steps": int(steps[-1].name.split("_")[-1]), "final": str(final)}
